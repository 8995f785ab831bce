"""Neo4j stopped: writes and Postgres reads go on untouched, the graph projector waits
(nothing dead-lettered, nothing skipped) and catches up once Neo4j is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from domain.consistency import ConsistencyToken
from settings import EVENTS_TOPIC

pytestmark = pytest.mark.e2e

TEXTS = ["Alice Moreau works at Acme Corp", "Alice emails alice@acme.example about the Berlin trip",
         "The build script lives in tools/build.sh", "Bob Stone joined Acme Corp in May 2023"]


async def graph_state(settings, user_id):
    """(positions of the live graph version, texts of the user's memories in it)."""
    from neo4j import AsyncGraphDatabase

    from adapters.neo4j_read_model import labels, live_graph_version
    from projectors.neo4j_versions import Neo4jVersions

    async with AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password),
                                         notifications_min_severity="OFF") as driver:
        positions = await Neo4jVersions(driver).projection().positions(EVENTS_TOPIC)
        memory = labels(await live_graph_version(driver))["Memory"]
        records, _, _ = await driver.execute_query(
            f"MATCH (m:{memory} {{user_id: $user_id}}) RETURN m.text AS text", user_id=user_id)
        return positions, sorted(r["text"] for r in records)


@pytest.mark.outage
def test_neo4j_down_leaves_postgres_alone_and_the_graph_catches_up(gateway, settings, user_id):
    """Degradation mode "Neo4j down": writes and reads go on (the graph source named in
    `degraded`), /readyz says the query API is degraded by Neo4j; every acknowledged write
    is in the log, Postgres and (once it caught up) the graph exactly once."""
    from infra import stack
    from projectors import dead_letters
    from tests.e2e.log_reader import end_offsets
    from tests.e2e.outage import assert_exactly_once, latest_token, readyz

    before = asyncio.run(end_offsets(settings.kafka_bootstrap))
    processes = stack.table(settings)
    [neo4j] = stack.infra_specs(settings, ("neo4j",))
    stack.down([neo4j], processes)
    try:
        tokens = [gateway.post("/v1/memories", json={"text": text, "user_id": user_id}) for text in TEXTS]
        assert [t.status_code for t in tokens] == [202] * len(TEXTS)
        last = tokens[-1].json()["consistency_token"]
        began = time.monotonic()
        answer = gateway.post("/v1/memories/search", json={"query": "Acme", "user_id": user_id, "limit": 10,
                                                          "consistency_token": last})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["results"]) == len(TEXTS)  # Postgres applied them all
        assert time.monotonic() - began < 5  # and was not held up by the graph
        assert processes.pid("projector-neo4j") is not None  # waiting for Neo4j, not crashed
        ready = readyz(settings.query_api_url)
        assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
        assert ready.json()["dependencies"]["neo4j"]["state"] == "down"
        assert "graph source" in ready.json()["degraded"][0]["impact"]
        assert gateway.get("/readyz").json()["checks"]["query"] == "degraded: neo4j"
    finally:
        stack.up([neo4j], processes)

    wanted = [ConsistencyToken.decode(t.json()["consistency_token"]) for t in tokens]
    deadline = time.monotonic() + 120
    while True:
        positions, texts = asyncio.run(graph_state(settings, user_id))
        if all(positions.get(p, -1) >= o for token in wanted for p, o in token.offsets):
            break
        assert time.monotonic() < deadline, "the graph projector did not catch up within 120 s of Neo4j's return"
        time.sleep(0.5)
    assert texts == sorted(TEXTS)
    assert_exactly_once(settings, gateway, before, user_id, TEXTS, latest_token(tokens))
    letters = asyncio.run(dead_letters.read_all(settings.kafka_bootstrap))
    assert [x for x in letters if x["projection"] == "neo4j" and x["key"] == user_id] == []
