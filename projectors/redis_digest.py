"""A content digest of one version of the Redis read model (key prefix rs:v<n>).

Included: every key under the version's prefix (named without the prefix, so two versions
compare), with its type and whole value: memory documents (hashes), each user's `ids`,
`recent` and `inactive` sorted sets (members and scores) and generation counters, except:
- the watermarks `<prefix>:wm:<topic>` (the projection's log positions);
- the document fields `_t _p _o _ct _cp _co` (topic, partition and offset of the event that
  created / last changed a document: a restored log has other offsets). `_e` (the id of the
  event that last changed it) stays: it is the same in every log.

Each key becomes one line (JSON: key, type, canonical value), hashed; the digest is the
SHA-256 of the sorted line hashes. Keys written while the digest is taken may or may not
be counted: take it of a version nobody writes (a replayed one), or accept that.
"""

from __future__ import annotations

import hashlib
import json

import redis.asyncio as aioredis

from adapters.redis_read_model import live_version, prefix_of
from projectors.pg_digest import combine, rows_digest

POSITION_FIELDS = ("_t", "_p", "_o", "_ct", "_cp", "_co")
_SCAN = 1000


def _text(value) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


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
    parts_hashes: dict[str, list[str]] = {}
    for start in range(0, len(keys), _SCAN):
        chunk = keys[start:start + _SCAN]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
        types = [_text(t) for t in await pipe.execute()]
        pipe = client.pipeline(transaction=False)
        for key, kind in zip(chunk, types):
            if kind == "hash":
                pipe.hgetall(key)
            elif kind == "zset":
                pipe.zrange(key, 0, -1, withscores=True)
            elif kind == "string":
                pipe.get(key)
            elif kind == "set":
                pipe.smembers(key)
            elif kind == "list":
                pipe.lrange(key, 0, -1)
            else:  # gone meanwhile
                pipe.exists(key)
        for key, kind, value in zip(chunk, types, await pipe.execute()):
            if kind == "hash":
                canonical = sorted((_text(k), _text(v)) for k, v in value.items() if _text(k) not in POSITION_FIELDS)
            elif kind == "zset":
                canonical = sorted((_text(m), repr(float(s))) for m, s in value)
            elif kind == "set":
                canonical = sorted(_text(m) for m in value)
            elif kind == "list":
                canonical = [_text(m) for m in value]
            elif kind == "string":
                canonical = _text(value)
            else:
                continue
            relative = key[len(prefix):]
            line = json.dumps([relative, kind, canonical], ensure_ascii=False, separators=(",", ":"))
            # Parts by what the key holds: mem (documents), user:*:ids / recent / inactive / gen.
            part = "mem" if relative.startswith("mem:") else (
                f"user:{relative.rsplit(':', 1)[-1]}" if relative.startswith("user:") else relative.split(":", 1)[0])
            parts_hashes.setdefault(part, []).append(hashlib.sha256(line.encode()).hexdigest())
    parts = {name: {"rows": len(hashes), "digest": rows_digest(sorted(hashes))}
             for name, hashes in parts_hashes.items()}
    return {"projection": "redis", "version": version, "digest": combine(parts), "parts": parts,
            "excluded": {"keys": [f"{prefix}wm:*"], "fields": list(POSITION_FIELDS)}}
