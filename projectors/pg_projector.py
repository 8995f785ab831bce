"""PgProjector: memories in Postgres/pgvector, with its log position in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
import numpy as np

from adapters.postgres import CONNECTION_ERRORS
from domain.events import Event, MemoryCreated, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated
from projectors.runner import Applied


class PgProjector:
    name = "postgres"
    transient_errors = CONNECTION_ERRORS

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def positions(self, topic: str) -> dict[int, int]:
        rows = await self.pool.fetch(
            'SELECT partition, "offset" FROM projection_offsets WHERE projection = $1 AND topic = $2',
            self.name, topic,
        )
        return {r["partition"]: r["offset"] for r in rows}

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None:
        """Apply events and advance the offsets atomically: a crash leaves both or neither."""
        highest: dict[int, int] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            for item in batch:
                if item.event is not None:
                    await self._apply(conn, item.event)
                highest[item.partition] = max(item.offset, highest.get(item.partition, -1))
            await conn.executemany(
                'INSERT INTO projection_offsets (projection, topic, partition, "offset") VALUES ($1, $2, $3, $4) '
                'ON CONFLICT (projection, topic, partition) DO UPDATE '
                'SET "offset" = GREATEST(projection_offsets."offset", EXCLUDED."offset"), updated_at = now()',
                [(self.name, topic, p, o) for p, o in highest.items()],
            )

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        # Every write is guarded so that a redelivered event changes nothing.
        if isinstance(event, MemoryCreated):
            await conn.execute(
                "INSERT INTO memories (id, user_id, agent_id, run_id, app_id, text, embedding, embedding_model,"
                " metadata, categories, importance, created_at, updated_at, occurred_at, last_event_id)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$12,$13,$14) ON CONFLICT (id) DO NOTHING",
                event.memory_id, event.user_id, event.agent_id, event.run_id, event.app_id, event.text,
                np.asarray(event.embedding, dtype=np.float32), event.embedding_model,
                json.dumps(event.metadata), list(event.categories), event.importance,
                event.occurred_at, event.happened_at, event.event_id,
            )
        elif isinstance(event, MemoryUpdated):
            # COALESCE: a field the event leaves None stays as it is.
            await conn.execute(
                "UPDATE memories SET text = COALESCE($3, text), embedding = COALESCE($4, embedding),"
                " embedding_model = COALESCE($5, embedding_model), metadata = COALESCE($6::jsonb, metadata),"
                " categories = COALESCE($7, categories), importance = COALESCE($8, importance),"
                " updated_at = $9, version = version + 1, last_event_id = $10"
                " WHERE id = $1 AND user_id = $2 AND state <> 'deleted' AND last_event_id <> $10",
                event.memory_id, event.user_id, event.text,
                np.asarray(event.embedding, dtype=np.float32) if event.embedding is not None else None,
                event.embedding_model, json.dumps(event.metadata) if event.metadata is not None else None,
                list(event.categories) if event.categories is not None else None, event.importance,
                event.occurred_at, event.event_id,
            )
        elif isinstance(event, MemoryDeleted):
            await conn.execute(
                "UPDATE memories SET state = 'deleted', updated_at = $3, version = version + 1, last_event_id = $4"
                " WHERE id = $1 AND user_id = $2 AND state <> 'deleted'",
                event.memory_id, event.user_id, event.occurred_at, event.event_id,
            )
        elif isinstance(event, MemoryScopeDeleted):
            # Per-user order: exactly the memories this user had when the event was appended.
            await conn.execute(
                "UPDATE memories SET state = 'deleted', updated_at = $5, version = version + 1, last_event_id = $6"
                " WHERE user_id = $1 AND state <> 'deleted' AND ($2::text IS NULL OR agent_id = $2)"
                " AND ($3::text IS NULL OR run_id = $3) AND ($4::text IS NULL OR app_id = $4)",
                event.user_id, event.agent_id, event.run_id, event.app_id, event.occurred_at, event.event_id,
            )
        # Other events (conversations, access, identity) do not change this read model.
