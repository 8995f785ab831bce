"""Neo4jProjector against the real Neo4j: the graph, idempotent applies, offsets in the same transaction."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import neo4j
import pytest

from domain.entities import extract
from domain.events import Entity, MemoryAccessed, MemoryCreated, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated, Relation
from projectors.neo4j_projector import Neo4jProjector, entity_key
from projectors.runner import Applied

pytestmark = pytest.mark.integration

TOPIC = f"test-topic-{uuid.uuid4().hex[:6]}"  # keeps these offsets apart from the real projection's
T0 = datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)


def created(user_id: str, text: str, *, at: datetime = T0, entities=(), relations=(), **scope) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=(1.0,), embedding_model="m", happened_at=at - timedelta(days=1), occurred_at=at,
                         entities=tuple(entities), relations=tuple(relations), **scope)


@pytest.fixture
async def driver(settings):
    driver = neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password))
    yield driver
    await driver.close()


@pytest.fixture
async def projector(driver, user_id):
    projector = Neo4jProjector(driver)
    await projector.ensure_schema()
    yield projector
    for label in ("User", "Memory", "Entity", "AppliedEvent"):
        await driver.execute_query(f"MATCH (n:{label}) WHERE n.user_id STARTS WITH $u DETACH DELETE n", u=user_id)
    await driver.execute_query("MATCH (o:ProjectionOffset {projection: 'neo4j'}) WHERE o.topic STARTS WITH $t"
                               " DETACH DELETE o", t=TOPIC)


async def rows(driver, query: str, **params) -> list[dict]:
    records, _, _ = await driver.execute_query(query, params)
    return [r.data() for r in records]


async def snapshot(driver, user_id: str) -> dict:
    """Everything of the user's graph that an apply could change, in a comparable form."""
    nodes = await rows(driver, "MATCH (n) WHERE (n:User OR n:Memory OR n:Entity OR n:AppliedEvent)"
                               " AND n.user_id = $u RETURN labels(n) AS l, properties(n) AS p", u=user_id)
    rels = await rows(driver, "MATCH (a)-[r]->(b) WHERE a.user_id = $u"
                              " RETURN type(r) AS t, properties(r) AS p, elementId(a) AS a, elementId(b) AS b",
                      u=user_id)
    return {"nodes": sorted(repr(sorted(n.items())) for n in nodes), "rels": sorted(repr(sorted(r.items())) for r in rels)}


async def mentions(driver, memory_id: str) -> set[tuple[str, str]]:
    found = await rows(driver, "MATCH (:Memory {id: $id})-[:MENTIONS]->(e:Entity) RETURN e.name AS n, e.type AS t",
                       id=memory_id)
    return {(r["n"], r["t"]) for r in found}


async def relates(driver, user_id: str) -> list[dict]:
    return await rows(driver, "MATCH (s:Entity {user_id: $u})-[r:RELATES]->(t:Entity)"
                              " RETURN s.name AS source, r.type AS type, t.name AS target, r.memory_id AS memory_id,"
                              " r.valid_from AS valid_from, r.valid_to AS valid_to ORDER BY r.valid_from, source, target",
                      u=user_id)


def native(value):
    return value.to_native() if value is not None else None


