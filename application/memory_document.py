"""A memory as the API shows it, from a read-model row: the live reads' Postgres rows
(query_api/pg_reads) and a past state's in-memory rows (application/as_of) share one shape."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from domain.expiry import is_expired


def memory_document(row, now: datetime | None = None) -> dict:
    """`row` is a memories row (Postgres gives metadata as JSON text, the in-memory double as a
    dict); `expired`: its expires_at has passed at `now` (default: now)."""
    metadata = row["metadata"]
    return {
        "id": str(row["id"]), "memory": row["text"], "user_id": row["user_id"], "agent_id": row["agent_id"],
        "run_id": row["run_id"], "app_id": row["app_id"],
        "metadata": json.loads(metadata) if isinstance(metadata, str) else dict(metadata),
        "categories": list(row["categories"]), "importance": row["importance"], "state": row["state"],
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
        "occurred_at": row["occurred_at"].isoformat(), "version": row["version"],
        "access_count": row["access_count"],
        "last_accessed_at": row["last_accessed_at"].isoformat() if row["last_accessed_at"] else None,
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
        "expired": is_expired(row["expires_at"], now or datetime.now(timezone.utc)),
    }
