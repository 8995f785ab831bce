"""Postgres access: a pool with pgvector registered, and versioned migrations."""

from __future__ import annotations

import re
from importlib import resources

import asyncpg
from pgvector.asyncpg import register_vector

MIGRATION_LOCK = 0x7265_6361_6C6C  # advisory lock id: one migrator at a time
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     command_timeout=30)


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("projectors.migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text()))
    return sorted(found)


class DimensionMismatch(RuntimeError):
    pass


async def migrate(dsn: str, dim: int) -> list[str]:
    """Apply pending migrations in order, each in its own transaction. Returns their names."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            done = []
            for version, name, sql in migrations():
                if version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.replace("{dim}", str(dim)))
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                done.append(f"{version:04d}_{name}")
            existing = await conn.fetchval(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'embedding'"
            )
            if existing != dim:
                raise DimensionMismatch(
                    f"memories.embedding has {existing} dimensions but the configured embedder makes {dim}; "
                    "use the embedder the data was written with, or a fresh database"
                )
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await conn.close()


async def applied_offsets(pool: asyncpg.Pool, projection: str, topic: str) -> dict[int, int]:
    rows = await pool.fetch(
        'SELECT partition, "offset" FROM projection_offsets WHERE projection = $1 AND topic = $2', projection, topic
    )
    return {r["partition"]: r["offset"] for r in rows}


CONNECTION_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                     asyncpg.TooManyConnectionsError)


class PgMemoryLookup:
    """Who owns a memory, from the Postgres read model (the command side's ownership check)."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def owner(self, memory_id: str) -> tuple[str, str] | None:
        try:
            row = await self.pool.fetchrow("SELECT user_id, state FROM memories WHERE id = $1::uuid", memory_id)
        except CONNECTION_ERRORS as exc:
            raise ConnectionError(f"Postgres is unreachable: {exc}") from exc
        return (row["user_id"], row["state"]) if row else None
