"""The event log on Kafka: topic creation and an idempotent producer of domain events."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from prometheus_client import Histogram

from adapters import kafka_codec, kafka_security, observability
from adapters.key_store import KeyStoreUnavailable
from domain import sealing
from domain.consistency import ConsistencyToken
from domain.events import Event
from settings import ACCESS_TOPIC, DLQ_TOPIC, EVENTS_PARTITIONS, EVENTS_TOPIC

log = logging.getLogger(__name__)

# After a commit the broker needs a moment to write the transaction markers; the next
# transaction's AddPartitionsToTxn meanwhile answers CONCURRENT_TRANSACTIONS and aiokafka
# backs off a fixed 20 ms, which alone made every sequential append 20+ ms. A local broker
# writes its markers in well under a millisecond: retry after 1 ms.
aiokafka_sender.BACKOFF_OVERRIDE = 0.001

PRODUCE_SECONDS = Histogram(
    "recallstack_kafka_produce_seconds",
    "Time of one append to Kafka until acknowledged (a transaction: begin, sends, commit), by topic and outcome",
    ["topic", "outcome"],  # outcome: ok | timeout | error
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


@contextmanager
def timed_produce(topic: str):
    """Observe the `with` body as one append to `topic` (recallstack_kafka_produce_seconds)."""
    began, outcome = time.perf_counter(), "error"
    try:
        yield
        outcome = "ok"
    except asyncio.TimeoutError:
        outcome = "timeout"
        raise
    finally:
        PRODUCE_SECONDS.labels(topic, outcome).observe(time.perf_counter() - began)


# Retention forever: the log is the source of truth.
TOPICS = {
    EVENTS_TOPIC: (EVENTS_PARTITIONS, {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}),
    ACCESS_TOPIC: (EVENTS_PARTITIONS, {"retention.ms": "-1", "retention.bytes": "-1"}),
    DLQ_TOPIC: (1, {"retention.ms": "-1", "retention.bytes": "-1"}),
}


def partition_of(user_id: str, partitions: int = EVENTS_PARTITIONS) -> int:
    """The partition a user's events land in: Kafka's default partitioner (murmur2 of the key)."""
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


class LogUnavailable(RuntimeError):
    """Kafka did not acknowledge; nothing was appended (or the client cannot know)."""


async def ensure_topics(bootstrap: str) -> list[str]:
    """Create the contract's topics if missing; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **kafka_security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        copies = await replication_factor(admin)
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=copies, topic_configs=configs)
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


async def replication_factor(admin: AIOKafkaAdminClient) -> int:
    """Copies of each partition of a topic recallstack creates: 3 on a cluster of three brokers
    or more (acks=all then needs the cluster's min.insync.replicas of them), else one per broker."""
    return min(3, len((await admin.describe_cluster())["brokers"]))


