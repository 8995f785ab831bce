"""The access log on the real Kafka: every recorded access is appended exactly once, in
order per user; recording never waits, even with Kafka unreachable; the buffer is bounded."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from adapters import kafka_codec
from adapters.access_log import APPENDED, DROPPED, FLUSH_FAILURES, AccessRecorder
from adapters.kafka_log import ensure_topics
from domain.events import MemoryAccessed
from settings import ACCESS_TOPIC

pytestmark = pytest.mark.integration

UNREACHABLE = "127.0.0.1:1"  # nothing listens there: connection refused


def sample(value) -> float:
    return value._value.get()  # a prometheus_client child's current value


async def access_log_ends(bootstrap: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([ACCESS_TOPIC])
    finally:
        await admin.close()
    partitions = [TopicPartition(ACCESS_TOPIC, p["partition"]) for p in described["partitions"]]
    assert partitions, f"{ACCESS_TOPIC} has no partitions"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def read_access_log(bootstrap: str, since: dict[TopicPartition, int], users: set[str]) -> list:
    """(key, event) of every committed access event of `users` appended after `since`, in log order per partition."""
    until = await access_log_ends(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    found = []
    try:
        for tp, end in until.items():
            position = since.get(tp, 0)
            if position >= end:
                continue
            consumer.assign([tp])
            consumer.seek(tp, position)
            idle = 0
            while await consumer.position(tp) < end:  # the position also steps over commit markers
                batch = await consumer.getmany(tp, timeout_ms=1000)
                idle = 0 if batch else idle + 1
                if idle > 5:
                    raise AssertionError(f"{tp} stopped before {end}")
                for record in batch.get(tp, ()):
                    if record.key.decode() in users:
                        found.append((record.key.decode(), kafka_codec.decode(record.value, record.headers)))
    finally:
        await consumer.stop()
    return found


async def test_every_recorded_access_is_appended_once_in_order_per_user(settings):
    bootstrap = settings.kafka_bootstrap
    await ensure_topics(bootstrap)
    before = await access_log_ends(bootstrap)
    users = [f"test-access-{uuid.uuid4().hex[:12]}" for _ in range(4)]
    sources = ["search", "get", "context", "list"]
    recorder = AccessRecorder(bootstrap)
    recorder.start()
    appended_before = sample(APPENDED)

    recorded = []  # (user, memory_ids, source, query, correlation_id), in record order
    started = time.perf_counter()
    for i in range(1200):
        user = users[i % len(users)]
        ids = tuple(str(uuid.uuid4()) for _ in range(1 + i % 5))
        source = sources[i % len(sources)]
        query = f"query {i}" if source in ("search", "context") else None
        correlation = str(uuid.uuid4()) if i % 3 == 0 else None
        recorder.record(user, ids, source, query=query, correlation_id=correlation)
        recorded.append((user, ids, source, query, correlation))
        if i % 100 == 99:
            await asyncio.sleep(0)  # a server yields between requests; lets the flusher run meanwhile
    record_seconds = time.perf_counter() - started
    await recorder.stop()
    flushed_seconds = time.perf_counter() - started
    print(f"\n1200 records: {record_seconds / 1200 * 1e6:.1f} us each; all appended after {flushed_seconds:.2f} s")

    assert recorder.buffered == 0
    assert sample(APPENDED) - appended_before == 1200
    found = await read_access_log(bootstrap, before, set(users))
    assert all(isinstance(event, MemoryAccessed) and key == event.user_id for key, event in found)
    assert len({event.event_id for _, event in found}) == len(found) == 1200  # exactly once
    for user in users:  # keyed by user: one user's accesses keep their order
        theirs = [e for _, e in found if e.user_id == user]
        assert [(e.user_id, e.memory_ids, e.source, e.query) for e in theirs] == \
               [r[:4] for r in recorded if r[0] == user]
    by_ids = {event.memory_ids: event for _, event in found}
    for user, ids, source, query, correlation in recorded:
        event = by_ids[ids]
        assert event.actor == f"user:{user}"
        if correlation:
            assert event.correlation_id == correlation


async def test_recording_never_waits_for_an_unreachable_kafka(caplog):
    recorder = AccessRecorder(UNREACHABLE, interval_s=0.05, max_backoff_s=0.2, publish_timeout_s=0.5)
    recorder.start()
    user = f"test-access-{uuid.uuid4().hex[:12]}"
    ids = [str(uuid.uuid4()) for _ in range(10)]
    caplog.set_level(logging.WARNING, logger="adapters.access_log")
    shutdown_drops = sample(DROPPED.labels("shutdown"))

    timings = []
    deadline = time.monotonic() + 1.5  # long enough for several failed flushes and retries
    while time.monotonic() < deadline:
        for _ in range(20):
            started = time.perf_counter()
            recorder.record(user, ids, "search", query="which theme does alice like?")
            timings.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    mean_us = sum(timings) / len(timings) * 1e6
    p99_us = sorted(timings)[int(len(timings) * 0.99)] * 1e6
    print(f"\nrecord() with Kafka unreachable: mean {mean_us:.1f} us, p99 {p99_us:.1f} us over {len(timings)} calls")
    assert mean_us < 100  # "well under a millisecond"
    assert recorder.buffered == len(timings)  # nothing lost while under the bound

    started = time.perf_counter()
    await recorder.stop(timeout_s=0.5)  # nothing raises; the buffer cannot be appended
    assert time.perf_counter() - started < 2.0
    assert sample(DROPPED.labels("shutdown")) - shutdown_drops == len(timings)
    outage_warnings = [r for r in caplog.records if "keeping up to" in r.getMessage()]
    assert len(outage_warnings) == 1  # once per outage, not once per failed batch


async def test_a_full_buffer_drops_the_newest_and_counts_them():
    recorder = AccessRecorder(UNREACHABLE, max_buffer=100, batch_size=50)  # not started: nothing drains it
    full_drops = sample(DROPPED.labels("buffer_full"))
    user = f"test-access-{uuid.uuid4().hex[:12]}"
    first = None
    for i in range(150):
        ids = (str(uuid.uuid4()),)
        first = first or ids
        recorder.record(user, ids, "get")
    recorder.record(user, [], "get")  # nothing read: nothing recorded
    assert recorder.buffered == 100
    assert sample(DROPPED.labels("buffer_full")) - full_drops == 50
    assert recorder._buffer[0].memory_ids == first  # the oldest are kept
    with pytest.raises(ValueError, match="source"):
        recorder.record(user, ["x"], "browse")
    await recorder.stop(timeout_s=0.2)
    assert recorder.buffered == 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_accesses_recorded_during_an_outage_are_appended_once_kafka_answers(settings, caplog):
    """The recorder bootstraps through a port where nothing listens (an outage), then through a
    forwarder to the real Kafka (recovery): what was buffered meanwhile is appended, once."""
    bootstrap = settings.kafka_bootstrap
    await ensure_topics(bootstrap)
    before = await access_log_ends(bootstrap)
    with socket.socket() as probe:  # a free port, closed again: connection refused until we listen
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="adapters.access_log")
    failures = sample(FLUSH_FAILURES)
    recorder = AccessRecorder(f"127.0.0.1:{port}", interval_s=0.05, max_backoff_s=0.2, publish_timeout_s=2.0)
    recorder.start()
    user = f"test-access-{uuid.uuid4().hex[:12]}"
    recorded = [tuple(str(uuid.uuid4()) for _ in range(3)) for _ in range(300)]
    for ids in recorded:
        recorder.record(user, ids, "context", query="what do I know about Caroline?")
    for _ in range(100):
        if sample(FLUSH_FAILURES) > failures:
            break
        await asyncio.sleep(0.05)
    assert sample(FLUSH_FAILURES) > failures and recorder.buffered == 300

    kafka_host, kafka_port = bootstrap.split(":")

    async def forward(client_reader, client_writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(kafka_host, int(kafka_port))
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    forwarder = await asyncio.start_server(forward, "127.0.0.1", port)  # Kafka "comes back"
    try:
        await recorder.stop(timeout_s=20)
    finally:
        forwarder.close()
    assert recorder.buffered == 0
    found = await read_access_log(bootstrap, before, {user})
    assert [event.memory_ids for _, event in found] == recorded  # all of them, once, in order
    messages = [r.getMessage() for r in caplog.records]
    assert sum("keeping up to" in m for m in messages) == 1 and any("Kafka is back" in m for m in messages)
