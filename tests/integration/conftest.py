"""Fixtures the integration tests share (the real servers `make test` started)."""

from __future__ import annotations

import uuid

import neo4j
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters import postgres


@pytest.fixture
async def driver(settings):
    """A Neo4j driver for one test."""
    driver = neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    yield driver
    await driver.close()


@pytest.fixture
async def pool(settings):
    """A Postgres pool on the migrated schema, for one test."""
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    yield pool
    await pool.close()


@pytest.fixture
async def scratch_topic(settings) -> str:
    """A new one-partition Kafka topic of the test's own (nothing else reads or writes it)."""
    topic = f"test-scratch-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    return topic
