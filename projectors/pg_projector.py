"""PgProjector: memories in Postgres/pgvector, with its log position in the same transaction.

The read model lives in versioned schemas (adapters/postgres.py); a projector either
follows the live version (the projector process) or writes one version (a replay).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg
import numpy as np

from adapters import postgres
from adapters.postgres import CONNECTION_ERRORS, schema_of
from domain.events import (ApiKeyIssued, ApiKeyRevoked, Event, MemoryAccessed, MemoryConsolidated, MemoryDeleted,
                           MemoryForgotten, MemoryRestored, MemoryScopeDeleted, MemoryShared, MemoryUnshared,
                           MemoryUpdated, UserRegistered)
from domain.events import UserErased
from domain.identifiers import is_uuid
from projectors.batch_order import hoist_creates
from projectors.applied import Applied, Relocated
from settings import APPLIED_CHANNEL


COPY_FROM = 64  # creates in one batch from which COPY beats INSERT
_MEMORY_COLUMNS = ("id", "user_id", "agent_id", "run_id", "app_id", "text", "embedding", "embedding_model",
                   "metadata", "categories", "importance", "created_at", "updated_at", "occurred_at", "last_event_id")
_HISTORY_COLUMNS = ("event_id", "memory_id", "user_id", "event_type", "actor", "correlation_id", "occurred_at",
                    "log_partition", "log_offset", "old_text", "new_text", "old_metadata", "new_metadata", "reason")


class PgProjector:
    name = "postgres"
    transient_errors = CONNECTION_ERRORS

    def __init__(self, pool: asyncpg.Pool, version: int | None = None):
        self.pool = pool
        self.pinned = version  # None: follow the live version
        self.version = version

    async def positions(self, topic: str) -> dict[int, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            if self.pinned is None:
                self.version = await postgres.live_version(conn)
            return await _positions(conn, self.version, topic)

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None:
        """Apply events and advance the offsets atomically: a crash leaves both or neither."""
        highest: dict[int, int] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            if self.pinned is None:
                # FOR SHARE: a switch (FOR UPDATE) waits for this batch, and this batch for it.
                live = await conn.fetchval("SELECT version FROM read_model_live WHERE projection = $1 FOR SHARE",
                                           self.name)
                if self.version is None:  # used without positions() first (a DLQ retry)
                    self.version = live
                elif live != self.version:
                    raise Relocated(f"postgres read model moved from v{self.version} to v{live}")
            await conn.execute(f"SET LOCAL search_path TO {schema_of(self.version)}, public")
            await self._count_accesses(conn, [i.event for i in batch if isinstance(i.event, MemoryAccessed)])
            for creates, others in hoist_creates(batch):
                await self._create(conn, creates)
                for item in others:
                    await self._apply(conn, item.event, item)
            for item in batch:
                highest[item.partition] = max(item.offset, highest.get(item.partition, -1))
            await conn.executemany(
                'INSERT INTO projection_offsets (projection, topic, partition, "offset") VALUES ($1, $2, $3, $4) '
                'ON CONFLICT (projection, topic, partition) DO UPDATE '
                'SET "offset" = GREATEST(projection_offsets."offset", EXCLUDED."offset"), updated_at = now()',
                [(self.name, topic, p, o) for p, o in highest.items()],
            )
            if self.pinned is None:  # readers read the live version; a replay's batches wake no one
                # Delivered when this transaction commits: read-your-writes waits wake at once.
                await conn.execute("SELECT pg_notify($1, $2)", APPLIED_CHANNEL, topic)

    async def _create(self, conn: asyncpg.Connection, items: list[Applied]) -> None:
        """Creates in three round trips whatever their number (replay speed): which ids exist,
        the new rows, their history. A create never overwrites: a memory is created once."""
        if not items:
            return
        existing = {str(r["id"]) for r in await conn.fetch(
            "SELECT id FROM memories WHERE id = ANY($1::uuid[])", [i.event.memory_id for i in items])}
        fresh: list[Applied] = []
        for item in items:
            if item.event.memory_id not in existing:
                existing.add(item.event.memory_id)
                fresh.append(item)
        if not fresh:
            return
        rows = [(uuid.UUID(e.memory_id), e.user_id, e.agent_id, e.run_id, e.app_id, e.text,
                 np.asarray(e.embedding, dtype=np.float32), e.embedding_model, json.dumps(e.metadata),
                 list(e.categories), e.importance, e.occurred_at, e.occurred_at, e.happened_at,
                 uuid.UUID(e.event_id)) for e in (i.event for i in fresh)]
        history = [_history_row(i.event, i, i.event.memory_id, None, i.event.text, None, i.event.metadata)
                   for i in fresh]
        if len(rows) >= COPY_FROM:
            # COPY: several times faster than INSERTs, which is what makes a replay fast. Safe
            # here: none of these ids exists, so neither do their history rows.
            await conn.copy_records_to_table("memories", records=rows, columns=_MEMORY_COLUMNS)
            await conn.copy_records_to_table("memory_history", columns=_HISTORY_COLUMNS, records=[
                (uuid.UUID(r[0]), uuid.UUID(r[1]), *r[2:]) for r in history])
            return
        await conn.executemany(
            f"INSERT INTO memories ({', '.join(_MEMORY_COLUMNS)})"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$13,$14,$15)", rows)
        await self._history_rows(conn, history)

    async def _apply(self, conn: asyncpg.Connection, event: Event, at: Applied) -> None:
        # Every write is guarded so that a redelivered event changes nothing.
        if isinstance(event, MemoryUpdated):
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
        elif isinstance(event, MemoryConsolidated):
            await self._consolidate(conn, event, at)
        elif isinstance(event, UserErased):
            await erase_user_rows(conn, event.user_id)
        elif isinstance(event, (MemoryForgotten, MemoryRestored)):
            # Forgetting hides (restorable); restoring brings a forgotten or archived memory back.
            new_state, from_states = (("forgotten", ["active", "archived"]) if isinstance(event, MemoryForgotten)
                                      else ("active", ["forgotten", "archived"]))
            rows = await conn.fetch(
                "UPDATE memories SET state = $1, updated_at = $2, version = version + 1, last_event_id = $3"
                " WHERE id = $4 AND user_id = $5 AND state = ANY($6) RETURNING id, text",
                new_state, event.occurred_at, event.event_id, event.memory_id, event.user_id, from_states)
            await self._history(conn, event, at, [(str(r["id"]), r["text"], r["text"], None, None) for r in rows])
        elif isinstance(event, (UserRegistered, ApiKeyIssued, ApiKeyRevoked, MemoryShared, MemoryUnshared)):
            await _apply_identity(conn, event)
        # Other events (conversations) do not change this read model.

    async def _consolidate(self, conn: asyncpg.Connection, event: MemoryConsolidated, at: Applied) -> None:
        """The summary is created like a memory (never overwritten: a redelivery or a second
        summary of the same cluster changes nothing); its sources become archived."""
        created = await conn.fetchval(
            f"INSERT INTO memories ({', '.join(_MEMORY_COLUMNS)})"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$13,$14,$15) ON CONFLICT (id) DO NOTHING"
            " RETURNING true",
            uuid.UUID(event.memory_id), event.user_id, event.agent_id, event.run_id, event.app_id, event.text,
            np.asarray(event.embedding, dtype=np.float32), event.embedding_model, json.dumps(event.metadata),
            list(event.categories), event.importance, event.occurred_at, event.occurred_at,
            event.happened_at or event.occurred_at, uuid.UUID(event.event_id))
        if not created:
            return
        sources = await conn.fetch(
            "UPDATE memories SET state = 'archived', updated_at = $1, version = version + 1, last_event_id = $2"
            " WHERE id = ANY($3::uuid[]) AND user_id = $4 AND state IN ('active', 'forgotten') RETURNING id, text",
            event.occurred_at, event.event_id, list(event.source_memory_ids), event.user_id)
        await self._history(conn, event, at, [(event.memory_id, None, event.text, None, event.metadata)]
                            + [(str(r["id"]), r["text"], r["text"], None, None) for r in sources])

    async def _count_accesses(self, conn: asyncpg.Connection, events: list[MemoryAccessed]) -> None:
        """Access counts and last access (recallstack.memory.access), for decay and forgetting.
        Exactly once like everything else: the counts commit with the access topic's position."""
        counts: dict[tuple[str, str], list] = {}
        for event in events:
            for memory_id in dict.fromkeys(event.memory_ids):
                entry = counts.setdefault((event.user_id, memory_id), [0, event.occurred_at])
                entry[0] += 1
                entry[1] = max(entry[1], event.occurred_at)
        if not counts:
            return
        rows = [(user_id, uuid.UUID(memory_id), n, last) for (user_id, memory_id), (n, last) in counts.items()
                if is_uuid(memory_id)]
        await conn.execute(
            "UPDATE memories m SET access_count = m.access_count + a.n,"
            " last_accessed_at = GREATEST(m.last_accessed_at, a.last)"
            " FROM unnest($1::text[], $2::uuid[], $3::int[], $4::timestamptz[]) AS a(user_id, id, n, last)"
            " WHERE m.id = a.id AND m.user_id = a.user_id",
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])

    async def _history(self, conn: asyncpg.Connection, event: Event, at: Applied, changes: list[tuple]) -> None:
        """One row per memory the event touched: (memory_id, old_text, new_text, old_metadata, new_metadata)."""
        await self._history_rows(conn, [_history_row(event, at, *change) for change in changes])

    async def _history_rows(self, conn: asyncpg.Connection, rows: list[tuple]) -> None:
        await conn.executemany(
            f"INSERT INTO memory_history ({', '.join(_HISTORY_COLUMNS)})"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12::jsonb,$13::jsonb,$14) ON CONFLICT DO NOTHING", rows)