async def test_batch_builds_the_graph_and_a_redelivery_changes_nothing(projector, driver, user_id):
    topic = TOPIC + "-graph"
    e1 = created(user_id, "Ana Lopes works at Acme Corp.",
                 entities=[Entity("Ana Lopes", "person"), Entity("Acme Corp", "organization")],
                 relations=[Relation("Ana Lopes", "works_at", "Acme Corp")])
    e2 = created(user_id, "Ana Lopes uses Python and Rust.", agent_id="ide", run_id="r1", app_id="a")
    batch = [Applied(3, 10, e1), Applied(3, 11, e2), Applied(5, 7, None)]
    await projector.apply_batch(topic, batch)

    owned = await rows(driver, "MATCH (:User {user_id: $u})-[:OWNS]->(m:Memory) RETURN m ORDER BY m.text", u=user_id)
    assert [r["m"]["text"] for r in owned] == ["Ana Lopes uses Python and Rust.", "Ana Lopes works at Acme Corp."]
    m2, m1 = (r["m"] for r in owned)
    assert m1["id"] == e1.memory_id and m1["user_id"] == user_id and m1["state"] == "active"
    assert native(m1["created_at"]) == T0 and native(m1["updated_at"]) == T0
    assert native(m1["occurred_at"]) == T0 - timedelta(days=1)
    assert m1["entity_source"] == "event" and m2["entity_source"] == "extractor"
    assert (m2["agent_id"], m2["run_id"], m2["app_id"]) == ("ide", "r1", "a") and "agent_id" not in m1

    assert await mentions(driver, e1.memory_id) == {("Ana Lopes", "person"), ("Acme Corp", "organization")}
    assert await mentions(driver, e2.memory_id) == {("Ana Lopes", "person"), ("Python", "product"), ("Rust", "product")}
    # Entities are per user and shared by the memories that mention them.
    keys = await rows(driver, "MATCH (e:Entity {user_id: $u}) RETURN e.key AS key ORDER BY key", u=user_id)
    assert [r["key"] for r in keys] == ["acme corp|organization", "ana lopes|person", "python|product", "rust|product"]
    assert [(r["source"], r["type"], r["target"], r["memory_id"], native(r["valid_from"]), r["valid_to"])
            for r in await relates(driver, user_id)] == [
        ("Ana Lopes", "works_at", "Acme Corp", e1.memory_id, T0 - timedelta(days=1), None),
        ("Ana Lopes", "uses", "Python", e2.memory_id, T0 - timedelta(days=1), None),
        ("Ana Lopes", "uses", "Rust", e2.memory_id, T0 - timedelta(days=1), None),
    ]
    assert await projector.positions(topic) == {3: 11, 5: 7}

    before = await snapshot(driver, user_id)
    await projector.apply_batch(topic, batch)  # a redelivery after a crash before the Kafka commit
    assert await snapshot(driver, user_id) == before
    assert await projector.positions(topic) == {3: 11, 5: 7}
    await projector.apply_batch(topic, [Applied(3, 4, None), Applied(5, 2, None)])  # older: never moves back
    assert await projector.positions(topic) == {3: 11, 5: 7}
    await projector.apply_batch(topic, [Applied(5, 8, None)])
    assert await projector.positions(topic) == {3: 11, 5: 8}


async def test_the_same_event_appended_again_at_another_offset_changes_nothing(projector, driver, user_id):
    topic = TOPIC + "-dup"
    create = created(user_id, "Ana works at Acme.")
    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=create.memory_id, text="Ana works at Globex.",
                           occurred_at=T0 + timedelta(days=1))
    await projector.apply_batch(topic, [Applied(0, 1, create), Applied(0, 2, update)])
    before = await snapshot(driver, user_id)
    # A retried command whose idempotency record was lost: same event ids, later offsets.
    await projector.apply_batch(topic, [Applied(0, 3, create), Applied(0, 4, update)])
    assert await snapshot(driver, user_id) == before
    assert await projector.positions(topic) == {0: 4}
    # A create with a new event id for an existing memory does not reset it either.
    again = MemoryCreated(**{**create.__dict__, "event_id": str(uuid.uuid4())})
    await projector.apply_batch(topic, [Applied(0, 5, again)])
    text = await rows(driver, "MATCH (m:Memory {id: $id}) RETURN m.text AS t", id=create.memory_id)
    assert text == [{"t": "Ana works at Globex."}]


