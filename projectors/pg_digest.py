"""A content digest of one version of the Postgres read model (schema rs_pg_v<n>).

Two versions built from the same log, in this cluster or another one, have the same
digest; a restore followed by a replay is checked with it (docs/operations.md).

Included: every base table of the version's schema (memories, memory_history, and any table
a later migration adds), every row, every column: as Postgres renders it in JSON (timestamps
in UTC, jsonb canonical), vectors by their binary form (vector_send), except:
- tables: projection_offsets (the projection's log positions), schema_migrations (when the
  migrations ran), deferred_indexes (a replay's bookkeeping);
- columns: log_partition and log_offset (where an event sat in the log: a restored log has
  other offsets), and generated columns (memories.tsv: derived from the text).

Rows are hashed one by one in Postgres (SHA-256 of the row's JSON text) and sorted by that
hash, so the order rows were written in does not matter; a table's digest is the SHA-256 of
its sorted row hashes, the version's digest the SHA-256 of "table rows digest" lines.
"""

from __future__ import annotations

import hashlib

import asyncpg

from adapters.postgres import schema_of

EXCLUDED_TABLES = ("projection_offsets", "schema_migrations", "deferred_indexes")
EXCLUDED_COLUMNS = ("log_partition", "log_offset")
QUERY_TIMEOUT_S = 24 * 3600  # a large table takes longer than the pool's command timeout


def _row_bytes(columns) -> str:
    """SQL for one row's canonical bytes: a JSON object of its columns (vectors left out),
    then each vector column's binary form (vector_send: dimensions and float4s), in column
    order. Names come from the catalog, quoted."""
    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    plain = [c["column_name"] for c in columns if c["udt_name"] != "vector"]
    vectors = [c["column_name"] for c in columns if c["udt_name"] == "vector"]
    objects = [
        "jsonb_build_object(" + ", ".join(f"'{name.replace(chr(39), chr(39) * 2)}', t.{quoted(name)}"
                                          for name in plain[i:i + 50]) + ")"
        for i in range(0, len(plain), 50)] or ["'{}'::jsonb"]
    parts = [f"convert_to(({' || '.join(objects)})::text, 'UTF8')"]
    parts += [f"coalesce(vector_send(t.{quoted(name)}), '\\x'::bytea)" for name in vectors]
    return " || ".join(parts)


def combine(parts: dict[str, dict]) -> str:
    """The digest over named parts ({name: {"rows": n, "digest": hex}}), in name order."""
    lines = "".join(f"{name} {part['rows']} {part['digest']}\n" for name, part in sorted(parts.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def rows_digest(row_hashes) -> str:
    digest = hashlib.sha256()
    for h in row_hashes:
        digest.update(h.encode() if isinstance(h, str) else h)
        digest.update(b"\n")
    return digest.hexdigest()


async def digest(pool: asyncpg.Pool, version: int) -> dict:
    """{"projection", "version", "digest", "parts": {table: {"rows", "digest"}}, "excluded"}."""
    schema = schema_of(version)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL TIME ZONE 'UTC'")
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            raise LookupError(f"version {version} of the postgres read model does not exist (no schema {schema})")
        tables = [r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'"
            " AND NOT (table_name = ANY($2::text[])) ORDER BY table_name", schema, list(EXCLUDED_TABLES))]
        parts = {}
        for table in tables:
            columns = await conn.fetch(
                "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = $1"
                " AND table_name = $2 AND is_generated <> 'ALWAYS' AND NOT (column_name = ANY($3::text[]))"
                " ORDER BY column_name", schema, table, list(EXCLUDED_COLUMNS))
            hashes = [r["h"] for r in await conn.fetch(
                f'SELECT sha256({_row_bytes(columns)}) AS h FROM {schema}."{table}" t ORDER BY h',
                timeout=QUERY_TIMEOUT_S)]
            parts[table] = {"rows": len(hashes), "digest": rows_digest(hashes)}
    return {"projection": "postgres", "version": version, "digest": combine(parts), "parts": parts,
            "excluded": {"tables": list(EXCLUDED_TABLES), "columns": [*EXCLUDED_COLUMNS, "generated columns"]}}
