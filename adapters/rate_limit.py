"""Per-key rate limits: a token bucket in Redis, shared by every API process.

The bucket refills continuously at `per_minute / 60` tokens a second up to `per_minute`
(a full minute's burst). One Lua script reads, refills, takes and writes atomically, so
concurrent processes never both spend the last token. Redis' own clock (TIME) is used,
so processes with skewed clocks agree.

Redis down: fail OPEN (the request is served, `recallstack_rate_limit_unavailable_total`
counts it, a warning is logged at most once a minute). A rate limit protects capacity;
refusing every request because its store is down would turn a cache outage into a
full outage. Documented in docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from prometheus_client import Counter
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from adapters import resilience
from domain.circuit_breaker import CircuitBreaker, CircuitOpen

log = logging.getLogger(__name__)

LIMITED = Counter("recallstack_rate_limited_total", "Requests refused with 429 by the per-key rate limit")
UNAVAILABLE = Counter("recallstack_rate_limit_unavailable_total",
                      "Requests let through because the rate-limit store (Redis) did not answer")

# KEYS[1] bucket; ARGV: capacity, refill per second, cost. Returns {allowed, seconds until enough tokens}.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0  # whole seconds, at least 1 when refused (the Retry-After header)


class RateLimiter:
    def __init__(self, redis_url: str, per_minute: int, timeout_s: float = 0.05, breaker: CircuitBreaker | None = None):
        if per_minute < 1:
            raise ValueError(f"RECALLSTACK_RATE_LIMIT_PER_MIN must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self.timeout_s = timeout_s
        self._redis = aioredis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self._redis.register_script(_TAKE)
        self._warned_at = 0.0
        self.breaker = breaker or CircuitBreaker("redis")  # open: fail open without asking Redis

    async def take(self, bucket: str) -> Decision:
        try:
            allowed, wait = await resilience.call(
                self.breaker, lambda: self._script(keys=[f"rs:ratelimit:{bucket}"],
                                                   args=[self.per_minute, self.per_minute / 60.0, 1]),
                timeout_s=self.timeout_s * 2, failures=(RedisError, OSError))
        except (RedisError, OSError, CircuitOpen, asyncio.TimeoutError) as exc:
            UNAVAILABLE.inc()
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limit store unavailable (%s): requests are let through", type(exc).__name__)
            return Decision(True)
        if int(allowed):
            return Decision(True)
        LIMITED.inc()
        return Decision(False, max(1, math.ceil(float(wait))))

    async def close(self) -> None:
        await self._redis.aclose()
