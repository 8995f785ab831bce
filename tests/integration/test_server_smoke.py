"""One smoke test per server, each through its real client library."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.integration


async def test_kafka_produce_and_consume(settings):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"smoke-{uuid.uuid4().hex[:8]}")
    await producer.start()
    await consumer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"k")
        message = await consumer.getone()
        assert (message.value, message.key, message.offset) == (b"hello", b"k", sent.offset)
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def test_events_topic_has_twelve_partitions_and_keeps_events_forever(settings):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from settings import EVENTS_TOPIC

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([EVENTS_TOPIC])
        assert len(described["partitions"]) == 12
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, EVENTS_TOPIC)])
        entries = {e[0]: e[1] for e in configs.resources[0][4]}
        assert entries["retention.ms"] == "-1"
    finally:
        await admin.close()


def test_neo4j_cypher_write_and_read(settings):
    from neo4j import GraphDatabase

    marker = uuid.uuid4().hex
    with GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        driver.execute_query("CREATE (:Smoke {marker: $m, n: 41})", m=marker)
        records, _, _ = driver.execute_query("MATCH (s:Smoke {marker: $m}) RETURN s.n + 1 AS n", m=marker)
        assert records[0]["n"] == 42
        driver.execute_query("MATCH (s:Smoke {marker: $m}) DELETE s", m=marker)


def test_neo4j_refuses_a_wrong_password(settings):
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError

    with GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, "wrong-password")) as driver:
        with pytest.raises(AuthError):
            driver.verify_connectivity()


async def test_postgres_vector_nearest_neighbour(settings):
    import asyncpg
    from pgvector.asyncpg import register_vector

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await register_vector(conn)
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'") >= "0.8"
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE smoke (id int, v vector(3)) ON COMMIT DROP")
            await conn.executemany("INSERT INTO smoke VALUES ($1, $2)",
                                   [(1, np.array([1, 0, 0])), (2, np.array([0, 1, 0])), (3, np.array([0.9, 0.1, 0]))])
            nearest = await conn.fetch("SELECT id FROM smoke ORDER BY v <=> $1 LIMIT 2", np.array([1, 0.05, 0]))
            assert [r["id"] for r in nearest] == [1, 3]
            assert await conn.fetchval("SELECT similarity('recallstack', 'recalstack') > 0.5")  # pg_trgm
    finally:
        await conn.close()


def test_redis_set_and_get(settings):
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    key = f"smoke:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "v", ex=60)
        assert client.get(key) == b"v"
    finally:
        client.delete(key)
        client.close()
