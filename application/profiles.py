"""The user profile read (GET /v1/users/{id}/profile): the latest version the consolidation worker
appended (UserProfileUpdated, projected into Postgres), or, for a user with memories but no
profile yet, one built on read by the offline builder (domain/profile.py; nothing appended:
reads never write). A user without either has no profile (ProfileNotFound: 404).

The answer says how fresh it is: `version` (0: built on read), `updated_at`, `built_from` (the
consistency token of the last memory change it reflects) and `stale` (the user's memories
changed since: the worker's next pass refreshes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from application.freshness import Consistency, PostgresGuard
from domain.profile import ProfileBounds, ProfileMemory, build_offline


class ProfileReads(Protocol):
    async def stored(self, user_id: str) -> dict | None: ...

    async def last_change(self, user_id: str) -> str | None: ...

    async def memories(self, user_id: str, limit: int) -> list[ProfileMemory]: ...


class ProfileNotFound(Exception):
    def __init__(self, user_id: str):
        super().__init__(f"user {user_id} has no profile: they have no memories yet (a profile is built from them)")
        self.user_id = user_id


@dataclass
class Profiles:
    reads: ProfileReads
    consistency: Consistency
    postgres: PostgresGuard
    bounds: ProfileBounds = ProfileBounds()

    async def get(self, user_id: str, consistency_token: str | None = None) -> dict:
        await self.consistency.postgres_applied(consistency_token, self.postgres)
        stored = await self.postgres.read(self.reads.stored(user_id))
        last_change = await self.postgres.read(self.reads.last_change(user_id))
        if stored is not None:
            return {"user_id": user_id, "version": stored["version"], "updated_at": stored["updated_at"],
                    "built_from": stored["built_from"], "builder": stored["builder"],
                    "memory_count": stored["memory_count"], "stale": stored["built_from"] != last_change,
                    "profile": stored["profile"]}
        memories = await self.postgres.read(self.reads.memories(user_id, self.bounds.max_memories))
        if not memories:
            raise ProfileNotFound(user_id)
        return {"user_id": user_id, "version": 0, "updated_at": None, "built_from": last_change,
                "builder": "offline (on read)", "memory_count": len(memories), "stale": False,
                "profile": build_offline(memories, self.bounds)}
