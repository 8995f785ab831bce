"""`recallstack replay` rebuilds each read model from offset 0 while the service answers:
a client searching throughout sees no error and no empty result during the switch, the
live projector follows the new version, and writes after the switch show up in it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import redis.asyncio as aioredis

from adapters import postgres
from adapters.redis_read_model import live_read_model
from tests.e2e.conftest import admin_headers

pytestmark = pytest.mark.e2e


def accepted(answer):
    assert answer.status_code == 202, answer.text
    return answer.json()


def replay(settings, projection: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "cli.main", "replay", "--projection", projection, "--json"],
                          env={**os.environ, "RECALLSTACK_HOME": str(settings.home)}, capture_output=True, text=True, check=False,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replay" in done.stderr  # the progress bar was drawn
    return json.loads(done.stdout.strip().splitlines()[-1])


async def pg_live(settings) -> int:
    pool = await postgres.create_pool(settings.pg_dsn)
    try:
        async with pool.acquire() as conn:
            return await postgres.live_version(conn)
    finally:
        await pool.close()


def test_replay_while_a_client_keeps_searching(gateway, settings, user_id):
    texts = [f"fact number {n} about the replay test: likes {word}" for n, word in
             enumerate(["tea", "rust", "jazz", "hiking", "chess", "sushi", "linux", "vim"])]
    token = None
    for text in texts:
        token = accepted(gateway.post("/v1/memories", json={"text": text, "user_id": user_id}))["consistency_token"]
    first = gateway.post("/v1/memories/search", json={"query": "what does the user like", "user_id": user_id,
                                                      "limit": 20, "consistency_token": token})
    assert first.status_code == 200 and len(first.json()["results"]) == len(texts)

    problems: list[str] = []
    searches = [0]
    stop = threading.Event()

    def keep_searching():
        import httpx

        with httpx.Client(base_url=settings.gateway_url, timeout=10, headers=admin_headers()) as client:
            while not stop.is_set():
                answer = client.post("/v1/memories/search", json={"query": "what does the user like",
                                                                  "user_id": user_id, "limit": 20})
                searches[0] += 1
                if answer.status_code != 200:
                    problems.append(f"{answer.status_code}: {answer.text[:200]}")
                elif len(answer.json()["results"]) != len(texts):
                    problems.append(f"{len(answer.json()['results'])} results instead of {len(texts)}")

    before = asyncio.run(pg_live(settings))
    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        summary = replay(settings, "pg")
    finally:
        stop.set()
        searcher.join()
    assert summary["from_version"] == before and summary["to_version"] > before
    assert asyncio.run(pg_live(settings)) == summary["to_version"]
    assert summary["events"] >= len(texts)
    assert searches[0] > 20 and problems == [], problems[:5]

    # The live projector moved to the new version: a write after the switch is visible there.
    late = accepted(gateway.post("/v1/memories", json={"text": "likes replays too", "user_id": user_id}))
    answer = gateway.post("/v1/memories/search", json={"query": "replays", "user_id": user_id, "limit": 20,
                                                       "consistency_token": late["consistency_token"]})
    assert answer.status_code == 200, answer.text
    assert late["results"][0]["id"] in [r["id"] for r in answer.json()["results"]]


def test_replay_of_the_cache_keeps_every_memory_and_the_projector_follows(gateway, settings, user_id):
    async def recent():
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            model = await live_read_model(client)
            return model.keys.prefix, [d["text"] for d in await model.recent(user_id)]
        finally:
            await client.aclose()

    token = accepted(gateway.post("/v1/memories", json={"text": "cached fact", "user_id": user_id}))
    wait_visible_in_redis(settings, token["consistency_token"])
    prefix_before, texts_before = asyncio.run(recent())
    summary = replay(settings, "cache")
    prefix_after, texts_after = asyncio.run(recent())
    assert prefix_after != prefix_before and texts_after == texts_before == ["cached fact"]

    later = accepted(gateway.post("/v1/memories", json={"text": "written after the switch", "user_id": user_id}))
    wait_visible_in_redis(settings, later["consistency_token"])
    assert asyncio.run(recent())[1] == ["written after the switch", "cached fact"]
    assert summary["to_version"] == int(prefix_after.rsplit("v", 1)[1])


def wait_visible_in_redis(settings, token: str, timeout_s: float = 30) -> None:
    from domain.consistency import ConsistencyToken
    from settings import EVENTS_TOPIC

    wanted = ConsistencyToken.decode(token)

    async def positions():
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            return await (await live_read_model(client)).positions(EVENTS_TOPIC)
        finally:
            await client.aclose()

    deadline = time.monotonic() + timeout_s
    while True:
        have = asyncio.run(positions())
        if all(have.get(p, -1) >= o for p, o in wanted.offsets):
            return
        assert time.monotonic() < deadline, f"redis never applied {token}"
        time.sleep(0.1)


def test_replay_of_the_graph_keeps_every_memory_and_the_projector_follows(gateway, settings, user_id):
    from domain.consistency import ConsistencyToken
    from tests.e2e.test_graph_outage import graph_state

    def visible(token: str) -> list[str]:
        wanted = ConsistencyToken.decode(token)
        deadline = time.monotonic() + 60
        while True:
            positions, texts = asyncio.run(graph_state(settings, user_id))
            if all(positions.get(p, -1) >= o for p, o in wanted.offsets):
                return texts
            assert time.monotonic() < deadline, f"the graph never applied {token}"
            time.sleep(0.2)

    first = accepted(gateway.post("/v1/memories", json={"text": "Carol works at Initech", "user_id": user_id}))
    assert visible(first["consistency_token"]) == ["Carol works at Initech"]
    summary = replay(settings, "graph")
    assert summary["to_version"] > summary["from_version"]
    later = accepted(gateway.post("/v1/memories", json={"text": "Carol moved to Berlin", "user_id": user_id}))
    assert visible(later["consistency_token"]) == ["Carol moved to Berlin", "Carol works at Initech"]
