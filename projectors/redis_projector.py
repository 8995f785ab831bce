"""RedisProjector: the Redis read model kept from the log (key layout: adapters/redis_read_model.py),
each batch and its watermarks in one atomic step.

What each event writes is projectors/redis_projection.py; the Lua script that writes a batch,
projectors/redis_store.py; the versions (key prefixes rs:v<n>), projectors/redis_versions.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis import exceptions as rx

from adapters.redis_read_model import LIVE_KEY, RECENT_LIMIT, VERSION_PREFIX, RedisKeys, live_version, prefix_of
from projectors.applied import Applied, Relocated
from projectors.redis_projection import compact_json, project
from projectors.redis_store import ANSWER_USER_INDEX, APPLY_LUA, IDEM_USER_INDEX, RedisBatch


class RedisBusy(Exception):
    """Redis answered BUSY (a script of another client runs long): transient."""


class RedisProjector:
    name = "redis"
    # Outages wait and retry (the runner never dead-letters on these). OOM and READONLY
    # are refused before the script writes anything, and pass once memory or a failover does.
    transient_errors = (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError, OSError, rx.OutOfMemoryError,
                        rx.ReadOnlyError, RedisBusy)

    def __init__(self, client: aioredis.Redis, version: int | None = None, live_key: str = LIVE_KEY):
        self.client = client
        self.live_key = live_key  # another key only in tests, which must not move the real one
        self.pinned = version  # None: follow the live version
        self.keys = RedisKeys(prefix_of(version or 1))
        self._script = client.register_script(APPLY_LUA)
        self._following = False

    async def _follow_live(self) -> None:
        self.keys = RedisKeys(prefix_of(await live_version(self.client, self.live_key)))
        self._following = True

    async def positions(self, topic: str) -> dict[int, int]:
        if self.pinned is None:
            await self._follow_live()
        raw = await self.client.hgetall(self.keys.watermarks(topic))
        return {int(p): int(o) for p, o in raw.items()}

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None:
        """Apply the events and advance the watermarks in one atomic step."""
        if batch:
            writes = RedisBatch()
            for item in batch:
                project(writes, item)
            await self.apply_items(topic, writes.items)

    async def apply_items(self, topic: str, items: list[dict]) -> tuple[int, int]:
        """Run the script on encoded items; returns (applied, skipped as already applied)."""
        if self.pinned is None and not self._following:  # used without positions() first (a DLQ retry)
            await self._follow_live()
        follow = self.live_key if self.pinned is None else ""
        try:
            applied, skipped = await self._script(
                args=[self.keys.prefix, topic, compact_json(items), RECENT_LIMIT, follow, VERSION_PREFIX,
                      IDEM_USER_INDEX, ANSWER_USER_INDEX])
        except rx.ResponseError as exc:
            if str(exc).startswith("RELOCATED"):
                raise Relocated(f"redis read model {exc}") from exc
            if str(exc).startswith("BUSY"):  # another client's long script: wait for it, never dead-letter
                raise RedisBusy(str(exc)) from exc
            raise
        return int(applied), int(skipped)
