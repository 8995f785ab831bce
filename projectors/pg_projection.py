"""What each event does to the Postgres read model, apart from SQL, transactions and versions.

`project_batch(writes, batch)` applies a batch's events in log order through `PgWrites`, the
writes this read model offers: with SQL over one transaction (projectors/pg_store.py, driven
by projectors/pg_projector.py) or in memory (projectors/in_memory_pg.py, for unit tests).
Dispatch is by event type (`HANDLERS`), as the eventsourcing library's process_event does.
The rules live here (which states an event moves a memory from and to, that only a new
summary archives its sources); a store knows how to write them, each write guarded so that a
redelivered event changes nothing. Events without a handler (conversations) change nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from domain.events import (ApiKeyIssued, ApiKeyRevoked, MemoryAccessed, MemoryConsolidated, MemoryCreated,
                           MemoryDeleted, MemoryExpired, MemoryForgotten, MemoryRestored, MemoryScopeDeleted,
                           MemoryShared, MemoryUnshared, MemoryUpdated, UserErased, UserRegistered)
from domain.events import UserProfileUpdated
from domain import core_memory
from projectors.applied import Applied
from projectors.batch_order import hoist_creates

__all__ = ["ARCHIVABLE", "HANDLERS", "PgWrites", "project", "project_batch"]

ARCHIVABLE = ("active", "forgotten")  # the states a consolidation's sources are archived from


class PgWrites(Protocol):
    """The writes of the Postgres read model. `at` is the event's log position (history rows)."""

    async def create_memories(self, items: Sequence[Applied]) -> None:
        """MemoryCreated events: each memory not there yet becomes an active row with a history
        row; an id that exists (a tombstone included) is left as it is."""

    async def create_summary(self, event: MemoryConsolidated, at: Applied) -> bool:
        """A consolidation's summary as a new active memory; False (nothing written) when its id exists."""

    async def update_memory(self, event: MemoryUpdated, at: Applied) -> None:
        """The fields the event gives replace the memory's, if it is the user's, not deleted and not
        already changed by this very event; version + 1 and a history row (old and new text)."""

    async def delete_memory(self, event: MemoryDeleted, at: Applied) -> None:
        """The user's memory, unless deleted already, becomes `deleted` (a tombstone), with a history row."""

    async def delete_scope(self, event: MemoryScopeDeleted, at: Applied) -> None:
        """Every memory of the user matching the scope fields the event gives becomes `deleted`."""

    async def set_state(self, event: Any, at: Applied, memory_ids: Sequence[str], to: str,
                        from_states: Sequence[str]) -> None:
        """Those of the user's memories that are in one of `from_states` move to `to`."""

    async def count_accesses(self, events: Sequence[MemoryAccessed]) -> None:
        """Access counts (+1 per event naming a memory of its user) and the last access time."""

    async def erase_user(self, user_id: str) -> None:
        """Every row of the user in every table, history, keys and shares included."""

    async def register_user(self, event: UserRegistered) -> None: ...

    async def issue_key(self, event: ApiKeyIssued) -> None:
        """A new key row (a redelivery finds it there and changes nothing)."""

    async def revoke_key(self, event: ApiKeyRevoked) -> None:
        """The user's key, unless revoked already, is revoked at the event's time."""

    async def share(self, event: MemoryShared) -> None:
        """A share of a memory of the sharer (the event's user) with the grantee, unless there is one."""

    async def unshare(self, event: MemoryUnshared) -> None: ...

    async def save_profile(self, event: UserProfileUpdated) -> None:
        """The user's profile becomes this version, unless the stored one is as new or newer (a
        redelivery, or a second build of the same version by a concurrent pass: the first one wins)."""

    async def edit_core_block(self, event: Any, at: Applied) -> None:
        """A core memory block event: the block after it (domain/core_memory.apply: an edit applies
        only onto the version before its own) and a history row, a skipped edit's too."""


async def _created(writes: PgWrites, event: MemoryCreated, at: Applied) -> None:
    await writes.create_memories([at])


async def _consolidated(writes: PgWrites, event: MemoryConsolidated, at: Applied) -> None:
    # Only a new summary archives its sources: a redelivery or a second summary of the same id changes nothing.
    if await writes.create_summary(event, at):
        await writes.set_state(event, at, event.source_memory_ids, "archived", ARCHIVABLE)


async def _forgotten(writes: PgWrites, event: MemoryForgotten | MemoryExpired, at: Applied) -> None:
    # Forgetting hides (restorable); restoring brings a forgotten or archived memory back. An
    # expiry is recorded the same way: the history row names MemoryExpired.
    await writes.set_state(event, at, [event.memory_id], "forgotten", ("active", "archived"))


async def _restored(writes: PgWrites, event: MemoryRestored, at: Applied) -> None:
    await writes.set_state(event, at, [event.memory_id], "active", ("forgotten", "archived"))


async def _erased(writes: PgWrites, event: UserErased, at: Applied) -> None:
    await writes.erase_user(event.user_id)


Handler = Callable[[PgWrites, Any, Applied], Awaitable[None]]
# MemoryAccessed has no handler: a batch's accesses are counted together, first (project_batch).
HANDLERS: dict[type, Handler] = {
    MemoryCreated: _created,
    MemoryUpdated: lambda writes, event, at: writes.update_memory(event, at),
    MemoryDeleted: lambda writes, event, at: writes.delete_memory(event, at),
    MemoryScopeDeleted: lambda writes, event, at: writes.delete_scope(event, at),
    MemoryConsolidated: _consolidated,
    MemoryForgotten: _forgotten,
    MemoryExpired: _forgotten,
    MemoryRestored: _restored,
    UserErased: _erased,
    UserRegistered: lambda writes, event, at: writes.register_user(event),
    ApiKeyIssued: lambda writes, event, at: writes.issue_key(event),
    ApiKeyRevoked: lambda writes, event, at: writes.revoke_key(event),
    MemoryShared: lambda writes, event, at: writes.share(event),
    MemoryUnshared: lambda writes, event, at: writes.unshare(event),
    UserProfileUpdated: lambda writes, event, at: writes.save_profile(event),
    **{cls: lambda writes, event, at: writes.edit_core_block(event, at) for cls in core_memory.EDIT_EVENTS},
}


async def project(writes: PgWrites, item: Applied) -> None:
    """One event's writes (none for an event this read model does not show, or a dead-lettered one)."""
    handler = HANDLERS.get(type(item.event))
    if handler is not None:
        await handler(writes, item.event, item)


async def project_batch(writes: PgWrites, batch: Sequence[Applied]) -> None:
    """A batch's writes: the accesses counted in one statement, then the events in log order, the
    creates of each segment together (projectors/batch_order.py: the same result, far fewer round trips)."""
    await writes.count_accesses([item.event for item in batch if type(item.event) is MemoryAccessed])
    for creates, others in hoist_creates(batch):
        if creates:
            await writes.create_memories(creates)
        for item in others:
            await project(writes, item)
