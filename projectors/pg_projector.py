"""PgProjector: the Postgres read model kept from the log, its log positions in the same transaction.

What each event writes is projectors/pg_projection.py, the SQL projectors/pg_store.py; this
module holds the transaction: the version written (the read model lives in versioned schemas,
adapters/postgres.py; a projector either follows the live version, the projector process, or
writes one version, a replay), the positions, and the notice that wakes read-your-writes waits.
The versions themselves are projectors/pg_versions.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from adapters import postgres
from adapters.postgres import CONNECTION_ERRORS, schema_of
from projectors.applied import Applied, Relocated
from projectors.pg_projection import project_batch
from projectors.pg_store import PgStore
from settings import APPLIED_CHANNEL


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
            return await read_positions(conn, self.version, topic)

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
            await project_batch(PgStore(conn), batch)
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


async def read_positions(conn: asyncpg.Connection, version: int, topic: str) -> dict[int, int]:
    rows = await conn.fetch(
        f'SELECT partition, "offset" FROM {schema_of(version)}.projection_offsets WHERE projection = $1'
        " AND topic = $2", PgProjector.name, topic)
    return {r["partition"]: r["offset"] for r in rows}
