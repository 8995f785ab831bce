"""The query API's caches: query embeddings (in-process LRU, then Redis) and whole search
answers (Redis, keyed by the user's generation counter).

Why an answer cached under generation g is never stale: the Redis projector bumps a
user's generation and its watermark in one script, so one read gives a consistent pair
(g, w) where w is the highest offset Redis applied on the user's partition. The answer is
computed from Postgres; it is stored only if Postgres had applied at least w on that
partition before the search ran, i.e. it reflects every change generation g counts. Any
later change bumps g, and nobody asks for the old key again. Degraded answers (a source
left out) are never stored. Entries also expire (ANSWER_TTL_S) so recency boosts and
forgotten keys do not linger.

Memory expiry changes no generation (it is a read-time filter: domain/expiry.py), so an answer
holding a memory whose `expires_at` has passed is a miss at lookup, never served.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import redis.asyncio as aioredis
from prometheus_client import Counter

from adapters.embedders import Embedder
from adapters import resilience
from adapters.redis_read_model import LIVE_KEY, VERSION_PREFIX
from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from domain.expiry import unexpired

log = logging.getLogger(__name__)

LOOKUPS = Counter("recallstack_query_cache_lookups_total", "Cache lookups of the query API",
                  ["cache", "outcome"])  # cache: embedding_lru | embedding_redis | answers; outcome: hit | miss
EMBEDDING_TTL_S = 7 * 86_400
ANSWER_TTL_S = 600
ANSWER_INDEX = "rs:qc:index:"  # + user id: projectors/redis_projector.ANSWER_USER_INDEX
# CircuitOpen: Redis's breaker (adapters/resilience.py) refused the call without trying.
REDIS_ERRORS = (aioredis.RedisError, OSError, asyncio.TimeoutError, CircuitOpen)
_FAILURES = (aioredis.RedisError, OSError)


_BACKGROUND: set[asyncio.Task] = set()  # held until done: the event loop keeps only weak references


def in_background(store: Awaitable) -> None:
    """Run a cache store after the answer: a client never waits on Redis for a write whose
    loss costs only a later miss. Its failure is dropped (the breaker counted it)."""
    task = asyncio.ensure_future(store)
    _BACKGROUND.add(task)
    task.add_done_callback(lambda t: (_BACKGROUND.discard(t), t.cancelled() or t.exception()))


class HitRatio:
    """Hits and misses of one cache in this process (the /v1/stats/cache figures)."""

    def __init__(self, name: str):
        self.name, self.hits, self.misses = name, 0, 0

    def count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        LOOKUPS.labels(self.name, "hit" if hit else "miss").inc()

    def as_dict(self) -> dict:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "ratio": round(self.hits / total, 4) if total else None}


class EmbeddingCache:
    """Query text -> vector: an in-process LRU in front of Redis in front of the embedder.
    Keys name what makes the vectors (the embedder's vector_id, e.g. the int8 graph of the query
    embedder, else its model_id), so a model or runtime change never serves another one's vectors."""

    def __init__(self, embedder: Embedder, redis: aioredis.Redis | None, lru_size: int = 10_000,
                 breaker: CircuitBreaker | None = None, timeout_s: float = 0.25):
        self.embedder, self.redis, self.lru_size = embedder, redis, lru_size
        self.breaker = breaker or CircuitBreaker("redis")  # open: straight to the model
        self.timeout_s = timeout_s
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lru_ratio, self.redis_ratio = HitRatio("embedding_lru"), HitRatio("embedding_redis")

    def _key(self, text: str) -> str:
        maker = getattr(self.embedder, "vector_id", self.embedder.model_id)
        digest = hashlib.sha256(f"{maker}\x00{text}".encode()).hexdigest()[:40]
        return f"rs:qemb:{digest}"

    async def embed(self, text: str) -> tuple[np.ndarray, str]:
        """The vector of `text` and where it came from (lru | redis | model)."""
        key = self._key(text)
        vector = self._lru.get(key)
        self.lru_ratio.count(vector is not None)
        if vector is not None:
            self._lru.move_to_end(key)
            return vector, "lru"
        if self.redis is not None:
            try:
                raw = await resilience.call(self.breaker, lambda: self.redis.get(key), timeout_s=self.timeout_s,
                                            failures=_FAILURES)
            except REDIS_ERRORS:
                raw = None
            else:
                self.redis_ratio.count(raw is not None)
            if raw is not None and len(raw) == 4 * self.embedder.dim:
                vector = np.frombuffer(raw, dtype=np.float32).copy()
                self._remember(key, vector)
                return vector, "redis"
        vector = await asyncio.to_thread(self.embedder.embed_one, text)
        self._remember(key, vector)
        if self.redis is not None:  # the search does not wait for it
            in_background(resilience.call(self.breaker, lambda: self.redis.set(
                key, np.asarray(vector, dtype=np.float32).tobytes(), ex=EMBEDDING_TTL_S),
                timeout_s=self.timeout_s, failures=_FAILURES))
        return vector, "model"

    def _remember(self, key: str, vector: np.ndarray) -> None:
        self._lru[key] = vector
        if len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)


