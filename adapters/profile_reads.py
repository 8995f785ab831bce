"""Reads of user profiles from the Postgres read model (the public views of the live version),
shared by the query API (GET /v1/users/{id}/profile) and the consolidation worker that refreshes
them: the stored profile, the user's active memories as the profile builder reads them, and the
log position of the user's last memory change (what a profile is "built from")."""

from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg

from domain.consistency import ConsistencyToken
from domain.profile import ProfileMemory


class PgProfileReads:
    def __init__(self, pool: Callable[[], asyncpg.Pool], topic: str):
        self.pool_of, self.topic = pool, topic  # a callable: the query API makes its pool in its lifespan

    async def stored(self, user_id: str) -> dict | None:
        """The user's latest profile row, or None."""
        row = await self.pool_of().fetchrow(
            "SELECT user_id, version, profile, builder, built_from, memory_count, updated_at FROM user_profiles"
            " WHERE user_id = $1", user_id)
        if row is None:
            return None
        found = dict(row)
        found["profile"] = json.loads(found["profile"]) if isinstance(found["profile"], str) else found["profile"]
        return found

    async def last_change(self, user_id: str) -> str | None:
        """A consistency token of the last event that changed one of the user's memories (a
        create, update, delete, archive, forget or restore: each leaves a history row), or None."""
        rows = await self.pool_of().fetch(
            "SELECT log_partition, max(log_offset) AS log_offset FROM memory_history WHERE user_id = $1"
            " GROUP BY log_partition", user_id)
        if not rows:
            return None
        return ConsistencyToken.of(self.topic, [(r["log_partition"], r["log_offset"]) for r in rows]).encode()

    async def memories(self, user_id: str, limit: int) -> list[ProfileMemory]:
        """The user's active memories a profile is built from: the `limit` most important, none whose
        `expires_at` has passed (reads hide them from that instant: domain/expiry.py)."""
        rows = await self.pool_of().fetch(
            "SELECT id, text, categories, importance, created_at FROM memories WHERE user_id = $1"
            " AND state = 'active' AND (expires_at IS NULL OR expires_at > now())"
            " ORDER BY importance DESC NULLS LAST, created_at DESC, id LIMIT $2", user_id, limit)
        return [profile_memory(r) for r in rows]

    async def users(self) -> list[str]:
        """Every user with a profile (a user whose last memory went still needs an emptied one)."""
        return [r["user_id"] for r in await self.pool_of().fetch("SELECT user_id FROM user_profiles ORDER BY user_id")]


def profile_memory(row) -> ProfileMemory:
    return ProfileMemory(memory_id=str(row["id"]), text=row["text"], categories=tuple(row["categories"] or ()),
                         importance=row["importance"], created_at=row["created_at"])
