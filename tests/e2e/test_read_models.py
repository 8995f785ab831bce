"""Every read model follows the log: a write through the API shows up in each projector's
model once its positions cover the write's consistency token."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from adapters.redis_read_model import live_read_model
from domain.consistency import wait_until_applied
from settings import EVENTS_TOPIC

pytestmark = pytest.mark.e2e


def accepted(answer):
    assert answer.status_code == 202, answer.text
    return answer.json()


async def redis_view(settings, token, user_id, memory_id):
    client = aioredis.Redis.from_url(settings.redis_url)
    model = await live_read_model(client)
    try:
        await wait_until_applied(token, EVENTS_TOPIC, "redis", lambda: model.positions(EVENTS_TOPIC), 10_000)
        return (await model.get(memory_id, include_deleted=True), await model.recent(user_id),
                await model.generation(user_id))
    finally:
        await client.aclose()


def test_redis_read_model_follows_adds_updates_and_deletes(gateway, settings, user_id):
    created = accepted(gateway.post("/v1/memories", json={"text": "Drinks oat milk", "user_id": user_id,
                                                          "metadata": {"source": "chat"}}))
    memory_id = created["results"][0]["id"]
    doc, recent, generation = asyncio.run(redis_view(settings, created["consistency_token"], user_id, memory_id))
    assert (doc["text"], doc["state"], doc["metadata"]) == ("Drinks oat milk", "active", {"source": "chat"})
    assert [r["id"] for r in recent] == [memory_id]

    updated = accepted(gateway.patch(f"/v1/memories/{memory_id}", params={"user_id": user_id},
                                     json={"text": "Drinks soy milk"},
                                     headers={"X-Consistency-Token": created["consistency_token"]}))
    doc, _, after_update = asyncio.run(redis_view(settings, updated["consistency_token"], user_id, memory_id))
    assert doc["text"] == "Drinks soy milk" and after_update > generation

    deleted = accepted(gateway.delete(f"/v1/memories/{memory_id}", params={"user_id": user_id}))
    doc, recent, after_delete = asyncio.run(redis_view(settings, deleted["consistency_token"], user_id, memory_id))
    assert doc["state"] == "deleted" and recent == [] and after_delete > after_update


async def graph_of(settings, token, user_id):
    from neo4j import AsyncGraphDatabase

    from adapters.neo4j_read_model import labels
    from projectors.neo4j_versions import Neo4jVersions

    async with AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)) \
            as driver:
        projector = Neo4jVersions(driver).projection()
        await wait_until_applied(token, EVENTS_TOPIC, "neo4j", lambda: projector.positions(EVENTS_TOPIC), 15_000)
        n = labels(projector.version)  # the live label set the positions were read from
        records, _, _ = await driver.execute_query(
            f"MATCH (:{n['User']} {{user_id: $u}})-[:OWNS]->(m:{n['Memory']})-[:MENTIONS]->(e:{n['Entity']}) "
            f"OPTIONAL MATCH (e)-[r:RELATES]->(t:{n['Entity']}) RETURN m.state AS state, e.name AS name,"
            " e.type AS type, r.type AS relation, t.name AS target, r.valid_to AS valid_to", u=user_id)
        return [dict(r) for r in records]


def test_graph_read_model_links_memories_entities_and_relations(gateway, settings, user_id):
    created = accepted(gateway.post("/v1/memories", json={
        "text": "Alex Smith works at TechCorp and writes to alex@techcorp.io", "user_id": user_id}))
    rows = asyncio.run(graph_of(settings, created["consistency_token"], user_id))
    assert {(r["name"], r["type"]) for r in rows} >= {("Alex Smith", "person"), ("alex@techcorp.io", "email")}
    assert any(r["relation"] == "works_at" and r["target"] == "TechCorp" and r["valid_to"] is None for r in rows)

    deleted = accepted(gateway.delete(f"/v1/memories/{created['results'][0]['id']}", params={"user_id": user_id}))
    rows = asyncio.run(graph_of(settings, deleted["consistency_token"], user_id))
    assert {r["state"] for r in rows} == {"deleted"}
    assert all(r["valid_to"] is not None for r in rows if r["relation"] == "works_at")