# One round trip: the live prefix, the user's generation, Redis's watermark on the user's
# partition, and the cached answer under that generation.
_LOOKUP_LUA = f"""
local prefix = '{VERSION_PREFIX}' .. (redis.call('GET', ARGV[5]) or '1')
local gen = redis.call('GET', prefix .. ':user:' .. ARGV[1] .. ':gen') or '0'
local wm = redis.call('HGET', prefix .. ':wm:' .. ARGV[2], ARGV[3]) or '-1'
local entry = redis.call('GET', 'rs:qc:' .. prefix .. ':' .. ARGV[1] .. ':' .. gen .. ':' .. ARGV[4])
return {{prefix, gen, wm, entry or false}}
"""


@dataclass(frozen=True)
class AnswerSlot:
    """Where an answer would be cached, and what Postgres must have applied for it to be stored."""
    key: str
    watermark: int  # Redis's highest applied offset on the user's partition at lookup
    partition: int
    user_id: str = ""


class AnswerCache:
    def __init__(self, redis: aioredis.Redis, topic: str, partition_of: Callable[[str], int], ttl_s: int = ANSWER_TTL_S,
                 live_key: str = LIVE_KEY, breaker: CircuitBreaker | None = None, timeout_s: float = 0.25,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.redis, self.topic, self.partition_of, self.ttl_s = redis, topic, partition_of, ttl_s
        self.breaker = breaker or CircuitBreaker("redis")  # open: lookups raise CircuitOpen at once (cache bypassed)
        self.timeout_s = timeout_s
        self.live_key = live_key  # another key only in tests, which must not move the real one
        self.clock = clock  # memory expiry is judged by it
        self._lookup = redis.register_script(_LOOKUP_LUA)
        self.ratio = HitRatio("answers")
        # Monotonic reads in this process: partition -> the highest log offset a read with a
        # consistency token has waited for. An answer stored before it is stale even while
        # the Redis projector (whose generation keys the entries) has not caught up yet.
        self.seen: dict[int, int] = {}

    @staticmethod
    def request_key(parts: dict) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]

    async def lookup(self, user_id: str, request_key: str) -> tuple[dict | None, AnswerSlot]:
        partition = self.partition_of(user_id)
        prefix, gen, wm, entry = await resilience.call(
            self.breaker, lambda: self._lookup(args=[user_id, self.topic, partition, request_key, self.live_key]),
            timeout_s=self.timeout_s, failures=_FAILURES)
        prefix, gen = _text(prefix), _text(gen)
        slot = AnswerSlot(f"rs:qc:{prefix}:{user_id}:{gen}:{request_key}", int(wm), partition, user_id)
        answer = json.loads(entry) if entry else None
        if answer is not None and answer.pop("_applied", -1) < self.seen.get(partition, -1):
            answer = None  # older than a write this process has already shown
        if answer is not None and _holds_expired(answer, self.clock()):
            answer = None  # a memory in it expired since it was stored
        self.ratio.count(answer is not None)
        return answer, slot

    def saw(self, offsets: Iterable[tuple[int, int]]) -> None:
        """A read waited for these (partition, offset): no cached answer from before them is served."""
        for partition, offset in offsets:
            if offset > self.seen.get(partition, -1):
                self.seen[partition] = offset

    async def store(self, slot: AnswerSlot, answer: dict, pg_applied: dict[int, int]) -> bool:
        """Store `answer` if Postgres (as read before the search) covered the slot's watermark."""
        if pg_applied.get(slot.partition, -1) < slot.watermark:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(slot.key, json.dumps({**answer, "_applied": pg_applied.get(slot.partition, -1)}, default=str),
                     ex=self.ttl_s)
            # Listed per user, so that an erasure (the Redis projector) finds the answers, which quote text.
            pipe.sadd(ANSWER_INDEX + slot.user_id, slot.key)
            pipe.expire(ANSWER_INDEX + slot.user_id, self.ttl_s)
            await pipe.execute()
        return True


def _holds_expired(answer: dict, now: datetime) -> bool:
    results = [r for r in answer.get("results") or [] if isinstance(r, dict)]
    return len(unexpired(results, now)) != len(results)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
