"""The Redis store of Idempotency-Key (the wrapper itself is application/idempotency.py).

The first request with a key claims it in Redis (SET NX, pending); once its events are
in the log the answer is stored under the key for 24 h (Redis keeps it across restarts
of the API: append-only file). A retry with the same key and body gets that answer; the
same key with another body is refused; a retry while the first is still running waits
for it briefly.

A stored answer quotes the memory text, so each user's answer keys are also listed in a
set (USER_INDEX + user id) that the Redis projector deletes with them on UserErased.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import redis.asyncio as aioredis

# Re-exported: the errors the store raises, and the ids a keyed command uses (tests, callers).
from application.idempotency import (IdempotencyConflict, IdempotencyInProgress,  # noqa: F401
                                     IdempotencyUnavailable, derived_id, fingerprint)
from domain.circuit_breaker import CircuitBreaker

PENDING_TTL_S = 30
ANSWER_TTL_S = 24 * 3600
USER_INDEX = "recallstack:idem:user:"  # projectors/redis_projector.IDEM_USER_INDEX


class IdempotencyStore:
    def __init__(self, client: aioredis.Redis, wait_s: float = 2.0, breaker: CircuitBreaker | None = None):
        self.client = client
        self.wait_s = wait_s
        self.breaker = breaker or CircuitBreaker("redis")  # open: 503 at once, no round trip to a dead Redis

    @staticmethod
    def _key(user_id: str, key: str) -> str:
        return "recallstack:idem:" + hashlib.sha256(f"{user_id}\x00{key}".encode()).hexdigest()

    async def begin(self, user_id: str, key: str, fp: str) -> dict | None:
        """Claim the key. Returns the stored answer of an earlier identical request, or None
        when this request is the first and must run."""
        name = self._key(user_id, key)
        deadline = asyncio.get_running_loop().time() + self.wait_s
        if self.breaker.state == "open":
            raise IdempotencyUnavailable(f"Redis is unreachable (circuit open, retry in "
                                         f"{self.breaker.retry_after_s():.0f} s)")
        try:
            while True:
                claimed = await self.client.set(name, json.dumps({"fp": fp, "state": "pending"}),
                                                nx=True, ex=PENDING_TTL_S)
                self.breaker.record_success()
                if claimed:
                    return None
                raw = await self.client.get(name)
                if raw is None:
                    continue  # it just expired: claim again
                record = json.loads(raw)
                if record["fp"] != fp:
                    raise IdempotencyConflict("Idempotency-Key was already used with a different request")
                if record["state"] == "done":
                    return record["answer"]
                if asyncio.get_running_loop().time() > deadline:
                    raise IdempotencyInProgress("a request with this Idempotency-Key is still being processed")
                await asyncio.sleep(0.02)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            self.breaker.record_failure()
            raise IdempotencyUnavailable(f"Redis is unreachable: {exc}") from exc

    async def finish(self, user_id: str, key: str, fp: str, answer: dict) -> None:
        name = self._key(user_id, key)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(name, json.dumps({"fp": fp, "state": "done", "answer": answer}), ex=ANSWER_TTL_S)
            pipe.sadd(USER_INDEX + user_id, name)
            pipe.expire(USER_INDEX + user_id, ANSWER_TTL_S)
            await pipe.execute()

    async def abandon(self, user_id: str, key: str) -> None:
        try:
            await self.client.delete(self._key(user_id, key))
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            pass  # the pending claim expires by itself
