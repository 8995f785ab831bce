"""A content digest of one version of the Redis read model (key prefix rs:v<n>).

Included: every key under the version's prefix (named without the prefix, so two versions
compare), with its type and whole value: memory documents (hashes), each user's `ids`,
`recent` and `inactive` sorted sets (members and scores) and generation counters, except:
- the watermarks `<prefix>:wm:<topic>` (the projection's log positions);
- the document fields `_t _p _o _ct _cp _co` (topic, partition and offset of the event that
  created / last changed a document: a restored log has other offsets). `_e` (the id of the
  event that last changed it) stays: it is the same in every log.

Redis itself renders each key as one canonical string (the key without its prefix, its
type, then hash fields / sorted-set members sorted with their values / scores, separated by
control characters) and hashes it (a Lua script, SHA-1, a few hundred keys per call, so
only 40 characters per key travel); the part's digest (documents, ids, recent, inactive,
generations) is the SHA-256 of its sorted key hashes. Keys written while the digest is
taken may or may not be counted: take it of a version nobody writes (a replayed one), or of
a quiet stack.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis_read_model import live_version, prefix_of
from projectors.pg_digest import combine, rows_digest

POSITION_FIELDS = ("_t", "_p", "_o", "_ct", "_cp", "_co")
_SCAN = 5000
_CHUNK = 500

# KEYS: the keys; ARGV[1]: the prefix's length, ARGV[2..]: hash fields left out.
_KEY_HASHES = r"""
local cut = tonumber(ARGV[1])
local skip = {}
for i = 2, #ARGV do skip[ARGV[i]] = true end
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local body = {}
  if kind == 'hash' then
    local flat = redis.call('HGETALL', key)
    for j = 1, #flat, 2 do
      if not skip[flat[j]] then body[#body + 1] = flat[j] .. '\31' .. flat[j + 1] end
    end
    table.sort(body)
  elseif kind == 'zset' then
    local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for j = 1, #flat, 2 do body[#body + 1] = flat[j] .. '\31' .. flat[j + 1] end
    table.sort(body)
  elseif kind == 'set' then
    body = redis.call('SMEMBERS', key)
    table.sort(body)
  elseif kind == 'list' then
    body = redis.call('LRANGE', key, 0, -1)
  elseif kind == 'string' then
    body = {redis.call('GET', key)}
  end
  if kind == 'none' then
    out[i] = ''
  else
    out[i] = redis.sha1hex(string.sub(key, cut + 1) .. '\29' .. kind .. '\29' .. table.concat(body, '\30'))
  end
end
return out
"""


def _text(value) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _part(relative: str) -> str:
    """Which part a key belongs to: mem (documents), user:ids / recent / inactive / gen, ..."""
    if relative.startswith("mem:"):
        return "mem"
    if relative.startswith("user:"):
        return f"user:{relative.rsplit(':', 1)[-1]}"
    return relative.split(":", 1)[0]


async def digest(client: aioredis.Redis, version: int) -> dict:
    prefix = f"{prefix_of(version)}:"
    keys, positions = [], 0
    async for key in client.scan_iter(match=f"{prefix}*", count=_SCAN):
        name = _text(key)
        if name.startswith(f"{prefix}wm:"):
            positions += 1
        else:
            keys.append(name)
    if not keys and not positions and version != await live_version(client):
        raise LookupError(f"version {version} of the redis read model has no keys (does it exist?)")
    script = client.register_script(_KEY_HASHES)
    hashes: dict[str, list[str]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        for key, line in zip(chunk, await script(keys=chunk, args=[len(prefix), *POSITION_FIELDS])):
            line = _text(line)
            if line:  # gone meanwhile
                hashes.setdefault(_part(key[len(prefix):]), []).append(line)
    parts = {name: {"rows": len(h), "digest": rows_digest(sorted(h))} for name, h in hashes.items()}
    return {"projection": "redis", "version": version, "digest": combine(parts), "parts": parts,
            "excluded": {"keys": [f"{prefix}wm:*"], "fields": list(POSITION_FIELDS)}}
