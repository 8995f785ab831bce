"""The tests' mark on the real Kafka log (tests/e2e/log_reader.end_offsets): a mark taken after
a write was acknowledged must lie after that write's record, even while another producer holds
a transaction open on the partition. The last stable offset does not: it stays at the open
transaction's first record, so a read from it counted earlier writes as the next one's (a CI
failure: a scope delete seemed to append two records, the second being the add before it)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.log_reader import end_offsets

pytestmark = pytest.mark.integration


async def test_a_mark_lies_after_an_acknowledged_write_while_another_transaction_is_open(settings, scratch_topic):
    topic = scratch_topic
    other = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                             transactional_id=f"test-marks-{uuid.uuid4().hex[:8]}")
    writer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await other.start()
    await writer.start()
    try:
        await other.begin_transaction()
        await other.send_and_wait(topic, b"still open")  # offset 0, uncommitted
        acknowledged = await writer.send_and_wait(topic, b"acknowledged")  # offset 1
        assert acknowledged.offset == 1
        assert await end_offsets(settings.kafka_bootstrap, committed=True, topic=topic, partitions=1) == {0: 0}
        assert await end_offsets(settings.kafka_bootstrap, committed=False, topic=topic, partitions=1) == {0: 2}
        await other.commit_transaction()
    finally:
        await other.stop()
        await writer.stop()
