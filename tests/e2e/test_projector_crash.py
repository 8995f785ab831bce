"""kill -9 of each projector at random points during a stream of 10,000 events, restarts,
then its read model equals the log: same count, same content digest, nothing applied twice
(Postgres: one history row per event; Redis: every document at version 1; Neo4j: one
AppliedEvent marker per event)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid

import numpy as np
import pytest

from adapters import postgres
from adapters.kafka_log import EventPublisher
from domain.events import MemoryCreated, utcnow
from tests.e2e.outage import kill_9_while

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


async def wait_caught_up(settings, name: str, timeout_s: float = 180) -> None:
    from projectors.lag import projector_lag

    deadline = time.monotonic() + timeout_s
    while (lag := await projector_lag(settings.kafka_bootstrap, name))["behind"] > 0:
        assert time.monotonic() < deadline, f"projector {name} still {lag['behind']} events behind"
        await asyncio.sleep(0.5)


async def read_back(settings, name: str, users: list[str]) -> tuple[list[tuple[str, str]], int]:
    """(memory id, text) of every memory of `users` in read model `name`, and how many
    times an event was applied (must equal the number of events)."""
    if name == "postgres":
        pool = await postgres.create_pool(settings.pg_dsn)
        try:
            rows = await pool.fetch("SELECT id::text, text FROM memories WHERE user_id = ANY($1)", users)
            history = await pool.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT memory_id) AS memories FROM memory_history"
                " WHERE user_id = ANY($1)", users)
            assert history["n"] == history["memories"]
            return [(r["id"], r["text"]) for r in rows], history["n"]
        finally:
            await pool.close()
    if name == "redis":
        import redis.asyncio as aioredis

        from adapters.redis_read_model import live_read_model

        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            model = await live_read_model(client)
            docs = [d for user in users for d in await model.recent(user, limit=EVENTS)]
            return [(d["id"], d["text"]) for d in docs], sum(d["version"] for d in docs)
        finally:
            await client.aclose()
    from neo4j import AsyncGraphDatabase

    from adapters.neo4j_read_model import labels, live_graph_version

    async with AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password),
                                         notifications_min_severity="OFF") as driver:
        names = labels(await live_graph_version(driver))
        records, _, _ = await driver.execute_query(
            f"MATCH (m:{names['Memory']}) WHERE m.user_id IN $users RETURN m.id AS id, m.text AS text", users=users)
        applied, _, _ = await driver.execute_query(
            f"MATCH (a:{names['AppliedEvent']}) WHERE a.user_id IN $users RETURN count(a) AS n", users=users)
        return [(r["id"], r["text"]) for r in records], applied[0]["n"]


@pytest.mark.parametrize("name", ["postgres", "redis", "neo4j"])
def test_kill_9_during_a_stream_loses_and_doubles_nothing(settings, services, name):
    process = f"projector-{name}"
    users = [f"crash-{uuid.uuid4().hex[:8]}-{n}" for n in range(20)]
    written: list = []
    producer = threading.Thread(target=lambda: written.extend(asyncio.run(stream(settings.kafka_bootstrap, users))))
    producer.start()
    kills = kill_9_while(producer, settings, process, seed=11)
    producer.join()
    assert len(written) == EVENTS and kills >= 3

    async def check():
        await wait_caught_up(settings, name)
        return await read_back(settings, name, users)

    rows, applications = asyncio.run(check())
    assert len(rows) == EVENTS
    assert digest(rows) == digest(written)
    assert applications == EVENTS
    print(f"{kills} kill -9 of the {name} projector during {EVENTS} events: read model equals the log")
