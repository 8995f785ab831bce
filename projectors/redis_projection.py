"""What each event does to the Redis read model, apart from Lua, scripts and versions.

`project(writes, item)` maps an event, by its type (`HANDLERS`, as the eventsourcing library's
process_event), to one write of `RedisWrites`, with the document fields encoded as the read model
stores them (strings: no float formatting in Lua). Every write carries the record's log position:
the store skips what its watermark says was applied. The real store collects a batch's writes as
the items of one Lua script (projectors/redis_store.py: the batch and its watermarks in one atomic
step); projectors/in_memory_redis.py does the same in dicts. An event without a handler (access,
conversations, identity, user profiles) or a dead-lettered record only advances the position.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from domain.events import (MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryExpired, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, UserErased)
from projectors.applied import Applied

__all__ = ["HANDLERS", "RedisWrites", "memory_document", "project"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RedisWrites(Protocol):
    """The writes of the Redis read model (key layout: adapters/redis_read_model.py). `at` is the
    record (its position, and its event's user, id and time); a write at or below its partition's
    watermark changes nothing, and a document never takes an event from at or before the position
    that last changed it."""

    def create(self, at: Applied, doc: dict[str, str], score: int) -> None:
        """A new active document (never over an existing one, a tombstone included), in the user's
        `ids` and `recent` by `score` (created_at, epoch ms); the generation moves."""

    def consolidate(self, at: Applied, doc: dict[str, str], score: int, sources: list[str]) -> None:
        """The summary created like a memory; only when it is new, the user's sources that are
        active or forgotten become archived (moved to `inactive`)."""

    def update(self, at: Applied, memory_id: str, fields: dict[str, str]) -> None:
        """The fields replace the document's if it is the user's and not deleted; version + 1."""

    def delete(self, at: Applied, memory_id: str) -> None:
        """The user's document becomes a tombstone (state `deleted`), out of every set."""

    def delete_scope(self, at: Applied, scope: dict[str, str]) -> None:
        """Every document of the user created before this record that matches the scope is deleted."""

    def forget(self, at: Applied, memory_id: str) -> None:
        """active/archived -> forgotten (out of `ids`/`recent`, into `inactive` with its score)."""

    def restore(self, at: Applied, memory_id: str) -> None:
        """forgotten/archived -> active (back into `ids`/`recent` with its score)."""

    def erase_user(self, at: Applied) -> None:
        """Every document and set of the user, and the answers cached for them, are deleted."""

    def advance(self, at: Applied) -> None:
        """Nothing but the position."""


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat()


def epoch_ms(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(milliseconds=1)


def compact_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def memory_document(event: MemoryCreated | MemoryConsolidated) -> dict[str, str]:
    """A created memory's (or a summary's) document fields; absent optional fields are left out."""
    doc = {
        "id": event.memory_id, "user_id": event.user_id, "text": event.text,
        "metadata": compact_json(event.metadata), "categories": compact_json(list(event.categories)),
        "created_at": iso(event.occurred_at), "updated_at": iso(event.occurred_at),
        "occurred_at": iso(event.happened_at or event.occurred_at), "embedding_model": event.embedding_model,
    }
    for name in ("agent_id", "run_id", "app_id"):
        if getattr(event, name) is not None:
            doc[name] = getattr(event, name)
    if event.importance is not None:
        doc["importance"] = repr(float(event.importance))
    if getattr(event, "expires_at", None) is not None:  # a summary never expires
        doc["expires_at"] = iso(event.expires_at)
    return doc


def _updated_fields(event: MemoryUpdated) -> dict[str, str]:
    changes = {"text": event.text, "embedding_model": event.embedding_model,
               "metadata": compact_json(event.metadata) if event.metadata is not None else None,
               "categories": compact_json(list(event.categories)) if event.categories is not None else None,
               "importance": repr(float(event.importance)) if event.importance is not None else None,
               # '': the expiry was cleared (a hash field cannot hold None)
               "expires_at": "" if event.expiry_cleared else iso(event.expires_at) if event.expires_at else None}
    return {k: v for k, v in changes.items() if v is not None}


def _scope(event: MemoryScopeDeleted) -> dict[str, str]:
    scope = {"agent_id": event.agent_id, "run_id": event.run_id, "app_id": event.app_id}
    return {k: v for k, v in scope.items() if v is not None}


Handler = Callable[[RedisWrites, Any, Applied], None]
HANDLERS: dict[type, Handler] = {
    MemoryCreated: lambda w, e, at: w.create(at, memory_document(e), epoch_ms(e.occurred_at)),
    MemoryConsolidated: lambda w, e, at: w.consolidate(at, memory_document(e), epoch_ms(e.occurred_at),
                                                       list(e.source_memory_ids)),
    MemoryUpdated: lambda w, e, at: w.update(at, e.memory_id, _updated_fields(e)),
    MemoryDeleted: lambda w, e, at: w.delete(at, e.memory_id),
    MemoryScopeDeleted: lambda w, e, at: w.delete_scope(at, _scope(e)),
    MemoryForgotten: lambda w, e, at: w.forget(at, e.memory_id),
    MemoryExpired: lambda w, e, at: w.forget(at, e.memory_id),  # an expiry hides a memory as forgetting does
    MemoryRestored: lambda w, e, at: w.restore(at, e.memory_id),
    UserErased: lambda w, e, at: w.erase_user(at),
}


def project(writes: RedisWrites, item: Applied) -> None:
    handler = HANDLERS.get(type(item.event))
    if handler is None:
        writes.advance(item)
    else:
        handler(writes, item.event, item)
