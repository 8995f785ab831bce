"""The Redis read model: its key layout and the read helpers the query side uses.

Written only by the redis projector (one Lua script per batch: projectors/redis_store.py);
everything else reads through `RedisReadModel`. Every key lives under a prefix that versions the
key set (`rs:v<n>`; `rs:live` holds the live n, 1 when absent; a replay builds
version n+1 beside it, then switches `rs:live` atomically):

| key | type | what |
| --- | --- | --- |
| `<prefix>:mem:<memory_id>` | hash | the memory document (no embedding), deleted ones kept as tombstones (`state` = `deleted`) |
| `<prefix>:user:<user_id>:ids` | sorted set | every active memory id of the user, scored by `created_at` (epoch ms) |
| `<prefix>:user:<user_id>:recent` | sorted set | the newest `RECENT_LIMIT` of `ids` (refilled from `ids` after deletes, archives, forgets) |
| `<prefix>:user:<user_id>:inactive` | sorted set | the user's archived and forgotten memory ids, with the score they had in `ids` (a restore moves them back) |
| `<prefix>:user:<user_id>:gen` | string (integer) | generation: +1 on every change of the user's memories (states included) |
| `<prefix>:wm:<topic>` | hash | partition -> highest offset applied (the projection's positions) |

Document fields: `id, user_id, agent_id, run_id, app_id, text, metadata` (JSON text),
`categories` (JSON text), `importance`, `state` (`active`, `archived`: a consolidation's
source, `forgotten`: hidden by a worker, restorable, or `deleted`), `created_at, updated_at,
occurred_at` (ISO 8601), `version` (1 on create, +1 on each update, delete or change of
state, like Postgres),
`embedding_model`, `expires_at` (ISO 8601; absent or empty: never); absent optional fields are
None. Fields starting with `_` are the projector's bookkeeping (log position of the creating
and of the last applied event).

A cache keyed by generation must read the generation *before* the data it caches (then
a change in between only makes the entry stale under a generation nobody asks for any
more) and must include the prefix in its key (a rebuilt prefix counts from 0 again).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis

VERSION_PREFIX = "rs:v"  # + version number: the key prefix of a version
LIVE_KEY = "rs:live"  # the version readers read (absent: 1)
LIVE_PREFIX = "rs:v1"
RECENT_LIMIT = 1000  # newest memories kept per user in the recent set


def prefix_of(version: int) -> str:
    return f"{VERSION_PREFIX}{int(version)}"


async def live_version(client: aioredis.Redis, live_key: str = LIVE_KEY) -> int:
    value = await client.get(live_key)
    return int(value) if value is not None else 1


async def live_read_model(client: aioredis.Redis) -> "RedisReadModel":
    """The read model readers should use now (a replay may switch it at any time)."""
    return RedisReadModel(client, prefix_of(await live_version(client)))


@dataclass(frozen=True)
class RedisKeys:
    """The key layout; the projector's Lua script builds the same names."""
    prefix: str = LIVE_PREFIX

    def memory(self, memory_id: str) -> str:
        return f"{self.prefix}:mem:{memory_id}"

    def user_ids(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:ids"

    def user_generation(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:gen"

    def watermarks(self, topic: str) -> str:
        return f"{self.prefix}:wm:{topic}"


# One round trip, one consistent snapshot: the ids of a page and their documents.
# `recent` covers the first RECENT_LIMIT; a page beyond it reads the full `ids` set.
_PAGE_LUA = """
local prefix, user = ARGV[1], ARGV[2]
local offset, limit, recent_limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local source = prefix .. ':user:' .. user .. ':recent'
if offset + limit > recent_limit then source = prefix .. ':user:' .. user .. ':ids' end
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', source, offset, offset + limit - 1)) do
  out[#out + 1] = redis.call('HGETALL', prefix .. ':mem:' .. id)
end
return out
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_document(raw: dict | Sequence) -> dict | None:
    """A memory hash (HGETALL as a dict, or a flat [field, value, ...] list) as a dict
    with typed values; None for a missing memory."""
    if not isinstance(raw, dict):
        raw = dict(zip(raw[0::2], raw[1::2]))
    if not raw:
        return None
    d = {_text(k): _text(v) for k, v in raw.items()}
    return {
        "id": d["id"],
        "user_id": d["user_id"],
        "agent_id": d.get("agent_id"),
        "run_id": d.get("run_id"),
        "app_id": d.get("app_id"),
        "text": d["text"],
        "metadata": json.loads(d["metadata"]),
        "categories": json.loads(d["categories"]),
        "importance": float(d["importance"]) if "importance" in d else None,
        "state": d["state"],
        "created_at": datetime.fromisoformat(d["created_at"]),
        "updated_at": datetime.fromisoformat(d["updated_at"]),
        "occurred_at": datetime.fromisoformat(d["occurred_at"]),
        "version": int(d["version"]),
        "embedding_model": d["embedding_model"],
        "expires_at": datetime.fromisoformat(d["expires_at"]) if d.get("expires_at") else None,  # '': cleared
    }


def _visible(doc: dict, include_deleted: bool, include_archived: bool) -> bool:
    return include_deleted or doc["state"] == "active" or (include_archived and doc["state"] == "archived")


class RedisReadModel:
    def __init__(self, client: aioredis.Redis, prefix: str = LIVE_PREFIX):
        self.client = client
        self.keys = RedisKeys(prefix)
        self._page = client.register_script(_PAGE_LUA)

    async def positions(self, topic: str) -> dict[int, int]:
        """Partition -> highest offset applied: what a consistency token is checked against."""
        raw = await self.client.hgetall(self.keys.watermarks(topic))
        return {int(p): int(o) for p, o in raw.items()}

    async def generation(self, user_id: str) -> int:
        """Changes on every change of the user's memories; 0 before the first one."""
        value = await self.client.get(self.keys.user_generation(user_id))
        return int(value) if value is not None else 0

    async def get(self, memory_id: str, include_deleted: bool = False, include_archived: bool = False) -> dict | None:
        """The memory if it is active (or archived, with include_archived); any state, forgotten
        and deleted included, with include_deleted."""
        doc = decode_document(await self.client.hgetall(self.keys.memory(memory_id)))
        return doc if doc is not None and _visible(doc, include_deleted, include_archived) else None

    async def get_many(self, memory_ids: Sequence[str], include_deleted: bool = False,
                       include_archived: bool = False) -> dict[str, dict]:
        """The documents of those ids that exist and are visible (as in `get`), by id."""
        if not memory_ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for memory_id in memory_ids:
                pipe.hgetall(self.keys.memory(memory_id))
            raws = await pipe.execute()
        docs = (decode_document(raw) for raw in raws)
        return {d["id"]: d for d in docs if d is not None and _visible(d, include_deleted, include_archived)}

    async def recent(self, user_id: str, limit: int = 100, offset: int = 0) -> list[dict]:
        """The user's active memories, newest first (by created_at)."""
        if limit <= 0 or offset < 0:
            return []
        rows = await self._page(args=[self.keys.prefix, user_id, offset, limit, RECENT_LIMIT])
        docs = (decode_document(row) for row in rows)
        return [d for d in docs if d is not None and d["state"] == "active"]

    async def count(self, user_id: str) -> int:
        """How many active memories the user has."""
        return await self.client.zcard(self.keys.user_ids(user_id))
