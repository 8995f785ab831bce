"""A memory document of the sparse index, apart from Tantivy.

The sparse projection (projectors/sparse_projection.py) and its in-memory double work on these
plain values, so they load and run without the index library; adapters/sparse_schema.py turns
them into Tantivy documents and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class MemoryDoc:
    """One memory as this read model holds it (a tombstone: state "deleted", no content)."""
    memory_id: str
    user_id: str
    state: str = "active"
    text: str = ""
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    entities: tuple[str, ...] = ()
    occurred_us: int | None = None
    context: str = ""  # the turns written just before it (domain/turn_context)

    def tombstone(self) -> "MemoryDoc":
        return MemoryDoc(self.memory_id, self.user_id, "deleted")


def micros(at: datetime) -> int:
    """`at` as microseconds since the epoch (a naive time is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return (at - _EPOCH) // timedelta(microseconds=1)
