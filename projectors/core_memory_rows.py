"""The Postgres rows of core memory blocks (projectors/pg_store.PgStore.edit_core_block delegates here).

What an edit does is domain/core_memory.apply; this module reads the block (locked for the
transaction), writes the block after it and one history row per event, keyed by event id so a
redelivered event changes nothing. A skipped edit (a conflict, a block that is not there) leaves
the block as it is and is still recorded, with why, so the history shows every event.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from domain import core_memory
from domain.core_memory import Block
from domain.events import Event
from projectors.applied import Applied

if TYPE_CHECKING:  # the in-memory double imports this module's rows without a database client
    import asyncpg

BLOCK_COLUMNS = ("user_id", "agent_id", "label", "value", "limit_tokens", "description", "version", "created_at",
                 "updated_at", "last_event_id")


def block_of(row) -> Block | None:
    if row is None:
        return None
    return Block(row["user_id"], row["agent_id"] or None, row["label"], row["value"], row["limit_tokens"],
                 row["version"], row["description"], row["created_at"], row["updated_at"])


def history_row(event: Event, at: Applied, before: Block | None, outcome: core_memory.Applied) -> dict:
    """The history row of one event (the in-memory double keeps the same dicts)."""
    after = outcome.block
    return {"event_id": event.event_id, "user_id": event.user_id, "agent_id": event.agent_id or "",
            "label": event.label, "event_type": event.event_type, "actor": event.actor,
            "correlation_id": event.correlation_id, "occurred_at": event.occurred_at, "log_partition": at.partition,
            "log_offset": at.offset, "version": getattr(event, "version", 1),
            "old_value": before.value if before is not None else None,
            "new_value": None if outcome.skipped or after is None else after.value,
            "applied": outcome.skipped is None, "skipped": outcome.skipped}


async def edit_block(conn: asyncpg.Connection, event: Event, at: Applied) -> None:
    if await conn.fetchval("SELECT 1 FROM core_memory_history WHERE event_id = $1", uuid.UUID(event.event_id)):
        return  # this very event again
    key = (event.user_id, event.agent_id or "", event.label)
    before = block_of(await conn.fetchrow(
        "SELECT * FROM core_memory_blocks WHERE user_id = $1 AND agent_id = $2 AND label = $3 FOR UPDATE", *key))
    outcome = core_memory.apply(before, event)
    after = outcome.block
    if outcome.skipped is None and after is None:
        await conn.execute("DELETE FROM core_memory_blocks WHERE user_id = $1 AND agent_id = $2 AND label = $3", *key)
    elif outcome.skipped is None:
        await conn.execute(
            f"INSERT INTO core_memory_blocks ({', '.join(BLOCK_COLUMNS)}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
            " ON CONFLICT (user_id, agent_id, label) DO UPDATE SET value = EXCLUDED.value,"
            " limit_tokens = EXCLUDED.limit_tokens, description = EXCLUDED.description, version = EXCLUDED.version,"
            " updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id",
            *key, after.value, after.limit_tokens, after.description, after.version, after.created_at,
            after.updated_at, uuid.UUID(event.event_id))
    row = history_row(event, at, before, outcome)
    await conn.execute(
        f"INSERT INTO core_memory_history ({', '.join(row)}) VALUES"
        f" ({', '.join(f'${i}' for i in range(1, len(row) + 1))}) ON CONFLICT (event_id) DO NOTHING",
        *[uuid.UUID(v) if k == "event_id" else v for k, v in row.items()])
