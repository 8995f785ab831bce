"""A three-broker KRaft cluster on loopback (infra/kafka_server.py; `recallstack infra up
--kafka-brokers 3`): kill -9 the leader of the partition being written to, mid-stream. Every
write the idempotent acks=all producer had acknowledged is still there, exactly once; writes
resume within seconds on the new leader. A scratch cluster on free ports: the stack's own
Kafka is untouched."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.kafka_server import scratch_cluster

pytestmark = pytest.mark.integration

TOPIC = "cluster-test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with scratch_cluster(tmp_path_factory.mktemp("kafka-cluster")) as found:
        yield found


def test_the_contracts_topics_are_created_with_three_copies(cluster):
    from adapters.kafka_log import TOPICS, ensure_topics

    bootstrap, _table, _specs = cluster

    async def described():
        created = await ensure_topics(bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return created, await admin.describe_topics(list(TOPICS))
        finally:
            await admin.close()

    created, topics = asyncio.run(described())
    assert sorted(created) == sorted(TOPICS)
    for topic in topics:
        assert all(len(p["replicas"]) == 3 for p in topic["partitions"]), topic["topic"]


async def _leader(bootstrap: str, timeout_s: float = 30) -> int:
    """Partition 0's leader once all three copies are in sync (a new topic takes a moment)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            [described] = await admin.describe_topics([TOPIC])
            partition = next((p for p in described["partitions"] if p["partition"] == 0), None)
            if partition is not None and len(partition["replicas"]) == 3 and len(partition["isr"]) == 3:
                return partition["leader"]
            assert time.monotonic() < deadline, f"partition 0 not in sync: {partition}"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def test_killing_the_leader_mid_stream_loses_no_acknowledged_write(cluster):
    bootstrap, table, specs = cluster

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=3)])
        finally:
            await admin.close()
        leader = await _leader(bootstrap)
        victim = "kafka-scratch" if leader == 1 else f"kafka-scratch-{leader}"
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                    request_timeout_ms=5000, retry_backoff_ms=200)
        await producer.start()
        acknowledged, killed_at, resumed_at = [], None, None
        try:
            for i in range(600):
                if i == 200:
                    os.kill(table.pid(victim), signal.SIGKILL)  # the leader, mid-stream
                    killed_at = time.monotonic()
                try:
                    await producer.send_and_wait(TOPIC, f"write-{i}".encode(), partition=0)
                except Exception:  # not acknowledged: the client may retry it, nobody was promised it
                    continue
                acknowledged.append(f"write-{i}")
                if killed_at is not None and resumed_at is None:
                    resumed_at = time.monotonic()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(TOPIC, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            stored = []
            while len(stored) < end:
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    stored += [r.value.decode() for r in records]
        finally:
            await consumer.stop()
        return leader, acknowledged, stored, resumed_at - killed_at

    leader, acknowledged, stored, resumed_s = asyncio.run(scenario())
    from infra.process import start

    start(specs["kafka-scratch" if leader == 1 else f"kafka-scratch-{leader}"], table)  # it rejoins
    assert len(acknowledged) >= 590, f"only {len(acknowledged)} of 600 writes acknowledged"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"acknowledged writes lost with the leader (node {leader}): {sorted(missing)[:10]}"
    assert len(stored) == len(set(stored)), "a write is stored twice (the producer is idempotent)"
    assert resumed_s < 10, f"writes resumed {resumed_s:.1f} s after the leader died (3 s broker session: ~3.4 s)"
    print(f"leader node {leader} killed; {len(acknowledged)} of 600 acknowledged, all stored once; "
          f"writes resumed after {resumed_s:.2f} s")

