"""Events for the projection tests (tests/unit/test_projections_*.py and the read-model contract
suite, tests/integration/test_read_model_contract.py): small factories with valid ids and fixed times."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from domain.events import (Entity, MemoryAccessed, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryExpired,
                           MemoryForgotten, MemoryRestored, MemoryScopeDeleted, MemoryUpdated, Relation, UserErased)
from projectors.applied import Applied

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
HAPPENED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
EMBEDDING = tuple([1.0] + [0.0] * 383)  # the integration servers' dimension


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def new_user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def created(user: str, text: str, minutes: int = 0, *, entities=(), relations=(), **fields) -> MemoryCreated:
    return MemoryCreated(user_id=user, actor=f"user:{user}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=EMBEDDING, embedding_model="m", happened_at=HAPPENED, occurred_at=at(minutes),
                         entities=tuple(Entity(n, t) for n, t in entities),
                         relations=tuple(Relation(s, r, t) for s, r, t in relations), **fields)


def updated(memory: MemoryCreated, minutes: int, **fields) -> MemoryUpdated:
    return MemoryUpdated(user_id=memory.user_id, actor="t", memory_id=memory.memory_id, occurred_at=at(minutes),
                         **fields)


def deleted(memory: MemoryCreated, minutes: int, user: str | None = None) -> MemoryDeleted:
    return MemoryDeleted(user_id=user or memory.user_id, actor="t", memory_id=memory.memory_id,
                         occurred_at=at(minutes))


def scope_deleted(user: str, minutes: int, **scope) -> MemoryScopeDeleted:
    return MemoryScopeDeleted(user_id=user, actor="t", occurred_at=at(minutes), **scope)


def forgotten(memory: MemoryCreated, minutes: int) -> MemoryForgotten:
    return MemoryForgotten(user_id=memory.user_id, actor="worker", memory_id=memory.memory_id, reason="decayed",
                           occurred_at=at(minutes))


def expired(memory: MemoryCreated, minutes: int) -> MemoryExpired:
    return MemoryExpired(user_id=memory.user_id, actor="worker:forget", memory_id=memory.memory_id,
                         expires_at=memory.expires_at or at(minutes), occurred_at=at(minutes))


def restored(memory: MemoryCreated, minutes: int) -> MemoryRestored:
    return MemoryRestored(user_id=memory.user_id, actor="t", memory_id=memory.memory_id, occurred_at=at(minutes))


def consolidated(sources: list[MemoryCreated], text: str, minutes: int) -> MemoryConsolidated:
    return MemoryConsolidated(user_id=sources[0].user_id, actor="worker", memory_id=str(uuid.uuid4()),
                              source_memory_ids=tuple(s.memory_id for s in sources), text=text,
                              embedding=EMBEDDING, embedding_model="m", reason="near duplicates",
                              occurred_at=at(minutes), happened_at=HAPPENED)


def accessed(user: str, memories: list[MemoryCreated], minutes: int) -> MemoryAccessed:
    return MemoryAccessed(user_id=user, actor="t", memory_ids=tuple(m.memory_id for m in memories), source="search",
                          occurred_at=at(minutes))


def erased(user: str, minutes: int) -> UserErased:
    return UserErased(user_id=user, actor="admin", occurred_at=at(minutes))


def positioned(events, partition: int = 0, first_offset: int = 0) -> list[Applied]:
    """The events as one partition's records from `first_offset` on."""
    return [Applied(partition, first_offset + n, event) for n, event in enumerate(events)]
