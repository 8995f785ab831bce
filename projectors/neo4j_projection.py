"""What each event does to the graph read model, apart from Cypher, transactions and versions.

`project_events(writes, events)` applies a batch's new memory events in log order through
`GraphWrites`, the writes the graph offers: in Cypher inside the batch's transaction
(projectors/neo4j_store.py, driven by projectors/neo4j_projector.py, whose docstring describes
the graph) or in memory (projectors/in_memory_graph.py, for unit tests). Dispatch is by event
type (`HANDLERS`, as the eventsourcing library's process_event). The rules live here: a text
change closes the old relations and links the new text's; a delete closes the memory's
relations; only a new summary archives its sources; forgetting and restoring change the state
only (readers skip a forgotten memory's relations by its state, so a restore brings them back
as they were). Events without a handler (access, conversations, identity,
user profiles) change nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from domain.events import (Event, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryExpired, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, UserErased)
from projectors.applied import Applied
from projectors.batch_order import hoist_creates

__all__ = ["ARCHIVABLE", "HANDLERS", "GraphWrites", "project", "project_events"]

ARCHIVABLE = ("active", "forgotten")  # the states a consolidation's sources are archived from


class GraphWrites(Protocol):
    """The writes of the graph read model, each about the event's user's own nodes only."""

    async def create_memories(self, events: Sequence[MemoryCreated | MemoryConsolidated]) -> list[str]:
        """The memories not there yet (a create is never applied twice, even with a new event id),
        each with its entities, MENTIONS, RELATES and CO_MENTIONED (projectors/graph_rows.memory_graph);
        returns the ids created."""

    async def update_text(self, event: MemoryUpdated) -> str | None:
        """The memory's new text (if any), update time and last event, when it is the user's and not
        deleted; returns its text before, None when nothing was updated."""

    async def relink(self, event: MemoryUpdated) -> None:
        """The memory's MENTIONS replaced by those of the new text (the offline extractor's), its
        relations added from the event's time on, its times replaced."""

    async def delete_memory(self, event: MemoryDeleted) -> list[str]:
        """The user's memory, unless deleted already, becomes `deleted`; returns the ids deleted."""

    async def delete_scope(self, event: MemoryScopeDeleted) -> list[str]:
        """Every memory of the user matching the scope fields the event gives becomes `deleted`."""

    async def close_relations(self, memory_ids: Sequence[str], at: datetime) -> None:
        """The open RELATES those memories stated get `valid_to` = at."""

    async def set_state(self, event: Event, memory_ids: Sequence[str], to: str, from_states: Sequence[str]) -> None:
        """Those of the user's memories in one of `from_states` move to `to`."""

    async def erase_user(self, user_id: str) -> None:
        """Every node of the user, with its relationships."""


async def _created(writes: GraphWrites, event: MemoryCreated) -> None:
    await writes.create_memories([event])


async def _updated(writes: GraphWrites, event: MemoryUpdated) -> None:
    old_text = await writes.update_text(event)
    if old_text is None or event.text is None or event.text == old_text:
        return  # unknown, someone else's, deleted, or metadata only: the graph of the text stays
    await writes.close_relations([event.memory_id], event.occurred_at)
    await writes.relink(event)


async def _deleted(writes: GraphWrites, event: MemoryDeleted) -> None:
    await writes.close_relations(await writes.delete_memory(event), event.occurred_at)


async def _scope_deleted(writes: GraphWrites, event: MemoryScopeDeleted) -> None:
    # Per-user order: exactly the memories of the scope that exist when the event is applied.
    await writes.close_relations(await writes.delete_scope(event), event.occurred_at)


async def _consolidated(writes: GraphWrites, event: MemoryConsolidated) -> None:
    # Only a new summary archives its sources (as in Postgres). Their RELATES stay open:
    # archived is history, not refuted.
    if await writes.create_memories([event]) and event.source_memory_ids:
        await writes.set_state(event, event.source_memory_ids, "archived", ARCHIVABLE)


async def _forgotten(writes: GraphWrites, event: MemoryForgotten) -> None:
    await writes.set_state(event, [event.memory_id], "forgotten", ("active", "archived"))


async def _restored(writes: GraphWrites, event: MemoryRestored) -> None:
    await writes.set_state(event, [event.memory_id], "active", ("forgotten", "archived"))


async def _erased(writes: GraphWrites, event: UserErased) -> None:
    await writes.erase_user(event.user_id)


HANDLERS: dict[type, Callable[[GraphWrites, Any], Awaitable[None]]] = {
    MemoryCreated: _created,
    MemoryUpdated: _updated,
    MemoryDeleted: _deleted,
    MemoryScopeDeleted: _scope_deleted,
    MemoryConsolidated: _consolidated,
    MemoryForgotten: _forgotten,
    MemoryExpired: _forgotten,  # an expiry hides a memory as forgetting does
    MemoryRestored: _restored,
    UserErased: _erased,
}


async def project(writes: GraphWrites, event: Event | None) -> None:
    handler = HANDLERS.get(type(event))
    if handler is not None:
        await handler(writes, event)


async def project_events(writes: GraphWrites, events: Sequence[Event]) -> None:
    """Events in log order, the creates of each segment in one write (projectors/batch_order.py:
    the same result, far fewer round trips)."""
    for creates, others in hoist_creates([Applied(0, n, event) for n, event in enumerate(events)]):
        if creates:
            await writes.create_memories([item.event for item in creates])
        for item in others:
            await project(writes, item.event)
