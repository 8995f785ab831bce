"""Per-block locks for core memory edits, in Redis (application/core_memory.BlockLocks).

A lock is Redis's SET NX with an expiry (redis-py's Lock: released only by its owner, atomically),
so it holds across every command API process. Beside it, the consistency token of the block's
last edit: the next holder waits for the read model to apply it before checking the block. The
expiry (30 s) outlasts any append the log acknowledges (the producer gives up well before); the
token is kept a day (by then applied: a missing one only means no wait). Both keys name the user:
they hold no content, and expire on their own.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from domain.core_memory import BlockBusy

log = logging.getLogger(__name__)
LOCK_TTL_S = 30.0
LOCK_WAIT_S = 5.0  # how long an edit waits for the block's lock before it is refused (409)
TOKEN_TTL_S = 86_400


class _Held:
    def __init__(self, client: aioredis.Redis, token_key: str, last_token: str | None):
        self.client, self.token_key, self.last_token = client, token_key, last_token

    async def wrote(self, token: str) -> None:
        """After the append: never fails the edit the log acknowledged (without the token, the next
        edit may check a stale block; its version then makes the projection skip it, on record)."""
        try:
            await self.client.set(self.token_key, token, ex=TOKEN_TTL_S)
        except RedisError:
            log.warning("core memory: could not record the last edit's token", exc_info=True)


class RedisBlockLocks:
    def __init__(self, client: aioredis.Redis, wait_s: float = LOCK_WAIT_S, ttl_s: float = LOCK_TTL_S):
        self.client, self.wait_s, self.ttl_s = client, wait_s, ttl_s

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[_Held]:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # any label or id makes a safe key
        lock = self.client.lock(f"rs:core:lock:{digest}", timeout=self.ttl_s, blocking_timeout=self.wait_s)
        try:
            got = await lock.acquire()
        except RedisError as exc:
            raise ConnectionError(f"Redis is unreachable: {type(exc).__name__}") from exc
        if not got:
            raise BlockBusy(key.rsplit("\x00", 1)[-1])
        try:
            token_key = f"rs:core:last:{digest}"
            try:
                last = await self.client.get(token_key)
            except RedisError as exc:
                raise ConnectionError(f"Redis is unreachable: {type(exc).__name__}") from exc
            yield _Held(self.client, token_key, last.decode() if last else None)
        finally:
            try:
                await lock.release()
            except (LockError, RedisError):
                pass  # expired (then someone else may hold it) or Redis is gone: it expires on its own