async def test_update_relinks_mentions_and_closes_the_old_relations(projector, driver, user_id):
    topic = TOPIC + "-update"
    create = created(user_id, "Ana works at Acme.")
    t1 = T0 + timedelta(days=30)
    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=create.memory_id,
                           text="Ana works at Globex.", occurred_at=t1)
    await projector.apply_batch(topic, [Applied(1, 1, create)])
    assert await mentions(driver, create.memory_id) == {("Ana", "person"), ("Acme", "organization")}
    await projector.apply_batch(topic, [Applied(1, 2, update)])

    assert await mentions(driver, create.memory_id) == {("Ana", "person"), ("Globex", "organization")}
    assert [(r["target"], r["memory_id"], native(r["valid_from"]), native(r["valid_to"]))
            for r in await relates(driver, user_id)] == [
        ("Acme", create.memory_id, T0 - timedelta(days=1), t1),  # closed when the text changed
        ("Globex", create.memory_id, t1, None),
    ]
    memory = (await rows(driver, "MATCH (m:Memory {id: $id}) RETURN m", id=create.memory_id))[0]["m"]
    assert memory["text"] == "Ana works at Globex." and native(memory["updated_at"]) == t1
    assert native(memory["created_at"]) == T0
    # The old entity stays (its closed relation still points at it).
    assert await rows(driver, "MATCH (e:Entity {user_id: $u, key: $k}) RETURN e.name AS n",
                      u=user_id, k=entity_key("Acme", "organization")) == [{"n": "Acme"}]

    # Metadata only: the graph of the text stays; someone else's update changes nothing.
    before_rels = await relates(driver, user_id)
    meta = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=create.memory_id, metadata={"k": 1},
                         occurred_at=t1 + timedelta(days=1))
    intruder = MemoryUpdated(user_id=user_id + "-mallory", actor="user:mallory", memory_id=create.memory_id,
                             text="Ana works at Evil Corp.", occurred_at=t1 + timedelta(days=2))
    await projector.apply_batch(topic, [Applied(1, 3, meta), Applied(1, 4, intruder)])
    assert await relates(driver, user_id) == before_rels
    assert await mentions(driver, create.memory_id) == {("Ana", "person"), ("Globex", "organization")}
    assert await projector.positions(topic) == {1: 4}


async def test_deletes_mark_memories_deleted_close_relations_and_keep_the_nodes(projector, driver, user_id):
    topic = TOPIC + "-delete"
    one = created(user_id, "Ana works at Acme.")
    music = created(user_id, "Bob loves Jazz.", agent_id="music")
    code = created(user_id, "Carol uses Rust.", agent_id="code")
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    delete = MemoryDeleted(user_id=user_id, actor="user:x", memory_id=one.memory_id, occurred_at=t1)
    scope = MemoryScopeDeleted(user_id=user_id, actor="user:x", agent_id="music", occurred_at=t2)
    await projector.apply_batch(topic, [Applied(2, 1, one), Applied(2, 2, music), Applied(2, 3, code),
                                        Applied(2, 4, delete), Applied(2, 5, scope)])
    states = await rows(driver, "MATCH (:User {user_id: $u})-[:OWNS]->(m:Memory)"
                                " RETURN m.text AS text, m.state AS state, m.deleted_at AS at ORDER BY text", u=user_id)
    assert [(r["text"], r["state"], native(r["at"])) for r in states] == [
        ("Ana works at Acme.", "deleted", t1), ("Bob loves Jazz.", "deleted", t2), ("Carol uses Rust.", "active", None)]
    assert {(r["source"], r["type"], r["target"]): native(r["valid_to"]) for r in await relates(driver, user_id)} == {
        ("Ana", "works_at", "Acme"): t1, ("Bob", "likes", "Jazz"): t2, ("Carol", "uses", "Rust"): None}
    assert await mentions(driver, one.memory_id) == {("Ana", "person"), ("Acme", "organization")}  # kept for audit

    # Redelivered, and an update of a deleted memory: nothing changes.
    before = await snapshot(driver, user_id)
    late = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=one.memory_id, text="Ana works at Globex.")
    await projector.apply_batch(topic, [Applied(2, 4, delete), Applied(2, 5, scope), Applied(2, 6, late)])
    after = await snapshot(driver, user_id)
    assert after["rels"] == before["rels"]
    assert [n for n in after["nodes"] if "AppliedEvent" not in n] == [n for n in before["nodes"] if "AppliedEvent" not in n]