def _history_row(event: Event, at: Applied, memory_id, old_text, new_text, old_meta, new_meta) -> tuple:
    return (event.event_id, memory_id, event.user_id, event.event_type, event.actor, event.correlation_id,
            event.occurred_at, at.partition, at.offset, old_text, new_text,
            json.dumps(old_meta) if old_meta is not None else None,
            json.dumps(new_meta) if new_meta is not None else None, getattr(event, "reason", None))


async def _apply_identity(conn: asyncpg.Connection, event: Event) -> None:
    """Users, keys and shares. Idempotent: a redelivered event finds its row already there."""
    if isinstance(event, UserRegistered):
        await conn.execute(
            "INSERT INTO users (user_id, display_name, is_admin, registered_at, last_event_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET display_name ="
            " COALESCE(EXCLUDED.display_name, users.display_name), is_admin = EXCLUDED.is_admin,"
            " last_event_id = EXCLUDED.last_event_id",
            event.user_id, event.display_name, event.is_admin, event.occurred_at, uuid.UUID(event.event_id))
    elif isinstance(event, ApiKeyIssued):
        await conn.execute(
            "INSERT INTO api_keys (key_id, user_id, prefix, key_hash, scopes, name, created_at, expires_at, actor,"
            " parent_key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (key_id) DO NOTHING",
            uuid.UUID(event.key_id), event.user_id, event.prefix, event.key_hash, list(event.scopes), event.name,
            event.occurred_at, event.expires_at, event.actor,
            uuid.UUID(event.parent_key_id) if event.parent_key_id else None)
    elif isinstance(event, ApiKeyRevoked):
        await conn.execute(
            "UPDATE api_keys SET revoked_at = $3, revoked_reason = $4"
            " WHERE key_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            uuid.UUID(event.key_id), event.user_id, event.occurred_at, event.reason)
    elif isinstance(event, MemoryShared):
        # Only a memory of the sharer (the event's user) can be shared: the command checked it
        # against this read model; checked again here so the log alone decides.
        await conn.execute(
            "INSERT INTO memory_shares (memory_id, user_id, grantee_user_id, permission, shared_at)"
            " SELECT id, user_id, $3, $4, $5 FROM memories WHERE id = $1 AND user_id = $2"
            " ON CONFLICT (memory_id, grantee_user_id) DO NOTHING",
            uuid.UUID(event.memory_id), event.user_id, event.grantee_user_id, event.permission, event.occurred_at)
    elif isinstance(event, MemoryUnshared):
        await conn.execute("DELETE FROM memory_shares WHERE memory_id = $1 AND user_id = $2 AND grantee_user_id = $3",
                           uuid.UUID(event.memory_id), event.user_id, event.grantee_user_id)


async def erase_user_rows(conn: asyncpg.Connection, user_id: str) -> dict[str, int]:
    """UserErased: delete every row of the user in every table of this version's schema (the
    search_path's first), found by their `user_id` / `grantee_user_id` columns, so tables
    added later are covered without touching this. Idempotent. Returns rows per table."""
    columns = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        " AND c.column_name IN ('user_id', 'grantee_user_id') ORDER BY table_name, column_name")
    deleted: dict[str, int] = {}
    for row in columns:
        # Identifiers from the catalog, quoted; the user id is a parameter.
        status = await conn.execute(f'DELETE FROM "{row["table_name"]}" WHERE "{row["column_name"]}" = $1', user_id)
        deleted[row["table_name"]] = deleted.get(row["table_name"], 0) + int(status.split()[-1])
    return deleted


