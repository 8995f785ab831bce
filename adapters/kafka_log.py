"""The event log on Kafka: topic creation and an idempotent producer of domain events."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from adapters import kafka_codec
from domain.consistency import ConsistencyToken
from domain.events import Event
from settings import ACCESS_TOPIC, DLQ_TOPIC, EVENTS_PARTITIONS, EVENTS_TOPIC

log = logging.getLogger(__name__)

# Retention forever: the log is the source of truth.
TOPICS = {
    EVENTS_TOPIC: (EVENTS_PARTITIONS, {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}),
    ACCESS_TOPIC: (EVENTS_PARTITIONS, {"retention.ms": "-1", "retention.bytes": "-1"}),
    DLQ_TOPIC: (1, {"retention.ms": "-1", "retention.bytes": "-1"}),
}


class LogUnavailable(RuntimeError):
    """Kafka did not acknowledge; nothing was appended (or the client cannot know)."""


async def ensure_topics(bootstrap: str) -> list[str]:
    """Create the contract's topics if missing; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=1, topic_configs=configs)
            for name, (parts, configs) in TOPICS.items() if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in missing]
    finally:
        await admin.close()


class EventPublisher:
    """Appends events keyed by user_id (per-user order) and returns where they landed."""

    def __init__(self, bootstrap: str, topic: str = EVENTS_TOPIC, timeout_s: float = 10.0):
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            compression_type=None,
            request_timeout_ms=int(timeout_s * 1000),
            max_request_size=8 * 1024 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def check(self) -> None:
        """A real metadata round trip to the brokers (readiness)."""
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 3)

    async def publish(self, events: list[Event]) -> ConsistencyToken:
        """Append all events; returns a token covering every one. Raises LogUnavailable."""
        try:
            futures = []
            for event in events:
                value, headers = kafka_codec.encode(event)
                futures.append(await self._producer.send(
                    self.topic, value=value, key=event.user_id.encode(), headers=headers))
            metadata = await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        except (KafkaError, asyncio.TimeoutError) as exc:
            raise LogUnavailable(f"Kafka did not acknowledge the write: {type(exc).__name__}: {exc}") from exc
        return ConsistencyToken.of(self.topic, [(m.partition, m.offset) for m in metadata])
