"""What the workers read from the Postgres projection: similar memories for reconciliation,
memory snapshots for consolidation and forgetting, and how far the projection has got.

Workers never write a read model; they read it and append events. Reads go to the live
version through the public views, like the query API's.
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
import numpy as np

from adapters.vector_buckets import in_bucket_of
from domain.intelligence import Candidate

SCOPE_FIELDS = ("agent_id", "run_id", "app_id")


async def similar(pool: asyncpg.Pool, user_id: str, scope: dict, vector: np.ndarray, limit: int) -> list[Candidate]:
    """The active memories of the user most similar to `vector` (cosine), within the scope
    fields given (a field left None matches any value)."""
    args: list = [user_id, np.asarray(vector, dtype=np.float32), limit]
    where = ["user_id = $1", "state = 'active'", in_bucket_of(user_id)]  # the bucket's HNSW index
    for name in SCOPE_FIELDS:
        if scope.get(name) is not None:
            args.append(scope[name])
            where.append(f"{name} = ${len(args)}")
    async with pool.acquire() as conn, conn.transaction():
        # Iterative scans: a per-user filter must not starve the HNSW candidate list.
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = await conn.fetch(
            f"SELECT id, text, 1 - (embedding <=> $2) AS similarity FROM memories WHERE {' AND '.join(where)}"
            " ORDER BY embedding <=> $2 LIMIT $3", *args)
    return sorted((Candidate(str(r["id"]), r["text"], float(r["similarity"])) for r in rows),
                  key=lambda c: -c.similarity)


async def memories(pool: asyncpg.Pool, user_id: str, states: tuple[str, ...] = ("active",),
                   vectors: bool = False) -> list[asyncpg.Record]:
    """The user's memories in `states` with what the lifecycle policies need, oldest first
    (their embeddings only when asked: forgetting does not need them)."""
    return await pool.fetch(
        f"SELECT id, text, {'embedding, ' if vectors else ''}state, created_at, occurred_at, importance, metadata,"
        " categories, access_count, last_accessed_at, last_event_id, agent_id, run_id, app_id, expires_at FROM memories"
        " WHERE user_id = $1 AND state = ANY($2) ORDER BY created_at, id", user_id, list(states))


async def expired(pool: asyncpg.Pool, user_id: str, now: datetime) -> list[asyncpg.Record]:
    """The user's active or archived memories whose expires_at is `now` or earlier (domain/expiry.py),
    soonest expired first: what the forget pass records as MemoryExpired."""
    return await pool.fetch(
        "SELECT id, expires_at, last_event_id FROM memories WHERE user_id = $1 AND expires_at <= $2"
        " AND state IN ('active', 'archived') ORDER BY expires_at, id", user_id, now)


async def users(pool: asyncpg.Pool) -> list[str]:
    """Every user with an active memory."""
    return [r["user_id"] for r in await pool.fetch(
        "SELECT DISTINCT user_id FROM memories WHERE state = 'active' ORDER BY user_id")]


def is_pinned(metadata) -> bool:
    """A memory is pinned by `metadata.pinned = true`: the workers never touch it."""
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return bool((metadata or {}).get("pinned") is True)
