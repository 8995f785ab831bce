"""Command handlers: turn commands into events and append them. No HTTP here."""

from __future__ import annotations

import asyncio
from typing import Protocol

from adapters.embedders import Embedder
from domain.commands import AddMemory
from domain.consistency import ConsistencyToken
from domain.events import Event, MemoryCreated, new_id, utcnow


class Publisher(Protocol):
    async def publish(self, events: list[Event]) -> ConsistencyToken: ...


async def add_memories(commands: list[AddMemory], embedder: Embedder, publisher: Publisher,
                       correlation_id: str | None = None) -> tuple[list[MemoryCreated], ConsistencyToken]:
    """Embed once, here in the command path (replay never re-embeds), then append all events."""
    vectors = await asyncio.to_thread(embedder.embed, [c.text for c in commands])
    correlation_id = correlation_id or new_id()
    now = utcnow()
    events = [
        MemoryCreated(
            user_id=c.user_id, actor=c.actor, correlation_id=c.correlation_id or correlation_id,
            occurred_at=now, memory_id=new_id(), text=c.text,
            embedding=tuple(float(x) for x in vector), embedding_model=embedder.model_id,
            happened_at=c.happened_at or now, agent_id=c.agent_id, run_id=c.run_id, app_id=c.app_id,
            metadata=c.metadata, categories=c.categories, importance=c.importance,
        )
        for c, vector in zip(commands, vectors)
    ]
    token = await publisher.publish(events)
    return events, token
