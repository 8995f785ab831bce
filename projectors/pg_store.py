"""The Postgres read model's writes (projectors/pg_projection.PgWrites) in SQL, on the connection
of one transaction whose search_path names the version written (projectors/pg_projector.py).

Every write is guarded so that a redelivered event changes nothing: a create never overwrites,
an update skips the event that already changed the row, state moves only from the states given,
history rows are keyed by (event, memory).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg
import numpy as np

from domain.events import (ApiKeyIssued, ApiKeyRevoked, Event, MemoryAccessed, MemoryConsolidated, MemoryDeleted,
                           MemoryScopeDeleted, MemoryShared, MemoryUnshared, MemoryUpdated, UserRegistered)
from domain.events import UserProfileUpdated
from domain.identifiers import is_uuid
from projectors.applied import Applied
from projectors import core_memory_rows

COPY_FROM = 64  # creates in one batch from which COPY beats INSERT
MEMORY_COLUMNS = ("id", "user_id", "agent_id", "run_id", "app_id", "text", "embedding", "embedding_model",
                  "metadata", "categories", "importance", "created_at", "updated_at", "occurred_at", "last_event_id",
                  "expires_at")
HISTORY_COLUMNS = ("event_id", "memory_id", "user_id", "event_type", "actor", "correlation_id", "occurred_at",
                   "log_partition", "log_offset", "old_text", "new_text", "old_metadata", "new_metadata", "reason")
_INSERT_MEMORY = (f"INSERT INTO memories ({', '.join(MEMORY_COLUMNS)})"
                  " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$13,$14,$15,$16)")


class PgStore:
    """PgWrites on `conn`, inside the caller's transaction."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def create_memories(self, items: Sequence[Applied]) -> None:
        """Creates in three round trips whatever their number (replay speed): which ids exist,
        the new rows, their history."""
        if not items:
            return
        existing = {str(r["id"]) for r in await self.conn.fetch(
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
                 uuid.UUID(e.event_id), e.expires_at) for e in (i.event for i in fresh)]
        history = [history_row(i.event, i, i.event.memory_id, None, i.event.text, None, i.event.metadata)
                   for i in fresh]
        if len(rows) >= COPY_FROM:
            # COPY: several times faster than INSERTs, which is what makes a replay fast. Safe
            # here: none of these ids exists, so neither do their history rows.
            await self.conn.copy_records_to_table("memories", records=rows, columns=MEMORY_COLUMNS)
            await self.conn.copy_records_to_table("memory_history", columns=HISTORY_COLUMNS, records=[
                (uuid.UUID(r[0]), uuid.UUID(r[1]), *r[2:]) for r in history])
            return
        await self.conn.executemany(_INSERT_MEMORY, rows)
        await self._history_rows(history)

    async def create_summary(self, event: MemoryConsolidated, at: Applied) -> bool:
        created = await self.conn.fetchval(
            f"{_INSERT_MEMORY} ON CONFLICT (id) DO NOTHING RETURNING true",
            uuid.UUID(event.memory_id), event.user_id, event.agent_id, event.run_id, event.app_id, event.text,
            np.asarray(event.embedding, dtype=np.float32), event.embedding_model, json.dumps(event.metadata),
            list(event.categories), event.importance, event.occurred_at, event.occurred_at,
            event.happened_at or event.occurred_at, uuid.UUID(event.event_id), None)  # a summary never expires
        if created:
            await self._history(event, at, [(event.memory_id, None, event.text, None, event.metadata)])
        return bool(created)

    async def update_memory(self, event: MemoryUpdated, at: Applied) -> None:
        old = await self.conn.fetchrow(
            "SELECT text, metadata FROM memories WHERE id = $1 AND user_id = $2 AND state <> 'deleted'"
            " AND last_event_id <> $3 FOR UPDATE", event.memory_id, event.user_id, event.event_id)
        if old is None:
            return  # unknown, someone else's, deleted, or this very event again
        # COALESCE: a field the event leaves None stays as it is.
        await self.conn.execute(
            "UPDATE memories SET text = COALESCE($2, text), embedding = COALESCE($3, embedding),"
            " embedding_model = COALESCE($4, embedding_model), metadata = COALESCE($5::jsonb, metadata),"
            " categories = COALESCE($6, categories), importance = COALESCE($7, importance),"
            " expires_at = CASE WHEN $10 THEN NULL ELSE COALESCE($11, expires_at) END,"
            " updated_at = $8, version = version + 1, last_event_id = $9 WHERE id = $1",
            event.memory_id, event.text,
            np.asarray(event.embedding, dtype=np.float32) if event.embedding is not None else None,
            event.embedding_model, json.dumps(event.metadata) if event.metadata is not None else None,
            list(event.categories) if event.categories is not None else None, event.importance,
            event.occurred_at, event.event_id, event.expiry_cleared, event.expires_at,
        )
        await self._history(event, at, [(event.memory_id, old["text"], event.text or old["text"],
                                         _json(old["metadata"]), event.metadata)])

    async def delete_memory(self, event: MemoryDeleted, at: Applied) -> None:
        await self._mark_deleted(event, at, "id = $3 AND user_id = $4", [event.memory_id, event.user_id])

    async def delete_scope(self, event: MemoryScopeDeleted, at: Applied) -> None:
        # Per-user order: exactly the memories this user had when the event was appended.
        await self._mark_deleted(
            event, at, "user_id = $3 AND ($4::text IS NULL OR agent_id = $4) AND ($5::text IS NULL OR run_id = $5)"
            " AND ($6::text IS NULL OR app_id = $6)", [event.user_id, event.agent_id, event.run_id, event.app_id])

    async def _mark_deleted(self, event: Event, at: Applied, where: str, args: list) -> None:
        rows = await self.conn.fetch(
            "UPDATE memories SET state = 'deleted', updated_at = $1, version = version + 1, last_event_id = $2"
            f" WHERE {where} AND state <> 'deleted' RETURNING id, text", event.occurred_at, event.event_id, *args)
        await self._history(event, at, [(str(r["id"]), r["text"], None, None, None) for r in rows])

    async def set_state(self, event: Event, at: Applied, memory_ids: Sequence[str], to: str,
                        from_states: Sequence[str]) -> None:
        if not memory_ids:
            return
        rows = await self.conn.fetch(
            "UPDATE memories SET state = $1, updated_at = $2, version = version + 1, last_event_id = $3"
            " WHERE id = ANY($4::uuid[]) AND user_id = $5 AND state = ANY($6) RETURNING id, text",
            to, event.occurred_at, event.event_id, list(memory_ids), event.user_id, list(from_states))
        await self._history(event, at, [(str(r["id"]), r["text"], r["text"], None, None) for r in rows])

    async def count_accesses(self, events: Sequence[MemoryAccessed]) -> None:
        """recallstack.memory.access, for decay and forgetting. Exactly once like everything else:
        the counts commit with the position."""
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
        await self.conn.execute(
            "UPDATE memories m SET access_count = m.access_count + a.n,"
            " last_accessed_at = GREATEST(m.last_accessed_at, a.last)"
            " FROM unnest($1::text[], $2::uuid[], $3::int[], $4::timestamptz[]) AS a(user_id, id, n, last)"
            " WHERE m.id = a.id AND m.user_id = a.user_id",
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])

    async def erase_user(self, user_id: str) -> None:
        await erase_user_rows(self.conn, user_id)

    async def register_user(self, event: UserRegistered) -> None:
        await self.conn.execute(
            "INSERT INTO users (user_id, display_name, is_admin, registered_at, last_event_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET display_name ="
            " COALESCE(EXCLUDED.display_name, users.display_name), is_admin = EXCLUDED.is_admin,"
            " last_event_id = EXCLUDED.last_event_id",
            event.user_id, event.display_name, event.is_admin, event.occurred_at, uuid.UUID(event.event_id))

    async def issue_key(self, event: ApiKeyIssued) -> None:
        await self.conn.execute(
            "INSERT INTO api_keys (key_id, user_id, prefix, key_hash, scopes, name, created_at, expires_at, actor,"
            " parent_key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (key_id) DO NOTHING",
            uuid.UUID(event.key_id), event.user_id, event.prefix, event.key_hash, list(event.scopes), event.name,
            event.occurred_at, event.expires_at, event.actor,
            uuid.UUID(event.parent_key_id) if event.parent_key_id else None)

    async def revoke_key(self, event: ApiKeyRevoked) -> None:
        await self.conn.execute(
            "UPDATE api_keys SET revoked_at = $3, revoked_reason = $4"
            " WHERE key_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            uuid.UUID(event.key_id), event.user_id, event.occurred_at, event.reason)

    async def share(self, event: MemoryShared) -> None:
        # Only a memory of the sharer can be shared: the command checked it against this read
        # model; checked again here so the log alone decides.
        await self.conn.execute(
            "INSERT INTO memory_shares (memory_id, user_id, grantee_user_id, permission, shared_at)"
            " SELECT id, user_id, $3, $4, $5 FROM memories WHERE id = $1 AND user_id = $2"
            " ON CONFLICT (memory_id, grantee_user_id) DO NOTHING",
            uuid.UUID(event.memory_id), event.user_id, event.grantee_user_id, event.permission, event.occurred_at)

    async def unshare(self, event: MemoryUnshared) -> None:
        await self.conn.execute(
            "DELETE FROM memory_shares WHERE memory_id = $1 AND user_id = $2 AND grantee_user_id = $3",
            uuid.UUID(event.memory_id), event.user_id, event.grantee_user_id)

    async def save_profile(self, event: UserProfileUpdated) -> None:
        await self.conn.execute(
            "INSERT INTO user_profiles (user_id, version, profile, builder, built_from, memory_count, updated_at,"
            " last_event_id) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8) ON CONFLICT (user_id) DO UPDATE SET"
            " version = EXCLUDED.version, profile = EXCLUDED.profile, builder = EXCLUDED.builder,"
            " built_from = EXCLUDED.built_from, memory_count = EXCLUDED.memory_count,"
            " updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id"
            " WHERE user_profiles.version < EXCLUDED.version",
            event.user_id, event.version, json.dumps(event.profile), event.builder, event.built_from,
            event.memory_count, event.occurred_at, uuid.UUID(event.event_id))

    async def edit_core_block(self, event: Event, at: Applied) -> None:
        await core_memory_rows.edit_block(self.conn, event, at)

    async def _history(self, event: Event, at: Applied, changes: list[tuple]) -> None:
        """One row per memory the event touched: (memory_id, old_text, new_text, old_metadata, new_metadata)."""
        await self._history_rows([history_row(event, at, *change) for change in changes])

    async def _history_rows(self, rows: list[tuple]) -> None:
        if rows:
            await self.conn.executemany(
                f"INSERT INTO memory_history ({', '.join(HISTORY_COLUMNS)})"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12::jsonb,$13::jsonb,$14) ON CONFLICT DO NOTHING", rows)


def history_row(event: Event, at: Applied, memory_id, old_text, new_text, old_meta, new_meta) -> tuple:
    return (event.event_id, memory_id, event.user_id, event.event_type, event.actor, event.correlation_id,
            event.occurred_at, at.partition, at.offset, old_text, new_text,
            json.dumps(old_meta) if old_meta is not None else None,
            json.dumps(new_meta) if new_meta is not None else None, getattr(event, "reason", None))


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


def _json(value):
    return json.loads(value) if isinstance(value, str) else value

