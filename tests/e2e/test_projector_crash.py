"""kill -9 of the Postgres projector at random points during a stream of 10,000 events,
restarts, then the read model equals the log: same count, same content digest, and every
memory's history holds its event exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import threading
import time
import uuid

import numpy as np
import pytest

from adapters import postgres
from adapters.kafka_log import EventPublisher
from domain.events import MemoryCreated, utcnow

pytestmark = pytest.mark.e2e

EVENTS = 10_000


def digest(rows) -> str:
    h = hashlib.sha256()
    for memory_id, text in sorted(rows):
        h.update(f"{memory_id}\x00{text}\n".encode())
    return h.hexdigest()


async def stream(bootstrap: str, users: list[str]) -> list[tuple[str, str]]:
    publisher = EventPublisher(bootstrap, timeout_s=30)
    await publisher.start()
    rng = np.random.default_rng(7)
    written = []
    try:
        for start in range(0, EVENTS, 250):
            events = []
            for i in range(start, min(start + 250, EVENTS)):
                vector = rng.normal(size=384).astype(np.float32)
                events.append(MemoryCreated(
                    user_id=users[i % len(users)], actor="worker:crash-test", memory_id=str(uuid.uuid4()),
                    text=f"crash test fact {i}", embedding=tuple((vector / np.linalg.norm(vector)).tolist()),
                    embedding_model="test", happened_at=utcnow()))
            await publisher.publish(events)
            written += [(e.memory_id, e.text) for e in events]
    finally:
        await publisher.stop()
    return written


async def wait_caught_up(settings, timeout_s: float = 120) -> None:
    from projectors.lag import projector_lag

    deadline = time.monotonic() + timeout_s
    while (lag := await projector_lag(settings.kafka_bootstrap, "postgres"))["behind"] > 0:
        assert time.monotonic() < deadline, f"projector still {lag['behind']} events behind"
        await asyncio.sleep(0.5)


def test_kill_9_during_a_stream_loses_and_doubles_nothing(settings, services):
    from infra import stack

    processes = stack.table(settings)
    projector = stack.service_specs(settings, ("projector-postgres",))
    users = [f"crash-{uuid.uuid4().hex[:8]}-{n}" for n in range(20)]
    written: list = []
    producer = threading.Thread(target=lambda: written.extend(asyncio.run(stream(settings.kafka_bootstrap, users))))
    producer.start()
    kills, rng = 0, random.Random(11)
    while producer.is_alive() or kills < 3:
        time.sleep(rng.uniform(0.3, 1.5))
        pid = processes.pid("projector-postgres")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # at a random instruction: mid-batch, mid-transaction, mid-commit
        kills += 1
        while processes.pid("projector-postgres") is not None:
            time.sleep(0.05)
        stack.up(projector, processes)
    producer.join()
    assert len(written) == EVENTS and kills >= 3

    async def check():
        await wait_caught_up(settings)
        pool = await postgres.create_pool(settings.pg_dsn)
        try:
            rows = await pool.fetch("SELECT id::text, text FROM memories WHERE user_id = ANY($1)", users)
            history = await pool.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT memory_id) AS memories FROM memory_history"
                " WHERE user_id = ANY($1)", users)
            return [(r["id"], r["text"]) for r in rows], history
        finally:
            await pool.close()

    rows, history = asyncio.run(check())
    assert len(rows) == EVENTS
    assert digest(rows) == digest(written)
    assert (history["n"], history["memories"]) == (EVENTS, EVENTS)
    print(f"{kills} kill -9 of the projector during {EVENTS} events: read model equals the log")
