"""The Postgres read model's versions (projectors/versions.py): schemas rs_pg_v<n>, the live one
named by `read_model_live` and read through views (adapters/postgres.py)."""

from __future__ import annotations

import asyncpg

from adapters import postgres
from adapters.postgres import schema_of
from projectors.pg_projector import PgProjector, read_positions
from projectors.versions import covers


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
        async with self.pool.acquire() as conn, conn.transaction():
            # FOR UPDATE waits for the live projector's batch in flight and holds the next one.
            live = await conn.fetchval("SELECT version FROM read_model_live WHERE projection = $1 FOR UPDATE",
                                       self.name)
            if live == version:
                return True
            if not covers(await read_positions(conn, version, topic), await read_positions(conn, live, topic)):
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
