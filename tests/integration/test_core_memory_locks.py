"""The per-block Redis locks of core memory edits (adapters/core_memory_locks.py) on the real Redis:
one holder per block at a time, across clients (as across command API processes); other blocks do
not wait; a holder past the wait is refused (BlockBusy); the next holder reads the last edit's token."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from adapters.core_memory_locks import RedisBlockLocks
from domain.core_memory import BlockBusy

pytestmark = pytest.mark.integration


@pytest.fixture
async def clients(settings):
    made = [aioredis.Redis.from_url(settings.redis_url) for _ in range(2)]
    yield made
    for client in made:
        await client.aclose()


async def test_one_holder_per_block_and_the_last_token_passed_on(clients):
    first, second = RedisBlockLocks(clients[0], wait_s=5), RedisBlockLocks(clients[1], wait_s=5)
    key = f"test-{uuid.uuid4().hex}\x00\x00persona"
    inside, order = 0, []

    async def edit(locks, n):
        nonlocal inside
        async with locks.hold(key) as held:
            inside += 1
            assert inside == 1  # never two holders at once
            order.append(held.last_token)
            await asyncio.sleep(0.02)
            await held.wrote(f"t/0:{n}")
            inside -= 1

    await asyncio.gather(*(edit(first if n % 2 else second, n) for n in range(8)))
    assert order[0] is None and all(token and token.startswith("t/0:") for token in order[1:])
    assert len(set(order[1:])) == 7  # each holder saw the token the one before it wrote


async def test_other_blocks_do_not_wait_and_a_long_wait_is_refused(clients):
    locks = RedisBlockLocks(clients[0], wait_s=0.3)
    user = f"test-{uuid.uuid4().hex}"
    async with locks.hold(f"{user}\x00\x00persona"):
        async with RedisBlockLocks(clients[1]).hold(f"{user}\x00\x00human") as other:
            assert other.last_token is None
        with pytest.raises(BlockBusy, match="persona"):
            async with RedisBlockLocks(clients[1], wait_s=0.3).hold(f"{user}\x00\x00persona"):
                pass
