"""The Redis read model's versions (projectors/versions.py): key prefixes rs:v<n>, the live one
named by `rs:live` (adapters/redis_read_model.py)."""

from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis_read_model import LIVE_KEY, VERSION_PREFIX, live_version, prefix_of
from projectors.redis_projector import RedisProjector


# Made live only if the candidate's watermarks cover the live one's: atomic in Redis.
_SWITCH_LUA = """
local live = redis.call('GET', KEYS[1]) or '1'
local live_wm = redis.call('HGETALL', ARGV[1] .. live .. ':wm:' .. ARGV[3])
for i = 1, #live_wm, 2 do
  local mine = redis.call('HGET', ARGV[1] .. ARGV[2] .. ':wm:' .. ARGV[3], live_wm[i])
  if not mine or tonumber(mine) < tonumber(live_wm[i + 1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RedisVersions:
    """The Redis read model's versions (projectors/versions.py): key prefixes rs:v<n>."""

    name = RedisProjector.name

    def __init__(self, client: aioredis.Redis, live_key: str = LIVE_KEY):
        self.client = client
        self.live_key = live_key
        self._switch = client.register_script(_SWITCH_LUA)

    async def live_version(self) -> int:
        return await live_version(self.client, self.live_key)

    async def versions(self) -> list[int]:
        found = {await self.live_version()}
        async for key in self.client.scan_iter(match=f"{VERSION_PREFIX}*:wm:*", count=1000):
            head = (key.decode() if isinstance(key, bytes) else key).split(":")[1]
            if head[1:].isdigit():
                found.add(int(head[1:]))
        return sorted(found)

    async def create_version(self, version: int) -> None:
        pass  # keys come into being with the first write

    def projection(self, version: int | None = None) -> RedisProjector:
        return RedisProjector(self.client, version, self.live_key)

    async def switch(self, version: int, topic: str) -> bool:
        return bool(await self._switch(keys=[self.live_key], args=[VERSION_PREFIX, str(int(version)), topic]))

    async def drop(self, version: int) -> None:
        if await self.live_version() == version:
            raise ValueError(f"version {version} of the redis read model is live; it cannot be dropped")
        batch = []
        async for key in self.client.scan_iter(match=f"{prefix_of(version)}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)