async def test_a_v1_created_without_entities_gets_them_from_the_extractor(projector, driver, user_id):
    topic = TOPIC + "-v1"
    text = "Ana Lopes works at Acme Corp and uses FastAPI, see src/app/main.py since 8 May 2023."
    v1 = created(user_id, text)  # v1 events decode with empty entities and relations
    await projector.apply_batch(topic, [Applied(0, 0, v1)])
    ents, rels = extract(text)
    assert ents and rels
    assert await mentions(driver, v1.memory_id) == {(e.name, e.type) for e in ents}
    assert {(r["source"], r["type"], r["target"]) for r in await relates(driver, user_id)} == {
        (r.source, r.type, r.target) for r in rels}
    assert ("Ana Lopes", "works_at", "Acme Corp") in {(r.source, r.type, r.target) for r in rels}


async def test_a_relation_endpoint_missing_from_the_entities_becomes_an_other_entity(projector, driver, user_id):
    topic = TOPIC + "-other"
    event = created(user_id, "Ana mentors Bob.", entities=[Entity("Ana", "Person")],
                    relations=[Relation("ana", "Mentors", "Bob"), Relation("Ana", "mentors", "Bob")])
    await projector.apply_batch(topic, [Applied(0, 0, event)])
    assert await mentions(driver, event.memory_id) == {("Ana", "person"), ("Bob", "other")}
    assert [(r["source"], r["type"], r["target"]) for r in await relates(driver, user_id)] == [
        ("Ana", "mentors", "Bob")]


async def test_a_batch_that_fails_midway_leaves_neither_data_nor_position(projector, driver, user_id):
    topic = TOPIC + "-rollback"

    class FailingOnUpdate(Neo4jProjector):
        async def _update(self, tx, event):
            await super()._update(tx, event)  # writes first, then a Cypher error in the same transaction
            result = await tx.run("UNWIND [0] AS zero RETURN 1 / zero")
            await result.consume()

    a, b = created(user_id, "Ana works at Acme."), created(user_id, "Bob uses Vim.")
    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=a.memory_id, text="Ana works at Globex.")
    batch = [Applied(0, 1, a), Applied(0, 2, b), Applied(0, 3, update)]
    with pytest.raises(neo4j.exceptions.ClientError):
        await FailingOnUpdate(driver).apply_batch(topic, batch)
    assert await rows(driver, "MATCH (n) WHERE (n:User OR n:Memory OR n:Entity OR n:AppliedEvent)"
                              " AND n.user_id = $u RETURN count(n) AS c", u=user_id) == [{"c": 0}]
    assert await projector.positions(topic) == {}
    # The same batch then applies in full.
    await projector.apply_batch(topic, batch)
    assert await mentions(driver, a.memory_id) == {("Ana", "person"), ("Globex", "organization")}
    assert await projector.positions(topic) == {0: 3}


async def test_other_events_only_advance_the_position(projector, driver, user_id):
    topic = TOPIC + "-other-events"
    accessed = MemoryAccessed(user_id=user_id, actor="user:x", memory_ids=(str(uuid.uuid4()),), source="search")
    await projector.apply_batch(topic, [Applied(4, 9, accessed)])
    assert await projector.positions(topic) == {4: 9}
    assert await rows(driver, "MATCH (n) WHERE (n:User OR n:Memory OR n:AppliedEvent) AND n.user_id = $u"
                              " RETURN count(n) AS c", u=user_id) == [{"c": 0}]
    await projector.apply_batch(topic, [])
    assert await projector.positions(topic) == {4: 9}


async def test_ensure_schema_is_idempotent(projector, driver):
    await projector.ensure_schema()
    await projector.ensure_schema()
    names = {r["name"] for r in await rows(driver, "SHOW CONSTRAINTS YIELD name RETURN name")}
    assert {"rs_user_id", "rs_memory_id", "rs_entity_user_key", "rs_projection_offset",
            "rs_applied_event_id"} <= names
    indexes = {r["name"] for r in await rows(driver, "SHOW INDEXES YIELD name RETURN name")}
    assert {"rs_memory_user", "rs_relates_memory"} <= indexes
