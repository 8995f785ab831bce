"""The event log on Kafka: topic creation and an idempotent producer of domain events."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

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


async def _within(coro, timeout: float):
    """Like asyncio.wait_for, but never waits for the cancelled work to wind down: an aborting
    Kafka transaction can take long to clean up, and the caller has a deadline to keep."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # consume its outcome, quietly
    raise asyncio.TimeoutError()


class EventPublisher:
    """Appends events keyed by user_id (per-user order) and returns where they landed.

    One event goes through an idempotent producer (acks=all). Several events (a batch, a
    conversation's messages) go in one Kafka transaction, so readers that read committed
    (every projector) see all of them or none. Every append has a deadline: when Kafka
    does not acknowledge in time the caller gets LogUnavailable, never a hang.
    """

    def __init__(self, bootstrap: str, topic: str = EVENTS_TOPIC, timeout_s: float = 1.8,
                 transactional_id: str | None = None):
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self.transactional_id = transactional_id or f"recallstack-command-{socket.gethostname()}-{os.getpid()}"
        self._single: AIOKafkaProducer | None = None
        self._tx: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._tx_lock = asyncio.Lock()

    def _producer(self, transactional: bool) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=1,
            request_timeout_ms=int(self.timeout_s * 1000) + 1000, max_request_size=8 * 1024 * 1024,
            transactional_id=self.transactional_id if transactional else None,
            transaction_timeout_ms=15000 if transactional else 60000,
        )

    async def _ready(self, transactional: bool) -> AIOKafkaProducer:
        """Start the producer on first use (so the API starts, and answers 503, while Kafka is down)."""
        async with self._start_lock:
            current = self._tx if transactional else self._single
            if current is None:
                current = self._producer(transactional)
                try:
                    await current.start()
                except BaseException:
                    await current.stop()
                    raise
                if transactional:
                    self._tx = current
                else:
                    self._single = current
            return current

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._ready(False), self.timeout_s)
        except (KafkaError, asyncio.TimeoutError, OSError):
            log.warning("Kafka is not reachable yet; writes answer 503 until it is")

    async def stop(self) -> None:
        for producer in (self._single, self._tx):
            if producer is not None:
                await producer.stop()
        self._single = self._tx = None

    async def check(self) -> None:
        """A real metadata round trip to the brokers (readiness)."""
        producer = await asyncio.wait_for(self._ready(False), self.timeout_s)
        await asyncio.wait_for(producer.client.fetch_all_metadata(), self.timeout_s)

    async def publish(self, events: list[Event]) -> ConsistencyToken:
        """Append all events, all or nothing; returns a token covering every one. Raises LogUnavailable."""
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        try:
            if len(events) == 1:
                metadata = await _within(self._send_one(events[0]), self.timeout_s)
            else:
                await asyncio.wait_for(self._tx_lock.acquire(), self.timeout_s)  # one transaction at a time
                try:
                    remaining = max(0.1, deadline - asyncio.get_running_loop().time())
                    metadata = await _within(self._send_transaction(events), remaining)
                finally:
                    self._tx_lock.release()
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            if len(events) > 1:
                await self._reset_transactional()
            raise LogUnavailable(f"Kafka did not acknowledge within {self.timeout_s:.1f}s "
                                 f"({type(exc).__name__}: {exc or 'timeout'})") from exc
        return ConsistencyToken.of(self.topic, [(m.partition, m.offset) for m in metadata])

    async def _send_one(self, event: Event):
        producer = await self._ready(False)
        value, headers = kafka_codec.encode(event)
        future = await producer.send(self.topic, value=value, key=event.user_id.encode(), headers=headers)
        return [await future]

    async def _send_transaction(self, events: list[Event]):
        producer = await self._ready(True)
        async with producer.transaction():
            futures = []
            for event in events:
                value, headers = kafka_codec.encode(event)
                futures.append(await producer.send(self.topic, value=value, key=event.user_id.encode(),
                                                   headers=headers))
            return await asyncio.gather(*futures)

    async def _reset_transactional(self) -> None:
        """After a failed transaction the producer may be mid-state: drop it. The broker aborts
        the open transaction (transaction timeout, or fencing when the next one starts)."""
        producer, self._tx = self._tx, None
        if producer is not None:
            # Stopped in the background: its cleanup may wait for the broker, the request may not.
            stopping = asyncio.ensure_future(producer.stop())
            stopping.add_done_callback(lambda t: t.cancelled() or t.exception())
