"""One user's events read back from real Kafka up to a past moment (adapters/user_log.py), sealed with
a real key store, and rebuilt by the Postgres projection in memory (projectors/past_state.py): the
state at a token equals the state after the events up to it; an erased user's events are skipped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters.kafka_log import EventPublisher
from adapters.key_store import Keyring, KeyStore
from adapters.user_log import UserLog
from domain import as_of, sealing
from domain.as_of import InvalidAsOf
from domain.events import MemoryCreated, MemoryDeleted, MemoryUpdated
from projectors.past_state import PastState

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NOW = datetime.now(timezone.utc)


def created(user_id: str, text: str, minute: int) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=tuple([0.1] * 384), embedding_model="minilm",
                         occurred_at=T0 + timedelta(minutes=minute), happened_at=T0)


@pytest.fixture
def keyring(settings):
    import asyncpg

    schema = f"keystore_test_{uuid.uuid4().hex[:8]}"
    ring = Keyring(KeyStore(settings.pg_dsn, sealing.new_key_material(), schema=schema))
    yield ring

    async def drop():
        await ring.store.close()
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
    asyncio.run(drop())


async def _texts(log: UserLog, user: str, moment, hint=None) -> tuple[dict[str, tuple[str, str]], object]:
    state = PastState()
    destroyed = await log.destroyed_versions(user)
    read = await log.read(user, moment, state.apply, destroyed)
    return {k: (r["text"], r["state"]) for k, r in state.memories.items()}, read


async def test_a_users_events_up_to_a_token_or_a_time_rebuild_the_state_then(settings, keyring):
    run = uuid.uuid4().hex[:8]
    topic = f"test-asof-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    publisher = EventPublisher(settings.kafka_bootstrap, topic=topic, timeout_s=10, keys=keyring,
                               transactional_id=f"test-asof-{run}")
    user, other = f"u-{run}", f"o-{run}"
    a = created(user, "I live in Lisbon", 0)
    log = UserLog(settings.kafka_bootstrap, topic, keyring)
    try:
        t1 = await publisher.publish([a])
        await publisher.publish([created(other, "I live in Rome", 1)])
        await publisher.publish([MemoryUpdated(user_id=user, actor="t", memory_id=a.memory_id, text="I live in Porto",
                                               embedding=tuple([0.2] * 384), embedding_model="minilm",
                                               occurred_at=T0 + timedelta(minutes=5))])
        b = created(user, "I like jazz", 10)
        t3 = await publisher.publish([b])
        t4 = await publisher.publish([MemoryDeleted(user_id=user, actor="t", memory_id=a.memory_id,
                                                    occurred_at=T0 + timedelta(minutes=20))])

        def at_token(token) -> as_of.Moment:
            return as_of.parse(token.encode(), topic, 0, 1, NOW)

        state, read = await _texts(log, user, at_token(t1))
        assert state == {a.memory_id: ("I live in Lisbon", "active")} and read.events == 1, read
        state, read = await _texts(log, user, at_token(t3))
        assert state == {a.memory_id: ("I live in Porto", "active"), b.memory_id: ("I like jazz", "active")}
        assert read.events == 3 and read.scanned == 4  # the other user's record is read past, not opened
        first = PastState()  # a later moment goes on from an earlier one's state and position
        early = await log.read(user, at_token(t1), first.apply)
        assert early.next_offset == t1.offsets[0][1] + 1
        later = PastState({k: dict(r) for k, r in first.memories.items()})
        resumed = await log.read(user, at_token(t3), later.apply, resume=early.next_offset)
        assert resumed.events == 2 and {k: (r["text"], r["state"]) for k, r in later.memories.items()} == state
        state, _ = await _texts(log, user, at_token(t4))
        assert state[a.memory_id] == ("I live in Porto", "deleted")
        together = await asyncio.gather(_texts(log, user, at_token(t3)), _texts(log, user, at_token(t1)))
        assert [len(t[0]) for t in together] == [2, 1]  # the second read started a consumer of its own
        by_time = as_of.parse((T0 + timedelta(minutes=7)).isoformat(), topic, 0, 1, NOW)
        state, read = await _texts(log, user, by_time)
        assert state == {a.memory_id: ("I live in Porto", "active")} and read.events == 2
        before = as_of.parse((T0 - timedelta(days=1)).isoformat(), topic, 0, 1, NOW)
        assert (await _texts(log, user, before))[0] == {}

        b_at = t3.offsets[0][1]  # the hint says where to start: nothing before it is read
        hinted = UserLog(settings.kafka_bootstrap, topic, keyring, first_offset=lambda u, p: _const(b_at))
        try:
            state, read = await _texts(hinted, user, at_token(t3))
            assert read.start == b_at and read.scanned == 1 and state == {b.memory_id: ("I like jazz", "active")}
        finally:
            await hinted.close()

        with pytest.raises(InvalidAsOf, match="has not reached"):
            await _texts(log, user, as_of.parse(f"{topic}/0:{t4.offsets[0][1] + 100}", topic, 0, 1, NOW))

        await keyring.destroy(user)  # the erasure: the user's key is gone
        state, read = await _texts(log, user, at_token(t3))
        assert state == {} and read.shredded == 3 and read.events == 0
        fresh = Keyring(KeyStore(settings.pg_dsn, keyring.store._master, schema=keyring.store.schema))
        other_process = UserLog(settings.kafka_bootstrap, topic, fresh)  # nothing cached there
        try:
            assert (await _texts(other_process, user, at_token(t3)))[0] == {}
        finally:
            await other_process.close()
            await fresh.store.close()
    finally:
        await log.close()
        await publisher.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def _const(value: int) -> int:
    return value
