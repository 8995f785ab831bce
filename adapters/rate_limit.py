"""Rate limits: token buckets in Redis, shared by every API process.

Three kinds of bucket, each refilling continuously at `per_minute / 60` tokens a second up
to `per_minute` (a full minute's burst):
- per API key (`rs:ratelimit:<key_id>`) and per user (`rs:ratelimit:user:<user_id>`): a
  request takes a token from both, so minting more keys does not raise a user's limit;
- per client address, of failed authentications (`rs:authfail:<address>`): each presented
  key that is malformed, unknown, revoked or expired takes a token; while the bucket is
  empty every request from that address that presents a key is refused (429) before its key
  is checked, a valid key included (else the limit would still answer "this guess is right").

One Lua script checks and takes every bucket of a request atomically (all or none), so
concurrent processes never both spend the last token and a refused request costs no
token anywhere. Redis' own clock (TIME) is used, so processes with skewed clocks agree.
Each process also remembers, until it may retry, an address it saw blocked: its next
requests are refused without asking Redis or Postgres.

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

LIMITED = Counter("recallstack_rate_limited_total", "Requests refused with 429 by a rate limit",
                  ["limit"])  # key, user, address (too many failed authentications)
UNAVAILABLE = Counter("recallstack_rate_limit_unavailable_total",
                      "Requests let through because the rate-limit store (Redis) did not answer")

# KEYS: the buckets. ARGV: 4 per bucket: capacity, refill per second, need, cost.
# Allowed when every bucket holds its `need`; then each gives its `cost` (never below 0).
# Returns {allowed, first refusing bucket (1-based, 0 none), seconds until it holds its need,
#          seconds until every bucket holds 1 token after this call}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens, existed = {}, {}
local refused, wait = 0, 0
for i = 1, #KEYS do
  local cap, rate, need = tonumber(ARGV[4*i-3]), tonumber(ARGV[4*i-2]), tonumber(ARGV[4*i-1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  existed[i] = state[1] ~= false
  local held = tonumber(state[1]) or cap
  local at = tonumber(state[2]) or now
  held = math.min(cap, held + math.max(0, now - at) * rate)
  tokens[i] = held
  if refused == 0 and held < need then
    refused = i
    wait = (need - held) / rate
  end
end
if refused > 0 then
  return {0, refused, tostring(wait), tostring(wait)}
end
local after = 0
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[4*i-3]), tonumber(ARGV[4*i-2]), tonumber(ARGV[4*i])
  local left = math.max(0, tokens[i] - cost)
  if left < 1 then after = math.max(after, (1 - left) / rate) end
  if cost > 0 or existed[i] then  -- a bucket only looked at is not created
    redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'at', tostring(now))
    redis.call('EXPIRE', KEYS[i], math.ceil(cap / rate) + 1)
  end
end
return {1, 0, '0', tostring(after)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0  # whole seconds, at least 1 when refused (the Retry-After header)
    limit: str | None = None  # what refused it: "key", "user" or "address"


@dataclass(frozen=True)
class _Bucket:
    redis_key: str
    limit: str
    per_minute: int
    need: int
    cost: int


class RateLimiter:
    def __init__(self, redis_url: str, per_minute: int, timeout_s: float = 0.05, breaker: CircuitBreaker | None = None,
                 per_user_per_minute: int | None = None, auth_failures_per_minute: int = 100):
        for name, value in (("RATE_LIMIT_PER_MIN", per_minute), ("RATE_LIMIT_PER_USER_PER_MIN", per_user_per_minute),
                            ("AUTH_FAILURES_PER_MIN", auth_failures_per_minute)):
            if value is not None and value < 1:
                raise ValueError(f"RECALLSTACK_{name} must be at least 1, got {value}")
        self.per_minute = per_minute
        self.per_user_per_minute = per_user_per_minute or per_minute  # default: a user gets what one key gets
        self.auth_failures_per_minute = auth_failures_per_minute
        self.timeout_s = timeout_s
        self._redis = aioredis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self._redis.register_script(_TAKE)
        self._warned_at = 0.0
        self.breaker = breaker or CircuitBreaker("redis")  # open: fail open without asking Redis
        self._blocked: dict[str, float] = {}  # address -> monotonic time until which this process refuses it

    def _failures(self, address: str, need: int, cost: int) -> _Bucket:
        return _Bucket(f"rs:authfail:{address}", "address", self.auth_failures_per_minute, need, cost)

    async def admit(self, address: str, key_id: str | None = None, user_id: str | None = None) -> Decision:
        """A request from `address` with a valid key: refused while the address is blocked
        for failed authentications; else takes a token of the key's and the user's buckets
        (those given: an admin key's requests are not limited)."""
        if (wait := self.blocked_here(address)) is not None:
            return self._refused("address", wait)
        buckets = [self._failures(address, need=1, cost=0)]
        if key_id is not None:
            buckets.append(_Bucket(f"rs:ratelimit:{key_id}", "key", self.per_minute, 1, 1))
        if user_id is not None:
            buckets.append(_Bucket(f"rs:ratelimit:user:{user_id}", "user", self.per_user_per_minute, 1, 1))
        return await self._take(buckets, address)

    async def failed(self, address: str) -> Decision:
        """Count a failed authentication from `address`; not allowed when that emptied its
        bucket (later requests from it are refused until it refills)."""
        return await self._take([self._failures(address, need=0, cost=1)], address)

    def blocked_here(self, address: str) -> float | None:
        """Seconds this process still refuses `address` for (no I/O), or None."""
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return None
        return left

    async def _take(self, buckets: list[_Bucket], address: str) -> Decision:
        args: list[float] = []
        for b in buckets:
            args += [b.per_minute, b.per_minute / 60.0, b.need, b.cost]
        try:
            allowed, refused, wait, after = await resilience.call(
                self.breaker, lambda: self._script(keys=[b.redis_key for b in buckets], args=args),
                timeout_s=self.timeout_s * 2, failures=(RedisError, OSError))
        except (RedisError, OSError, CircuitOpen, asyncio.TimeoutError) as exc:
            UNAVAILABLE.inc()
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limit store unavailable (%s): requests are let through", type(exc).__name__)
            return Decision(True)
        if not int(allowed):
            limit = buckets[int(refused) - 1].limit
            if limit == "address":
                self._remember_blocked(address, float(wait))
            return self._refused(limit, float(wait))
        if any(b.limit == "address" and b.cost for b in buckets) and float(after) > 0:
            self._remember_blocked(address, float(after))  # this failure emptied the address's bucket
            return Decision(False, max(1, math.ceil(float(after))), "address")
        return Decision(True)

    def _remember_blocked(self, address: str, seconds: float) -> None:
        if len(self._blocked) > 10_000:  # many addresses must not grow it without bound
            self._blocked.clear()
        self._blocked[address] = time.monotonic() + seconds

    @staticmethod
    def _refused(limit: str, wait: float) -> Decision:
        LIMITED.labels(limit).inc()
        return Decision(False, max(1, math.ceil(wait)), limit)

    async def close(self) -> None:
        await self._redis.aclose()
