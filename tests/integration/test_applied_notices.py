"""Read-your-writes wake-ups on the real Postgres: the Postgres projector notifies in each
batch's commit, the query API's listener hears it, and without Postgres it only polls."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest

from adapters.applied_notices import AppliedNotices
from domain.events import MemoryCreated
from projectors.pg_projector import PgProjector
from projectors.applied import Applied

pytestmark = pytest.mark.integration


async def heard_within(notices: AppliedNotices, generation: int, seconds: float) -> float:
    began = time.monotonic()
    await notices.after(generation, seconds)
    return time.monotonic() - began


async def test_a_notify_on_the_channel_wakes_a_waiter_at_once(settings):
    channel = f"test_applied_{uuid.uuid4().hex[:8]}"
    notices = AppliedNotices(settings.pg_dsn, channel)
    await notices.start()
    try:
        assert notices.listening
        seen = notices.generation
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            waiting = asyncio.create_task(heard_within(notices, seen, 5.0))
            await asyncio.sleep(0.05)
            await conn.execute("SELECT pg_notify($1, 'x')", channel)
            assert await waiting < 1.0 and notices.generation > seen
        finally:
            await conn.close()
        # A waiter that read the generation before that commit returns at once.
        assert await heard_within(notices, seen, 5.0) < 0.01
    finally:
        await notices.close()


async def test_the_postgres_projectors_commit_is_heard(settings, pool, user_id):
    notices = AppliedNotices(settings.pg_dsn)
    await notices.start()
    try:
        seen = notices.generation
        event = MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text="heard",
                              embedding=tuple([0.05] * 384), embedding_model="test",
                              happened_at=datetime.now(timezone.utc))
        await PgProjector(pool).apply_batch(f"test-notices-{uuid.uuid4().hex[:6]}", [Applied(0, 0, event)])
        assert await heard_within(notices, seen, 5.0) < 1.0 and notices.generation > seen
    finally:
        await notices.close()


async def test_without_postgres_the_wait_polls_and_nothing_fails():
    notices = AppliedNotices("postgresql://nobody:nothing@127.0.0.1:1/none")
    await notices.start()  # logs a warning, keeps trying in the background
    try:
        assert not notices.listening
        assert 0.04 <= await heard_within(notices, notices.generation, 0.05) < 1.0  # a plain sleep
    finally:
        await notices.close()
