"""Core memory blocks read from the Postgres read model (both APIs: the command side checks an edit
against the block, the query side answers reads and places blocks first in /v1/context)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from domain.core_memory import Block

HISTORY_FIELDS = ("event_id", "event_type", "actor", "occurred_at", "version", "old_value", "new_value", "applied",
                  "skipped", "log_partition", "log_offset")


def _block(row) -> Block:
    return Block(row["user_id"], row["agent_id"] or None, row["label"], row["value"], row["limit_tokens"],
                 row["version"], row["description"], row["created_at"], row["updated_at"])


class PgCoreBlocks:
    """application/core_memory.BlockReads on the live read model (its public views)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]):
        self.pool = pool  # a callable: the APIs create their pool in the lifespan

    async def block(self, user_id: str, agent_id: str | None, label: str) -> Block | None:
        row = await self.pool().fetchrow(
            "SELECT * FROM core_memory_blocks WHERE user_id = $1 AND agent_id = $2 AND label = $3",
            user_id, agent_id or "", label)
        return _block(row) if row else None

    async def blocks(self, user_id: str, agent_ids: tuple[str | None, ...]) -> list[Block]:
        rows = await self.pool().fetch(
            "SELECT * FROM core_memory_blocks WHERE user_id = $1 AND agent_id = ANY($2::text[])"
            " ORDER BY agent_id <> '', created_at, label", user_id, [a or "" for a in agent_ids])
        return [_block(r) for r in rows]

    async def history(self, user_id: str, agent_id: str | None, label: str) -> list[dict]:
        rows = await self.pool().fetch(
            f"SELECT {', '.join(HISTORY_FIELDS)} FROM core_memory_history WHERE user_id = $1 AND agent_id = $2"
            " AND label = $3 ORDER BY log_partition, log_offset", user_id, agent_id or "", label)
        return [{k: (str(r[k]) if k == "event_id" else r[k].isoformat() if k == "occurred_at" else r[k])
                 for k in HISTORY_FIELDS} for r in rows]
