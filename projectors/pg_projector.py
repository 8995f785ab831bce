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
                    await self._apply(conn, item.event, item)
                highest[item.partition] = max(item.offset, highest.get(item.partition, -1))
            await conn.executemany(
                'INSERT INTO projection_offsets (projection, topic, partition, "offset") VALUES ($1, $2, $3, $4) '
                'ON CONFLICT (projection, topic, partition) DO UPDATE '
                'SET "offset" = GREATEST(projection_offsets."offset", EXCLUDED."offset"), updated_at = now()',
                [(self.name, topic, p, o) for p, o in highest.items()],
            )

    async def _apply(self, conn: asyncpg.Connection, event: Event, at: Applied) -> None:
        # Every write is guarded so that a redelivered event changes nothing.
        if isinstance(event, MemoryCreated):
            inserted = await conn.fetchval(
                "INSERT INTO memories (id, user_id, agent_id, run_id, app_id, text, embedding, embedding_model,"
                " metadata, categories, importance, created_at, updated_at, occurred_at, last_event_id)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$12,$13,$14) ON CONFLICT (id) DO NOTHING"
                " RETURNING id",
                event.memory_id, event.user_id, event.agent_id, event.run_id, event.app_id, event.text,
                np.asarray(event.embedding, dtype=np.float32), event.embedding_model,
                json.dumps(event.metadata), list(event.categories), event.importance,
                event.occurred_at, event.happened_at, event.event_id,
            )
            if inserted:
                await self._history(conn, event, at, [(event.memory_id, None, event.text, None, event.metadata)])
        elif isinstance(event, MemoryUpdated):
            old = await conn.fetchrow(
                "SELECT text, metadata FROM memories WHERE id = $1 AND user_id = $2 AND state <> 'deleted'"
                " AND last_event_id <> $3 FOR UPDATE", event.memory_id, event.user_id, event.event_id)
            if old is None:
                return  # unknown, someone else's, deleted, or this very event again
            # COALESCE: a field the event leaves None stays as it is.
            await conn.execute(
                "UPDATE memories SET text = COALESCE($2, text), embedding = COALESCE($3, embedding),"
                " embedding_model = COALESCE($4, embedding_model), metadata = COALESCE($5::jsonb, metadata),"
                " categories = COALESCE($6, categories), importance = COALESCE($7, importance),"
                " updated_at = $8, version = version + 1, last_event_id = $9 WHERE id = $1",
                event.memory_id, event.text,
                np.asarray(event.embedding, dtype=np.float32) if event.embedding is not None else None,
                event.embedding_model, json.dumps(event.metadata) if event.metadata is not None else None,
                list(event.categories) if event.categories is not None else None, event.importance,
                event.occurred_at, event.event_id,
            )
            await self._history(conn, event, at, [(event.memory_id, old["text"], event.text or old["text"],
                                                   _json(old["metadata"]), event.metadata)])
        elif isinstance(event, (MemoryDeleted, MemoryScopeDeleted)):
            if isinstance(event, MemoryDeleted):
                where, args = "id = $3 AND user_id = $4", [event.memory_id, event.user_id]
            else:
                # Per-user order: exactly the memories this user had when the event was appended.
                where = ("user_id = $3 AND ($4::text IS NULL OR agent_id = $4) AND ($5::text IS NULL OR run_id = $5)"
                         " AND ($6::text IS NULL OR app_id = $6)")
                args = [event.user_id, event.agent_id, event.run_id, event.app_id]
            rows = await conn.fetch(
                "UPDATE memories SET state = 'deleted', updated_at = $1, version = version + 1, last_event_id = $2"
                f" WHERE {where} AND state <> 'deleted' RETURNING id, text",
                event.occurred_at, event.event_id, *args,
            )
            await self._history(conn, event, at, [(str(r["id"]), r["text"], None, None, None) for r in rows])
        # Other events (conversations, access, identity) do not change this read model.

    async def _history(self, conn: asyncpg.Connection, event: Event, at: Applied, changes: list[tuple]) -> None:
        """One row per memory the event touched: (memory_id, old_text, new_text, old_metadata, new_metadata)."""
        await conn.executemany(
            "INSERT INTO memory_history (event_id, memory_id, user_id, event_type, actor, correlation_id, occurred_at,"
            " log_partition, log_offset, old_text, new_text, old_metadata, new_metadata, reason)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12::jsonb,$13::jsonb,$14) ON CONFLICT DO NOTHING",
            [(event.event_id, memory_id, event.user_id, event.event_type, event.actor, event.correlation_id,
              event.occurred_at, at.partition, at.offset, old_text, new_text,
              json.dumps(old_meta) if old_meta is not None else None,
              json.dumps(new_meta) if new_meta is not None else None, getattr(event, "reason", None))
             for memory_id, old_text, new_text, old_meta, new_meta in changes],
        )


def _json(value):
    return json.loads(value) if isinstance(value, str) else value
