"""Degradation-mode tests (docs/observability.md, "Degradation modes"): stop a real server
of the stack mid-test, always start it again, and check that every acknowledged write is
in the log and in the read model exactly once afterwards. Tests that use these are marked
`outage` (`pytest -m outage tests/e2e`)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections import Counter
from contextlib import contextmanager

import httpx

from tests.e2e.conftest import admin_headers


@contextmanager
def stopped(settings, *names: str):
    """Stop the named infrastructure servers (kafka, postgres, neo4j, redis) for the `with`
    body, and start them again however it ends (within seconds: the stack is shared)."""
    from infra import stack

    processes = stack.table(settings)
    specs = stack.infra_specs(settings, names)
    stack.down(specs, processes)
    began = time.monotonic()
    try:
        yield
    finally:
        stack.up(specs, processes)
        print(f"[outage] {', '.join(names)} down for {time.monotonic() - began:.1f} s")


def user_events_since(settings, before: dict[int, int], user_id: str) -> list:
    """Every event of `user_id` appended since `before` (the log's end offsets), read
    committed, to the log's current end (erased users' sealed events are left out)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from settings import EVENTS_PARTITIONS, EVENTS_TOPIC
    from tests.e2e.log_reader import opened

    async def read() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(EVENTS_TOPIC, p) for p in range(EVENTS_PARTITIONS)]
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            found = []
            async with opened() as open_record:
                for tp in parts:
                    consumer.seek(tp, before.get(tp.partition, 0))
                    while await consumer.position(tp) < ends[tp]:
                        batch = await consumer.getmany(tp, timeout_ms=2000)
                        if not batch:
                            break
                        found += [await open_record(r) for r in batch.get(tp, []) if r.key == user_id.encode()]
            return [e for e in found if e is not None and e.user_id == user_id]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def created_texts(settings, before: dict[int, int], user_id: str) -> Counter:
    """How many MemoryCreated of `user_id` carry each text since `before`, counted by event id:
    a keyed add retried while Redis was down is appended again with the same event id (and
    memory id), which every consumer takes as the one event it is."""
    events = {e.event_id: e for e in user_events_since(settings, before, user_id) if e.event_type == "MemoryCreated"}
    return Counter(e.text for e in events.values())


def listed_texts(gateway: httpx.Client, user_id: str, token: str, deadline_s: float = 90) -> Counter:
    """The user's memories in the Postgres read model once it applied `token` (retried while
    the stack recovers from the outage)."""
    deadline = time.monotonic() + deadline_s
    while True:
        answer = gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token,
                                                     "page_size": 1000})
        if answer.status_code == 200:
            return Counter(m["memory"] for m in answer.json()["results"])
        assert time.monotonic() < deadline, f"the read model did not recover: {answer.status_code} {answer.text}"
        time.sleep(0.5)


def assert_exactly_once(settings, gateway, before, user_id: str, acknowledged: list[str], token: str) -> None:
    """Every acknowledged text is in the log once and in the read model once, and nothing else."""
    assert created_texts(settings, before, user_id) == Counter(acknowledged)
    assert listed_texts(gateway, user_id, token) == Counter(acknowledged)


def readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=10, headers=admin_headers())


def latest_token(answers: list[httpx.Response]) -> str:
    """One consistency token covering every answer's (highest offset per partition)."""
    from domain.consistency import ConsistencyToken
    from settings import EVENTS_TOPIC

    highest: dict[int, int] = {}
    for answer in answers:
        for partition, offset in ConsistencyToken.decode(answer.json()["consistency_token"]).offsets:
            highest[partition] = max(offset, highest.get(partition, -1))
    return ConsistencyToken.of(EVENTS_TOPIC, sorted(highest.items())).encode()


def kill_9_while(producer: threading.Thread, settings, process: str, seed: int, at_least: int = 3) -> int:
    """SIGKILL `process` (a stack process: a projector) at random moments while `producer`
    runs, and at least `at_least` times, starting it again after each kill; how many kills."""
    from infra import stack

    processes = stack.table(settings)
    spec = stack.service_specs(settings, (process,))
    kills, rng = 0, random.Random(seed)
    while producer.is_alive() or kills < at_least:
        time.sleep(rng.uniform(0.3, 1.5))
        pid = processes.pid(process)
        assert pid is not None, f"{process} is not running"
        os.kill(pid, signal.SIGKILL)  # at a random instruction: mid-batch, mid-transaction, mid-commit
        kills += 1
        while processes.pid(process) is not None:
            time.sleep(0.05)
        stack.up(spec, processes)
    return kills
