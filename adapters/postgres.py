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


CONNECT_TIMEOUT_S = 2.0  # a Postgres that does not answer costs a new connection this long, not asyncpg's 60 s


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10, command_timeout: float = 30,
                      **options) -> asyncpg.Pool:
    """`options`: asyncpg's (server_settings, reset...), e.g. a search pool's session."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     command_timeout=command_timeout, timeout=CONNECT_TIMEOUT_S, **options)


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("projectors.migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text()))
    return sorted(found)


class DimensionMismatch(RuntimeError):
    pass


# The read model lives in numbered schemas (rs_pg_v1, rs_pg_v2, ...); `read_model_live`
# says which one readers read, through views in `public` with the tables' names, so a
# replay switches every reader at once by redefining the views in one transaction.
PROJECTION = "postgres"
READ_TABLES = ("memories", "memory_history", "projection_offsets", "users", "api_keys", "memory_shares",
               "user_profiles", "core_memory_blocks", "core_memory_history")
_LEGACY_TABLES = (*READ_TABLES, "schema_migrations")


def schema_of(version: int) -> str:
    return f"rs_pg_v{int(version)}"  # int(): a schema name is never built from anything else


async def migrate(dsn: str, dim: int, version: int | None = None) -> list[str]:
    """Bring a version's schema (default: the live one; version 1 made live on a fresh
    database) up to date, each migration in its own transaction. Returns the ones applied."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS read_model_live (projection text PRIMARY KEY,"
                " version integer NOT NULL, switched_at timestamptz NOT NULL DEFAULT now())")
            await _adopt_unversioned(conn)
            live = await live_version(conn)
            target = version or live or 1
            done = await _migrate_schema(conn, schema_of(target), dim)
            if live is None:
                async with conn.transaction():
                    await conn.execute("INSERT INTO read_model_live (projection, version) VALUES ($1, $2)",
                                       PROJECTION, target)
                    await point_views(conn, target)
            elif done and target == live:
                await point_views(conn, live)  # a migration may have added columns
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await conn.close()


async def live_version(conn) -> int | None:
    return await conn.fetchval("SELECT version FROM read_model_live WHERE projection = $1", PROJECTION)


async def point_views(conn: asyncpg.Connection, version: int) -> None:
    """Readers' names (public.memories, ...) now mean version `version`'s tables."""
    for table in READ_TABLES:
        await conn.execute(f"CREATE OR REPLACE VIEW public.{table} AS SELECT * FROM {schema_of(version)}.{table}")


async def _migrate_schema(conn: asyncpg.Connection, schema: str, dim: int) -> list[str]:
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    applied = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
    done = []
    for number, name, sql in migrations():
        if number in applied:
            continue
        async with conn.transaction():
            # Unqualified names in the migration files land in this version's schema.
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            await conn.execute(sql.replace("{dim}", str(dim)))
            await conn.execute(f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)", number, name)
        done.append(f"{number:04d}_{name}")
    existing = await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'",
        f"{schema}.memories")
    if existing != dim:
        raise DimensionMismatch(
            f"{schema}.memories.embedding has {existing} dimensions but the configured embedder makes {dim}; "
            "use the embedder the data was written with, or a fresh database")
    return done


async def _adopt_unversioned(conn: asyncpg.Connection) -> None:
    """A database from before versioned schemas keeps its tables in public: they become
    version 1 (moved, not copied) and live."""
    kind = await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = to_regclass('public.memories')")
    if kind != "r":
        return
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema_of(1)}")
        for table in _LEGACY_TABLES:
            if await conn.fetchval("SELECT to_regclass($1)", f"public.{table}"):
                await conn.execute(f"ALTER TABLE public.{table} SET SCHEMA {schema_of(1)}")
        await conn.execute("INSERT INTO read_model_live (projection, version) VALUES ($1, 1)"
                           " ON CONFLICT (projection) DO UPDATE SET version = 1", PROJECTION)
        await point_views(conn, 1)


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

    async def expiry(self, memory_id: str):
        """The memory's expires_at (None: never, or no such memory)."""
        try:
            return await self.pool.fetchval("SELECT expires_at FROM memories WHERE id = $1::uuid", memory_id)
        except CONNECTION_ERRORS as exc:
            raise ConnectionError(f"Postgres is unreachable: {exc}") from exc
