"""The answer cache on the real Redis, written by the real Redis projector: an answer is
stored only when Postgres covered what Redis had applied, and a change of the user's
memories makes every cached answer of that user unreachable."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis

from adapters.redis_read_model import prefix_of
from domain.events import MemoryCreated, MemoryUpdated
from projectors.redis_projector import RedisProjector
from projectors.applied import Applied
from query_api.caches import AnswerCache

pytestmark = pytest.mark.integration

TOPIC = "recallstack.memory.events"
PARTITION = 3


@pytest.fixture
async def setup(settings):
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    version = random.randrange(10**6, 10**9)
    live_key = f"test:live:{uuid.uuid4().hex}"
    await client.set(live_key, version)
    cache = AnswerCache(client, TOPIC, lambda _user: PARTITION, live_key=live_key)
    yield client, RedisProjector(client, version), cache
    keys = [k async for k in client.scan_iter(match=f"{prefix_of(version)}:*")]
    keys += [k async for k in client.scan_iter(match=f"rs:qc:{prefix_of(version)}:*")]
    await client.delete(live_key, *keys)
    await client.aclose()


def created(user_id: str, text: str) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor="test", memory_id=str(uuid.uuid4()), text=text, embedding=(0.6, 0.8),
                         embedding_model="m", occurred_at=datetime.now(timezone.utc),
                         happened_at=datetime.now(timezone.utc))


async def test_store_waits_for_postgres_and_a_change_invalidates(setup, user_id):
    client, projector, cache = setup
    memory = created(user_id, "tea with milk")
    await projector.apply_batch(TOPIC, [Applied(PARTITION, 10, memory)])

    answer, slot = await cache.lookup(user_id, "k1")
    assert answer is None and slot.watermark == 10 and slot.partition == PARTITION
    # Postgres is behind Redis on the user's partition: the answer may lack the memory; not stored.
    assert await cache.store(slot, {"results": []}, {PARTITION: 9}) is False
    assert (await cache.lookup(user_id, "k1"))[0] is None
    assert await cache.store(slot, {"results": [memory.memory_id]}, {PARTITION: 10}) is True
    assert (await cache.lookup(user_id, "k1"))[0] == {"results": [memory.memory_id]}
    assert cache.ratio.hits == 1 and cache.ratio.misses == 2

    # Another user's change on the same partition moves the watermark but not this user's generation.
    await projector.apply_batch(TOPIC, [Applied(PARTITION, 11, created(user_id + "-other", "x"))])
    assert (await cache.lookup(user_id, "k1"))[0] == {"results": [memory.memory_id]}

    # A change of this user's memories: the old answer is never served again.
    await projector.apply_batch(TOPIC, [Applied(PARTITION, 12, MemoryUpdated(
        user_id=user_id, actor="test", memory_id=memory.memory_id, text="coffee", occurred_at=datetime.now(timezone.utc)))])
    answer, slot = await cache.lookup(user_id, "k1")
    assert answer is None and slot.watermark == 12


async def test_an_answer_older_than_a_write_this_process_has_shown_is_not_served(setup, user_id):
    """Monotonic reads: a search with a consistency token saw a write that the Redis projector
    (whose generation keys the answers) has not applied yet; the answer stored before the
    write must not come back to the next search without a token."""
    client, projector, cache = setup
    await projector.apply_batch(TOPIC, [Applied(PARTITION, 20, created(user_id, "coffee: flat white"))])
    _, slot = await cache.lookup(user_id, "k")
    assert await cache.store(slot, {"results": ["flat white"]}, {PARTITION: 20}) is True
    assert (await cache.lookup(user_id, "k"))[0] == {"results": ["flat white"]}
    cache.saw([(PARTITION, 25), (PARTITION + 1, 3)])  # an update at offset 25, not in Redis yet
    assert (await cache.lookup(user_id, "k"))[0] is None
    cache.saw([(PARTITION, 21)])  # an older token moves nothing back
    assert (await cache.lookup(user_id, "k"))[0] is None


async def test_an_answer_holding_a_memory_that_expired_since_is_not_served(setup, user_id):
    """Expiry moves no generation (it is a read-time filter): the lookup itself checks the clock."""
    client, projector, _cache = setup
    clock = [datetime(2031, 1, 1, 12, tzinfo=timezone.utc)]
    cache = AnswerCache(client, TOPIC, lambda _user: PARTITION, live_key=_cache.live_key, clock=lambda: clock[0])
    await projector.apply_batch(TOPIC, [Applied(PARTITION, 30, created(user_id, "on call this week"))])
    _, slot = await cache.lookup(user_id, "k")
    expires_at = (clock[0] + timedelta(seconds=1)).isoformat()
    answer = {"results": [{"id": "a", "expires_at": expires_at}, {"id": "b", "expires_at": None}]}
    assert await cache.store(slot, answer, {PARTITION: 30}) is True
    assert (await cache.lookup(user_id, "k"))[0] == answer
    clock[0] += timedelta(seconds=1)  # the instant it expires
    assert (await cache.lookup(user_id, "k"))[0] is None