async def _within(coro, timeout: float):
    """Like asyncio.wait_for, but never waits for the cancelled work to wind down: an aborting
    Kafka transaction can take long to clean up, and the caller has a deadline to keep."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # consume its outcome, quietly
    raise asyncio.TimeoutError()


@dataclass
class _Append:
    events: list[Event]
    deadline: float
    keys: dict = field(default_factory=dict)  # user_id -> DataKey to seal with
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    abandoned: bool = False
    trace: tuple = ()  # the W3C trace context headers of the appending request (tracing on)
    records: list[tuple[bytes, bytes, list]] = field(default_factory=list)  # (key, value, headers) per event

    def encode(self) -> None:
        """The records, sealed with the user's key: before the append joins a group, so an
        event that cannot be encoded (a bug) fails its own request, not the others it would
        have shared a transaction with."""
        self.records = []
        for event in self.events:
            value, headers = kafka_codec.encode(event, self.keys.get(event.user_id))
            self.records.append((event.user_id.encode(), value, headers + list(self.trace)))


class EventPublisher:
    """Appends events keyed by user_id (per-user order) and returns where they landed.

    Every append is part of a Kafka transaction (idempotent, acks=all), and readers that read
    committed (every projector) see all of a command's events or none: a batch is all or
    nothing, and an append that misses its deadline is aborted, never delivered later, so
    a 503 really means "not stored". Concurrent appends share one transaction (group
    commit): one writer task takes everything queued, so throughput grows with load.
    """

    def __init__(self, bootstrap: str, topic: str = EVENTS_TOPIC, timeout_s: float = 1.8,
                 transactional_id: str | None = None, max_group: int = 5000, keys=None,
                 revive_erased: bool = True):
        self.bootstrap = bootstrap
        # adapters.key_store.Keyring: seals each user's events with their data key. None
        # writes unsealed events (benchmarks and tests that bring no key store).
        self.keys = keys
        # False for workers: content they read before an erasure must not come back under a
        # new key; such events are dropped (they would be unreadable anyway).
        self.revive_erased = revive_erased
        self.topic = topic
        self.timeout_s = timeout_s
        self.max_group = max_group
        self.transactional_id = transactional_id or f"recallstack-command-{socket.gethostname()}-{os.getpid()}"
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._queue: asyncio.Queue[_Append] | None = None
        self._writer: asyncio.Task | None = None

    async def _ready(self) -> AIOKafkaProducer:
        """Start the producer on first use (so the API starts, and answers 503, while Kafka is down)."""
        async with self._start_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=0,
                    request_timeout_ms=int(self.timeout_s * 1000) + 1000, max_request_size=8 * 1024 * 1024,
                    transactional_id=self.transactional_id, transaction_timeout_ms=15000,
                    **kafka_security.client_options(),
                )
                try:
                    await producer.start()  # InitProducerId also aborts what an earlier epoch left open
                except BaseException:
                    _in_background(producer.stop())
                    raise
                self._producer = producer
            return self._producer

    def _discard_producer(self) -> None:
        """After a failed transaction the producer may be mid-state: drop it; the next one
        fences it (same transactional id), which aborts its open transaction on the broker."""
        producer, self._producer = self._producer, None
        if producer is not None:
            _in_background(producer.stop())

    async def start(self) -> None:
        try:
            await _within(self._ready(), self.timeout_s)
        except (KafkaError, asyncio.TimeoutError, OSError):
            log.warning("Kafka is not reachable yet; writes answer 503 until it is")

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        if self._producer is not None:
            await self._producer.stop()
        self._producer = None

    async def check(self) -> None:
        """A real metadata round trip to the brokers (readiness)."""
        producer = await _within(self._ready(), self.timeout_s)
        await _within(producer.client.fetch_all_metadata(), self.timeout_s)

    async def publish(self, events: list[Event]) -> ConsistencyToken:
        """Append all events, all or nothing; returns a token covering every one. Raises LogUnavailable."""
        if observability.tracing():  # a producer span; its context travels in the records' headers
            return await observability.traced_publish(self._publish, self.topic, events)
        return await self._publish(events)

    async def _publish(self, events: list[Event], trace: tuple = ()) -> ConsistencyToken:
        if self._writer is None or self._writer.done():
            self._queue = asyncio.Queue()
            # Its own (empty) context: the writer serves every request, it must not log or
            # trace as the request that happened to start it.
            self._writer = asyncio.create_task(self._write_loop(), context=contextvars.Context())
        loop = asyncio.get_running_loop()
        append = _Append(list(events), loop.time() + self.timeout_s, trace=tuple(trace))
        if self.keys is not None:
            # Keys first, outside the transaction (I/O only on a cache miss); a key store
            # that does not answer means nothing was appended, like a Kafka outage.
            try:
                append.keys = await _within(self.keys.keys_for(append.events, revive=self.revive_erased),
                                            self.timeout_s)
            except (KeyStoreUnavailable, asyncio.TimeoutError) as exc:
                raise LogUnavailable(f"the key store did not answer within {self.timeout_s:.1f}s, so the events "
                                     f"could not be sealed ({type(exc).__name__}: {exc})") from exc
            if not self.revive_erased:
                kept = [e for e in append.events if e.user_id in append.keys or not sealing.is_sealed_type(e.event_type)]
                if len(kept) < len(append.events):
                    log.warning("dropped %d events of erased users", len(append.events) - len(kept))
                    append.events = kept
                    if not kept:
                        return ConsistencyToken.of(self.topic, [])
        append.encode()
        self._queue.put_nowait(append)
        try:
            # The writer keeps the deadline; the margin only guards against a writer gone wrong.
            metadata = await _within(asyncio.shield(append.done), self.timeout_s + 0.5)
        except asyncio.TimeoutError as exc:
            append.abandoned = True
            raise LogUnavailable(f"Kafka did not acknowledge within {self.timeout_s:.1f}s") from exc
        return ConsistencyToken.of(self.topic, [(m.partition, m.offset) for m in metadata])

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while not self._queue.empty() and sum(len(a.events) for a in group) < self.max_group:
                group.append(self._queue.get_nowait())
            live = []
            for append in group:
                if append.abandoned or append.deadline <= loop.time():
                    _fail(append, LogUnavailable(f"Kafka did not acknowledge within {self.timeout_s:.1f}s"))
                else:
                    live.append(append)
            if live:
                await self._commit(live, min(a.deadline for a in live) - loop.time())

    async def _commit(self, group: list[_Append], budget: float) -> None:
        try:
            producer = await _within(self._ready(), budget)
            with timed_produce(self.topic):
                metadata = await _within(self._send_transaction(producer, group), budget)
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            self._discard_producer()
            error = LogUnavailable(f"Kafka did not acknowledge within {self.timeout_s:.1f}s "
                                   f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})")
            for append in group:
                _fail(append, error)
            return
        except Exception as exc:  # a bug fails its group, not the writer (events are encoded before)
            self._discard_producer()
            for append in group:
                _fail(append, exc)
            return
        position = 0
        for append in group:
            if not append.done.done():
                append.done.set_result(metadata[position:position + len(append.events)])
            position += len(append.events)

    async def _send_transaction(self, producer: AIOKafkaProducer, group: list[_Append]):
        async with producer.transaction():
            futures = []
            for append in group:
                for key, value, headers in append.records:
                    futures.append(await producer.send(self.topic, value=value, key=key, headers=headers))
            return await asyncio.gather(*futures)


def _fail(append: _Append, error: Exception) -> None:
    if not append.done.done():
        append.done.set_exception(error)
        append.done.exception()  # mark retrieved: an abandoned append has no one awaiting it


def _in_background(coro) -> None:
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class GroupProgress:
    """How far a consumer group (a projector's) has got in a topic, against the log's end.

    Both count transaction markers (a read model's own positions are data offsets and never
    reach a marker), and a projector commits its group offsets only after its read-model
    transaction: committed >= N means everything before offset N is applied."""

    def __init__(self, bootstrap: str, group: str, topic: str = EVENTS_TOPIC):
        self.group, self.topic = group, topic
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                          **kafka_security.client_options())
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          **kafka_security.client_options())
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        try:
            await self._admin.start()
            await self._consumer.start()
        except BaseException:
            await self.close()  # a start that fails leaves no client open
            raise
        parts = self._consumer.partitions_for_topic(self.topic) or set(range(EVENTS_PARTITIONS))
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(parts)]

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def ends(self) -> dict[int, int]:
        return {tp.partition: o for tp, o in (await self._consumer.end_offsets(self._partitions)).items()}

    async def committed(self) -> dict[int, int]:
        offsets = await self._admin.list_consumer_group_offsets(self.group)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.topic}

    async def wait(self, wanted: dict[int, int], timeout_s: float) -> bool:
        """Until committed[p] >= wanted[p] for every p; False after timeout_s."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            done = await self.committed()
            if all(done.get(p, 0) >= o for p, o in wanted.items() if o > 0):
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