async def _positions(conn: asyncpg.Connection, version: int, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        f'SELECT partition, "offset" FROM {schema_of(version)}.projection_offsets WHERE projection = $1'
        " AND topic = $2", PgProjector.name, topic)
    return {r["partition"]: r["offset"] for r in rows}


class PgVersions:
    """The Postgres read model's versions (projectors/versions.py): schemas rs_pg_v<n>."""

    name = PgProjector.name

    def __init__(self, pool: asyncpg.Pool, dsn: str, dim: int):
        self.pool, self.dsn, self.dim = pool, dsn, dim

    async def live_version(self) -> int:
        await postgres.migrate(self.dsn, self.dim)
        async with self.pool.acquire() as conn:
            return await postgres.live_version(conn)

    async def versions(self) -> list[int]:
        rows = await self.pool.fetch(r"SELECT nspname FROM pg_namespace WHERE nspname ~ '^rs_pg_v\d+$'")
        return sorted(int(r["nspname"].removeprefix("rs_pg_v")) for r in rows)

    async def create_version(self, version: int) -> None:
        await postgres.migrate(self.dsn, self.dim, version)

    def projection(self, version: int | None = None) -> PgProjector:
        return PgProjector(self.pool, version)

    async def begin_bulk(self, version: int) -> None:
        """Before a replay: drop the version's secondary indexes (kept in deferred_indexes);
        building each once at the end is far faster than maintaining it per row."""
        schema = schema_of(version)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {schema}.deferred_indexes"
                               " (name text PRIMARY KEY, definition text NOT NULL)")
            rows = await conn.fetch(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname"
                " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname"
                " WHERE i.schemaname = $1 AND i.tablename IN ('memories', 'memory_history')"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)", schema)
            for row in rows:
                await conn.execute(f"INSERT INTO {schema}.deferred_indexes VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                   row["indexname"], row["indexdef"])
                await conn.execute(f'DROP INDEX {schema}."{row["indexname"]}"')

    async def end_bulk(self, version: int, progress=lambda name: None) -> None:
        """Build the indexes begin_bulk deferred (with all the memory maintenance allows)."""
        schema = schema_of(version)
        if not await self.pool.fetchval("SELECT to_regclass($1)", f"{schema}.deferred_indexes"):
            return
        # Its own connection: an index over millions of rows outlasts the pool's command timeout.
        conn = await asyncpg.connect(self.dsn, command_timeout=None)
        try:
            await conn.execute("SET maintenance_work_mem = '1GB'")
            await conn.execute("SET max_parallel_maintenance_workers = 2")
            for row in await conn.fetch(f"SELECT name, definition FROM {schema}.deferred_indexes ORDER BY name"):
                progress(row["name"])
                async with conn.transaction():
                    await conn.execute(row["definition"].replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
                    await conn.execute(f"DELETE FROM {schema}.deferred_indexes WHERE name = $1", row["name"])
            await conn.execute(f"DROP TABLE {schema}.deferred_indexes")
        finally:
            await conn.close()

    async def switch(self, version: int, topic: str) -> bool:
        from projectors.versions import covers

        async with self.pool.acquire() as conn, conn.transaction():
            # FOR UPDATE waits for the live projector's batch in flight and holds the next one.
            live = await conn.fetchval("SELECT version FROM read_model_live WHERE projection = $1 FOR UPDATE",
                                       self.name)
            if live == version:
                return True
            if not covers(await _positions(conn, version, topic), await _positions(conn, live, topic)):
                return False
            await conn.execute("UPDATE read_model_live SET version = $2, switched_at = now() WHERE projection = $1",
                               self.name, version)
            await postgres.point_views(conn, version)
            return True

    async def drop(self, version: int) -> None:
        async with self.pool.acquire() as conn:
            if await postgres.live_version(conn) == version:
                raise ValueError(f"version {version} of the postgres read model is live; it cannot be dropped")
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema_of(version)} CASCADE")


def _json(value):
    return json.loads(value) if isinstance(value, str) else value
