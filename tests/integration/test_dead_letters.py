"""A poison event lands in the dead-letter topic with its error, bytes and offset, and the
events after it are applied (real Kafka and Postgres)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters import kafka_codec, postgres
from projectors.pg_projector import PgProjector
from projectors.runner import ProjectorRunner
from tests.integration.test_pg_projector import event

pytestmark = pytest.mark.integration


async def test_poison_event_is_dead_lettered_and_the_stream_goes_on(settings, user_id):
    run = uuid.uuid4().hex[:8]
    topic, dlq = f"test-events-{run}", f"test-dlq-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(dlq, 1, 1)])
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    before, after = event(user_id, "before the poison"), event(user_id, "after the poison")
    try:
        valid_headers = kafka_codec.encode(before)[1]
        for value, headers in (kafka_codec.encode(before), (b"\x00garbage", valid_headers), kafka_codec.encode(after)):
            await producer.send_and_wait(topic, value, key=user_id.encode(), headers=headers)

        runner = ProjectorRunner(PgProjector(pool), settings.kafka_bootstrap, topic=topic, dlq_topic=dlq,
                                 group_id=f"test-{run}")
        task = asyncio.create_task(runner.run())
        for _ in range(200):
            if await pool.fetchval("SELECT count(*) FROM memories WHERE user_id = $1", user_id) == 2:
                break
            await asyncio.sleep(0.05)
        runner.stop()
        await asyncio.wait_for(task, 10)

        texts = {r["text"] for r in await pool.fetch("SELECT text FROM memories WHERE user_id = $1", user_id)}
        assert texts == {"before the poison", "after the poison"}
        assert await PgProjector(pool).positions(topic) == {0: 2}
        consumer = AIOKafkaConsumer(dlq, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            dead = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        assert dead.value == b"\x00garbage" and dead.key == user_id.encode()
        error = json.loads(dict(dead.headers)["rs-dlq-error"])
        assert (error["projection"], error["topic"], error["partition"], error["offset"]) == ("postgres", topic, 0, 1)
        assert error["error"]
    finally:
        await producer.stop()
        await pool.close()
        await admin.delete_topics([topic, dlq])
        await admin.close()


async def test_retry_applies_a_fixed_dead_letter_and_marks_it_resolved(settings, user_id):
    from projectors import dead_letters

    run = uuid.uuid4().hex[:8]
    dlq = f"test-dlq-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(dlq, 1, 1)])
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        good = event(user_id, "failed once, fine now")
        value, headers = kafka_codec.encode(good)
        for payload, offset in ((value, 7), (b"\x00still garbage", 8)):
            error = json.dumps({"projection": "postgres", "topic": f"events-{run}", "partition": 0, "offset": offset,
                                "error": "DeadlockDetectedError: simulated"}).encode()
            await producer.send_and_wait(dlq, payload, key=user_id.encode(), headers=headers + [("rs-dlq-error", error)])
        letters = await dead_letters.read_all(settings.kafka_bootstrap, dlq)
        assert [letter["offset"] for letter in letters] == [7, 8]
        done, failed = await dead_letters.retry(settings.kafka_bootstrap, PgProjector(pool), letters, topic=dlq)
        assert (done, failed) == (1, 1)
        assert await pool.fetchval("SELECT text FROM memories WHERE user_id = $1", user_id) == "failed once, fine now"
        assert [letter["offset"] for letter in await dead_letters.read_all(settings.kafka_bootstrap, dlq)] == [8]
    finally:
        await producer.stop()
        await pool.close()
        await admin.delete_topics([dlq])
        await admin.close()
