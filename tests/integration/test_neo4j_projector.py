"""Neo4jProjector against the real Neo4j: the graph, idempotent applies, offsets in the same
transaction; versions (label sets), the live pointer, switch, drop and adopting an old graph.

Neo4j is shared with the real projector and other tests: everything here writes versions
numbered 1000..9999 under a projection name of its own (the pointer is keyed by it), and
drops them afterwards. Version 1's labels are never dropped or written here."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import neo4j
import pytest

from domain.entities import extract
from domain.events import (Entity, MemoryAccessed, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, Relation)
from projectors import neo4j_versions
from projectors.graph_rows import entity_key
from adapters.neo4j_read_model import labels, live_graph_version, versioned
from projectors.neo4j_versions import Neo4jVersions
from projectors.neo4j_store import Neo4jGraphStore
from projectors.applied import Applied, Relocated

pytestmark = pytest.mark.integration

TOPIC = f"test-topic-{uuid.uuid4().hex[:6]}"  # keeps these offsets apart from the real projection's
T0 = datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)
# The version and projection name the graph tests write (queries below say `Memory_vN` for its labels).
VERSION = random.randrange(1000, 10000)
PROJECTION = f"neo4j_test_{uuid.uuid4().hex[:8]}"


def created(user_id: str, text: str, *, at: datetime = T0, entities=(), relations=(), **scope) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=(1.0,), embedding_model="m", happened_at=at - timedelta(days=1), occurred_at=at,
                         entities=tuple(entities), relations=tuple(relations), **scope)


def consolidated(user_id: str, text: str, sources, *, at: datetime = T0 + timedelta(days=2), entities=(),
                 relations=(), **fields) -> MemoryConsolidated:
    return MemoryConsolidated(user_id=user_id, actor="worker:consolidate", memory_id=str(uuid.uuid4()), text=text,
                              source_memory_ids=tuple(m.memory_id for m in sources), embedding=(1.0,),
                              embedding_model="m", reason="similar", occurred_at=at, entities=tuple(entities),
                              relations=tuple(relations), **fields)


def forgotten(memory, at: datetime) -> MemoryForgotten:
    return MemoryForgotten(user_id=memory.user_id, actor="worker:forget", memory_id=memory.memory_id,
                           reason="decayed", score=0.01, occurred_at=at)


def restored(memory, at: datetime) -> MemoryRestored:
    return MemoryRestored(user_id=memory.user_id, actor="user:x", memory_id=memory.memory_id, occurred_at=at)


def spare_versions(k: int) -> list[int]:
    return random.sample([v for v in range(1000, 10000) if v != VERSION], k)


@pytest.fixture(scope="module")
async def graph_version(settings):
    """VERSION's schema for the module; afterwards everything in it is dropped."""
    async with neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri,
                                               auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        versions = Neo4jVersions(driver, projection=PROJECTION)
        await versions.create_version(VERSION)
        yield VERSION
        await versions.drop(VERSION)
        await forget_projection(driver, PROJECTION)


@pytest.fixture
async def projector(driver, graph_version):
    projector = Neo4jVersions(driver, projection=PROJECTION).projection(graph_version)
    await projector.ensure_schema()
    return projector


@pytest.fixture
async def test_versions(driver):
    """Neo4jVersions under a projection name of its own (its own pointer); drops the versions
    the test lists in `made` and forgets the projection afterwards."""
    versions = Neo4jVersions(driver, projection=f"neo4j_test_{uuid.uuid4().hex[:8]}")
    versions.made = []
    yield versions
    await driver.execute_query("MATCH (p:ReadModelLive {projection: $p}) DELETE p", p=versions.name)
    for version in versions.made:
        await versions.drop(version)
    await forget_projection(driver, versions.name)


@pytest.fixture
async def versions_apart(driver):
    """Two versions holding the same offsets (or memories) need the plain-label constraints of
    a graph from before versions gone; they go when the real projection adopts that graph."""
    names = {r["name"] for r in await rows(driver, "SHOW CONSTRAINTS YIELD name RETURN name")}
    legacy = names & {"rs_projection_offset", "rs_memory_id", "rs_user_id", "rs_applied_event_id"}
    if legacy:
        pytest.skip(f"this Neo4j still has the unversioned constraints {sorted(legacy)} of a graph not yet adopted "
                    f"as version 1 (start the neo4j projector once); they would make two versions collide")


async def forget_projection(driver, projection: str) -> None:
    await driver.execute_query("MATCH (n) WHERE (n:ReadModelLive OR n:ReadModelVersion) AND n.projection = $p"
                               " DELETE n", p=projection)


async def rows(driver, query: str, version: int = VERSION, **params) -> list[dict]:
    records, _, _ = await driver.execute_query(versioned(query, version), params)
    return [r.data() for r in records]


async def snapshot(driver, user_id: str) -> dict:
    """Everything of the user's graph that an apply could change, in a comparable form."""
    nodes = await rows(driver, "MATCH (n) WHERE (n:User_vN OR n:Memory_vN OR n:Entity_vN OR n:AppliedEvent_vN)"
                               " AND n.user_id = $u RETURN labels(n) AS l, properties(n) AS p", u=user_id)
    rels = await rows(driver, "MATCH (a)-[r]->(b) WHERE a.user_id = $u"
                              " RETURN type(r) AS t, properties(r) AS p, elementId(a) AS a, elementId(b) AS b",
                      u=user_id)
    return {"nodes": sorted(repr(sorted(n.items())) for n in nodes), "rels": sorted(repr(sorted(r.items())) for r in rels)}


async def mentions(driver, memory_id: str, version: int = VERSION) -> set[tuple[str, str]]:
    found = await rows(driver, "MATCH (:Memory_vN {id: $id})-[:MENTIONS]->(e:Entity_vN)"
                               " RETURN e.name AS n, e.type AS t", version, id=memory_id)
    return {(r["n"], r["t"]) for r in found}


async def relates(driver, user_id: str) -> list[dict]:
    return await rows(driver, "MATCH (s:Entity_vN {user_id: $u})-[r:RELATES]->(t:Entity_vN)"
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

    owned = await rows(driver, "MATCH (:User_vN {user_id: $u})-[:OWNS]->(m:Memory_vN) RETURN m ORDER BY m.text",
                       u=user_id)
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
    keys = await rows(driver, "MATCH (e:Entity_vN {user_id: $u}) RETURN e.key AS key ORDER BY key", u=user_id)
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
    text = await rows(driver, "MATCH (m:Memory_vN {id: $id}) RETURN m.text AS t", id=create.memory_id)
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
    memory = (await rows(driver, "MATCH (m:Memory_vN {id: $id}) RETURN m", id=create.memory_id))[0]["m"]
    assert memory["text"] == "Ana works at Globex." and native(memory["updated_at"]) == t1
    assert native(memory["created_at"]) == T0
    # The old entity stays (its closed relation still points at it).
    assert await rows(driver, "MATCH (e:Entity_vN {user_id: $u, key: $k}) RETURN e.name AS n",
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
    states = await rows(driver, "MATCH (:User_vN {user_id: $u})-[:OWNS]->(m:Memory_vN)"
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


async def memory_states(driver, user_id: str) -> dict[str, str]:
    found = await rows(driver, "MATCH (:User_vN {user_id: $u})-[:OWNS]->(m:Memory_vN) RETURN m.id AS id, m.state AS s",
                       u=user_id)
    return {r["id"]: r["s"] for r in found}


async def test_consolidation_creates_the_summary_and_archives_the_sources(projector, driver, user_id):
    topic = TOPIC + "-consolidate"
    works, jazz = created(user_id, "Ana works at Acme."), created(user_id, "Ana likes Jazz.")
    dropped, gone = created(user_id, "Ana uses Vim."), created(user_id, "Bob uses Vim.")
    theirs = created(user_id + "-other", "Ana works at Initech.")
    t1, t2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    summary = consolidated(user_id, "Ana works at Acme and likes Jazz.", [works, jazz, dropped, gone, theirs], at=t2,
                           agent_id="ide", happened_at=T0 - timedelta(days=3),
                           entities=[Entity("Ana", "person"), Entity("Acme", "organization"), Entity("Jazz", "genre")],
                           relations=[Relation("Ana", "works_at", "Acme"), Relation("Ana", "likes", "Jazz")])
    batch = [Applied(0, 1, works), Applied(0, 2, jazz), Applied(0, 3, dropped), Applied(0, 4, gone),
             Applied(0, 5, theirs), Applied(0, 6, forgotten(dropped, t1)),
             Applied(0, 7, MemoryDeleted(user_id=user_id, actor="user:x", memory_id=gone.memory_id, occurred_at=t1)),
             Applied(0, 8, summary)]
    await projector.apply_batch(topic, batch)

    node = (await rows(driver, "MATCH (:User_vN {user_id: $u})-[:OWNS]->(m:Memory_vN {id: $id}) RETURN m",
                       u=user_id, id=summary.memory_id))[0]["m"]
    assert (node["text"], node["state"], node["agent_id"], node["entity_source"]) == (
        summary.text, "active", "ide", "event")
    assert native(node["created_at"]) == t2 and native(node["occurred_at"]) == T0 - timedelta(days=3)
    assert await mentions(driver, summary.memory_id) == {("Ana", "person"), ("Acme", "organization"),
                                                         ("Jazz", "genre")}
    # Sources (active or forgotten, the user's own) are archived; their relations stay open: history.
    assert await memory_states(driver, user_id) == {works.memory_id: "archived", jazz.memory_id: "archived",
                                                    dropped.memory_id: "archived", gone.memory_id: "deleted",
                                                    summary.memory_id: "active"}
    assert await memory_states(driver, user_id + "-other") == {theirs.memory_id: "active"}
    archived = (await rows(driver, "MATCH (m:Memory_vN {id: $id}) RETURN m", id=works.memory_id))[0]["m"]
    assert native(archived["updated_at"]) == t2 and archived["last_event_id"] == summary.event_id
    assert await mentions(driver, works.memory_id) == {("Ana", "person"), ("Acme", "organization")}
    assert {(r["target"], r["memory_id"], native(r["valid_from"]), native(r["valid_to"]))
            for r in await relates(driver, user_id) if r["memory_id"] in (works.memory_id, summary.memory_id)} == {
        ("Acme", works.memory_id, T0 - timedelta(days=1), None),
        ("Acme", summary.memory_id, T0 - timedelta(days=3), None),
        ("Jazz", summary.memory_id, T0 - timedelta(days=3), None)}

    # Redelivered: nothing changes. A second summary with the same id (a new event) neither.
    before = await snapshot(driver, user_id)
    await projector.apply_batch(topic, batch)
    await projector.apply_batch(topic, [Applied(0, 8, summary)])
    assert await snapshot(driver, user_id) == before
    fresh = created(user_id, "Ana likes tea.")
    again = MemoryConsolidated(**{**summary.__dict__, "event_id": str(uuid.uuid4()),
                                  "source_memory_ids": (fresh.memory_id,)})
    await projector.apply_batch(topic, [Applied(0, 9, fresh), Applied(0, 10, again)])
    assert (await memory_states(driver, user_id))[fresh.memory_id] == "active"
    assert await projector.positions(topic) == {0: 10}


async def test_a_v1_style_consolidation_gets_its_entities_from_the_extractor(projector, driver, user_id):
    topic = TOPIC + "-consolidate-v1"
    source = created(user_id, "Bob uses Vim.")
    at = T0 + timedelta(days=5)
    summary = consolidated(user_id, "Bob uses Vim daily.", [source], at=at)  # no entities, no happened_at
    await projector.apply_batch(topic, [Applied(0, 1, source), Applied(0, 2, summary)])
    node = (await rows(driver, "MATCH (m:Memory_vN {id: $id}) RETURN m", id=summary.memory_id))[0]["m"]
    assert node["entity_source"] == "extractor" and native(node["occurred_at"]) == at
    assert await mentions(driver, summary.memory_id) == {("Bob", "person"), ("Vim", "product")}
    assert [(r["memory_id"], native(r["valid_from"])) for r in await relates(driver, user_id)
            if r["memory_id"] == summary.memory_id] == [(summary.memory_id, at)]


async def test_forget_hides_without_closing_and_restore_brings_back(projector, driver, user_id):
    topic = TOPIC + "-forget"
    works, jazz = created(user_id, "Ana works at Acme."), created(user_id, "Ana likes Jazz.")
    t = [T0 + timedelta(days=d) for d in range(10)]
    await projector.apply_batch(topic, [Applied(0, 1, works), Applied(0, 2, jazz)])
    rels_before = await relates(driver, user_id)

    forget = forgotten(works, t[1])
    await projector.apply_batch(topic, [Applied(0, 3, forget)])
    assert (await memory_states(driver, user_id))[works.memory_id] == "forgotten"
    assert await relates(driver, user_id) == rels_before  # not closed: forgetting is restorable
    assert await mentions(driver, works.memory_id) == {("Ana", "person"), ("Acme", "organization")}
    node = (await rows(driver, "MATCH (m:Memory_vN {id: $id}) RETURN m", id=works.memory_id))[0]["m"]
    assert native(node["updated_at"]) == t[1] and node["last_event_id"] == forget.event_id

    # Redelivered (same offset, or appended again at another one): nothing changes.
    before = await snapshot(driver, user_id)
    await projector.apply_batch(topic, [Applied(0, 3, forget)])
    await projector.apply_batch(topic, [Applied(0, 4, forget)])
    assert await snapshot(driver, user_id) == before

    restore = restored(works, t[2])
    await projector.apply_batch(topic, [Applied(0, 5, restore)])
    assert (await memory_states(driver, user_id))[works.memory_id] == "active"
    assert await relates(driver, user_id) == rels_before
    before = await snapshot(driver, user_id)
    await projector.apply_batch(topic, [Applied(0, 5, restore), Applied(0, 6, restore)])
    assert await snapshot(driver, user_id) == before

    # Only from the right states: restoring an active memory, forgetting someone else's or a
    # deleted one change nothing but the applied markers; an archived one may be forgotten
    # and restored.
    intruder = MemoryForgotten(user_id=user_id + "-mallory", actor="worker:forget", memory_id=jazz.memory_id,
                               reason="x", occurred_at=t[3])
    await projector.apply_batch(topic, [Applied(0, 7, restored(works, t[3])), Applied(0, 8, intruder)])
    after = await snapshot(driver, user_id)
    assert [n for n in after["nodes"] if "AppliedEvent" not in n] == [
        n for n in before["nodes"] if "AppliedEvent" not in n] and after["rels"] == before["rels"]
    summary = consolidated(user_id, "Ana likes Jazz a lot.", [jazz], at=t[4])
    await projector.apply_batch(topic, [Applied(0, 9, summary), Applied(0, 10, forgotten(jazz, t[5]))])
    assert (await memory_states(driver, user_id))[jazz.memory_id] == "forgotten"
    await projector.apply_batch(topic, [Applied(0, 11, restored(jazz, t[6]))])
    assert (await memory_states(driver, user_id))[jazz.memory_id] == "active"
    await projector.apply_batch(topic, [
        Applied(0, 12, MemoryDeleted(user_id=user_id, actor="user:x", memory_id=jazz.memory_id, occurred_at=t[7])),
        Applied(0, 13, forgotten(jazz, t[8])), Applied(0, 14, restored(jazz, t[9]))])
    assert (await memory_states(driver, user_id))[jazz.memory_id] == "deleted"
    assert await projector.positions(topic) == {0: 14}


async def test_a_v1_created_without_entities_gets_them_from_the_extractor(projector, driver, user_id):
    topic = TOPIC + "-v1"
    text = "Ana Lopes works at Acme Corp and uses FastAPI, see src/app/main.py since 8 May 2023."
    v1 = created(user_id, text)  # v1 events decode with empty entities and relations
    await projector.apply_batch(topic, [Applied(0, 0, v1)])
    ents, rels = extract(text)
    assert ents and rels
    assert await mentions(driver, v1.memory_id) == {(e.name, e.type) for e in ents if e.type != "date"}  # times: properties
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


async def test_an_entity_too_long_to_index_is_left_out_not_dead_lettered(projector, driver, user_id):
    """Neo4j refuses index keys over about 8 KB: a 30,000-character URL in a text (or a long
    entity or relation type an LLM made) would fail the event; the rest of the graph stays."""
    topic = TOPIC + "-long"
    url = "https://example.com/" + "p" * 30_000
    from_extractor = created(user_id, f"Ana works at Acme and uses {url}")
    from_event = created(user_id, "Bob likes tea", entities=[Entity("B" * 9_000, "person"), Entity("Tea", "x" * 9_000),
                                                             Entity("Bob", "person")],
                         relations=[Relation("Bob", "likes" * 2_000, "Tea"), Relation("Bob", "knows", "B" * 9_000)])
    await projector.apply_batch(topic, [Applied(0, 0, from_extractor), Applied(0, 1, from_event)])
    assert await mentions(driver, from_extractor.memory_id) == {("Ana", "person"), ("Acme", "organization")}
    assert await mentions(driver, from_event.memory_id) == {("Bob", "person")}
    assert [(r["source"], r["type"], r["target"]) for r in await relates(driver, user_id)] == [
        ("Ana", "works_at", "Acme")]
    await projector.apply_batch(topic, [Applied(0, 2, MemoryUpdated(
        user_id=user_id, actor="user:x", memory_id=from_event.memory_id, text=f"Bob likes {url}"))])
    assert await mentions(driver, from_event.memory_id) == {("Bob", "person")}


async def test_a_batch_that_fails_midway_leaves_neither_data_nor_position(projector, driver, user_id, monkeypatch):
    topic = TOPIC + "-rollback"
    relink = Neo4jGraphStore.relink

    async def failing_relink(self, event):
        await relink(self, event)  # writes first, then a Cypher error in the same transaction
        result = await self.tx.run("UNWIND [0] AS zero RETURN 1 / zero")
        await result.consume()

    a, b = created(user_id, "Ana works at Acme."), created(user_id, "Bob uses Vim.")
    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=a.memory_id, text="Ana works at Globex.")
    batch = [Applied(0, 1, a), Applied(0, 2, b), Applied(0, 3, update)]
    monkeypatch.setattr(Neo4jGraphStore, "relink", failing_relink)
    with pytest.raises(neo4j.exceptions.ClientError):
        await Neo4jVersions(driver, projection=PROJECTION).projection(VERSION).apply_batch(topic, batch)
    monkeypatch.undo()
    assert await rows(driver, "MATCH (n) WHERE (n:User_vN OR n:Memory_vN OR n:Entity_vN OR n:AppliedEvent_vN)"
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
    assert await rows(driver, "MATCH (n) WHERE (n:User_vN OR n:Memory_vN OR n:AppliedEvent_vN) AND n.user_id = $u"
                              " RETURN count(n) AS c", u=user_id) == [{"c": 0}]
    await projector.apply_batch(topic, [])
    assert await projector.positions(topic) == {4: 9}


async def test_ensure_schema_is_idempotent_and_per_version(projector, driver):
    await projector.ensure_schema()
    await projector.ensure_schema()
    constraints = {r["name"]: r["labels"] for r in await rows(
        driver, "SHOW CONSTRAINTS YIELD name, labelsOrTypes AS labels WHERE name STARTS WITH 'rs_vN_'"
                " RETURN name, labels")}
    assert constraints == {
        f"rs_v{VERSION}_user_id": [f"User_v{VERSION}"], f"rs_v{VERSION}_memory_id": [f"Memory_v{VERSION}"],
        f"rs_v{VERSION}_entity_user_key": [f"Entity_v{VERSION}"],
        f"rs_v{VERSION}_projection_offset": [f"ProjectionOffset_v{VERSION}"],
        f"rs_v{VERSION}_applied_event_id": [f"AppliedEvent_v{VERSION}"]}
    indexes = {r["name"] for r in await rows(driver, "SHOW INDEXES YIELD name RETURN name")}
    assert {f"rs_v{VERSION}_memory_user", f"rs_v{VERSION}_entity_name", "rs_relates_memory", "rs_relates_type",
            "rs_read_model_live"} <= indexes


def test_labels_come_from_int_versions_only():
    assert labels(3) == {"User": "User_v3", "Memory": "Memory_v3", "Entity": "Entity_v3",
                         "ProjectionOffset": "ProjectionOffset_v3", "AppliedEvent": "AppliedEvent_v3"}
    assert versioned("MATCH (m:Memory_vN) CREATE CONSTRAINT rs_vN_x", 12) == (
        "MATCH (m:Memory_v12) CREATE CONSTRAINT rs_v12_x")
    for bad in ("3", 0, -1, True, 2.0, "1) DETACH DELETE (n"):
        with pytest.raises(ValueError):
            labels(bad)
        with pytest.raises(ValueError):
            versioned("MATCH (m:Memory_vN)", bad)
        with pytest.raises(ValueError):
            Neo4jVersions(None).projection(bad)


# --- versions ----------------------------------------------------------------------------


async def node_labels(driver, user_id: str) -> set[tuple[str, ...]]:
    found = await rows(driver, "MATCH (n) WHERE n.user_id = $u RETURN labels(n) AS l", u=user_id)
    return {tuple(sorted(r["l"])) for r in found}


async def test_a_pinned_version_writes_only_its_labels(projector, driver, user_id):
    topic = TOPIC + "-pinned"
    event = created(user_id, "Ana Lopes works at Acme Corp.",
                    entities=[Entity("Ana Lopes", "person"), Entity("Acme Corp", "organization")],
                    relations=[Relation("Ana Lopes", "works_at", "Acme Corp")])
    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=event.memory_id, text="Ana works at Globex.",
                           occurred_at=T0 + timedelta(days=1))
    await projector.apply_batch(topic, [Applied(0, 0, event), Applied(0, 1, update)])

    v = VERSION
    assert await node_labels(driver, user_id) == {
        ("User", f"User_v{v}"), ("Memory", f"Memory_v{v}"), ("Entity", f"Entity_v{v}"),
        ("AppliedEvent", f"AppliedEvent_v{v}")}
    offsets = await rows(driver, "MATCH (o:ProjectionOffset {projection: $p, topic: $t}) RETURN labels(o) AS l",
                         p=PROJECTION, t=topic)
    assert [sorted(r["l"]) for r in offsets] == [["ProjectionOffset", f"ProjectionOffset_v{v}"]]
    assert await rows(driver, "MATCH (m:Memory {id: $id}) RETURN count(m) AS c", id=event.memory_id) == [{"c": 1}]
    # Another version sees none of it, and the pointer was never read or created.
    other = spare_versions(1)[0]
    assert await Neo4jVersions(driver, projection=PROJECTION).projection(other).positions(topic) == {}
    assert await mentions(driver, event.memory_id, other) == set()
    assert await mentions(driver, event.memory_id) == {("Ana", "person"), ("Globex", "organization")}
    assert await rows(driver, "MATCH (p:ReadModelLive {projection: $p}) RETURN p", p=PROJECTION) == []


async def test_follow_mode_moves_to_the_new_version_after_a_switch(test_versions, driver, user_id, versions_apart):
    versions, topic = test_versions, TOPIC + "-follow"
    old, new = versions.made = spare_versions(2)
    for version in (old, new):
        await versions.create_version(version)
    assert await versions.live_version() == 1  # created by the first call (nothing of this projection in it)
    assert await versions.switch(old, topic)
    assert await live_graph_version(driver, projection=versions.name) == old

    follow = versions.projection()
    assert await follow.positions(topic) == {} and follow.version == old
    e1, e2, e3 = (created(user_id, f"Ana uses tool {i}.") for i in range(3))
    await follow.apply_batch(topic, [Applied(0, 0, e1), Applied(0, 1, e2)])
    # The replay: the same events into the new version, and more.
    replay = versions.projection(new)
    await replay.apply_batch(topic, [Applied(0, 0, e1), Applied(0, 1, e2), Applied(0, 2, e3), Applied(1, 0, None)])
    assert await versions.versions() == sorted([1, old, new])
    assert await versions.switch(new, topic)

    with pytest.raises(Relocated):
        await follow.apply_batch(topic, [Applied(0, 2, e3)])
    assert await mentions(driver, e3.memory_id, old) == set()  # nothing of the refused batch
    assert await versions.projection(old).positions(topic) == {0: 1}
    assert await follow.positions(topic) == {0: 2, 1: 0} and follow.version == new
    e4 = created(user_id, "Bob uses Vim.")
    await follow.apply_batch(topic, [Applied(0, 3, e4)])
    assert await mentions(driver, e4.memory_id, new) == {("Bob", "person"), ("Vim", "product")}
    assert await mentions(driver, e4.memory_id, old) == set()

    await versions.drop(old)
    assert await versions.versions() == [1, new]


async def test_a_switch_during_a_batch_turns_the_batch_away(test_versions, driver, user_id, versions_apart,
                                                            monkeypatch):
    versions, topic = test_versions, TOPIC + "-race"
    old, new = versions.made = spare_versions(2)
    for version in (old, new):
        await versions.create_version(version)
    await versions.live_version()
    assert await versions.switch(old, topic)
    first = created(user_id, "Ana uses Rust.")
    for version in (old, new):
        await versions.projection(version).apply_batch(topic, [Applied(0, 0, first)])

    create_memories = Neo4jGraphStore.create_memories

    async def switched_midway(self, events):
        created_ids = await create_memories(self, events)  # written, not committed
        if events:
            assert await versions.switch(new, topic)  # the offsets are not locked yet: it commits
        return created_ids

    monkeypatch.setattr(Neo4jGraphStore, "create_memories", switched_midway)
    follow = versions.projection()
    assert await follow.positions(topic) == {0: 0}
    late = created(user_id, "Bob uses Vim.")
    with pytest.raises(Relocated):  # seen once the batch holds its offsets: rolled back
        await follow.apply_batch(topic, [Applied(0, 1, late)])
    monkeypatch.undo()
    for version in (old, new):
        assert await mentions(driver, late.memory_id, version) == set()
        assert await versions.projection(version).positions(topic) == {0: 0}
    assert await versions.live_version() == new


async def test_switch_refuses_a_candidate_behind_the_live_version(test_versions, driver, versions_apart):
    versions, topic = test_versions, TOPIC + "-refuse"
    live, candidate = versions.made = spare_versions(2)
    for version in (live, candidate):
        await versions.create_version(version)
    await versions.live_version()
    assert await versions.switch(live, topic)
    await versions.projection(live).apply_batch(topic, [Applied(0, 5, None), Applied(1, 7, None)])

    replay = versions.projection(candidate)
    await replay.apply_batch(topic, [Applied(0, 9, None)])  # partition 1 missing
    assert not await versions.switch(candidate, topic)
    await replay.apply_batch(topic, [Applied(1, 6, None)])  # partition 1 behind
    assert not await versions.switch(candidate, topic)
    assert await versions.live_version() == live and await live_graph_version(driver, projection=versions.name) == live
    assert await versions.projection(live).positions(topic) == {0: 5, 1: 7}  # the lock left nothing behind
    assert await rows(driver, "MATCH (n) WHERE (n:ReadModelLive OR n:ProjectionOffset) AND n._LOCK_ IS NOT NULL"
                              " RETURN count(n) AS c") == [{"c": 0}]

    await replay.apply_batch(topic, [Applied(1, 7, None)])
    assert await versions.switch(candidate, topic)
    assert await versions.live_version() == candidate
    assert await versions.switch(candidate, topic)  # already live


async def test_drop_removes_every_node_of_the_version_and_refuses_the_live_one(test_versions, driver, user_id,
                                                                              monkeypatch):
    versions, topic = test_versions, TOPIC + "-drop"
    live, doomed = versions.made = spare_versions(2)
    for version in (live, doomed):
        await versions.create_version(version)
    await versions.live_version()
    assert await versions.switch(live, topic)
    with pytest.raises(ValueError):
        await versions.drop(live)

    events = [created(user_id, f"Ana Lopes works at Acme Corp and uses tool {i}.") for i in range(5)]
    await versions.projection(doomed).apply_batch(topic, [Applied(0, i, e) for i, e in enumerate(events)])
    counts = await rows(driver, "MATCH (n) WHERE any(l IN labels(n) WHERE l ENDS WITH $suffix) RETURN count(n) AS c",
                        suffix=f"_v{doomed}")
    assert counts[0]["c"] > 5
    assert doomed in await versions.versions()

    monkeypatch.setattr(neo4j_versions, "_BATCH", 2)  # several rounds per label
    await versions.drop(doomed)
    assert await rows(driver, "MATCH (n) WHERE any(l IN labels(n) WHERE l ENDS WITH $suffix) RETURN count(n) AS c",
                      suffix=f"_v{doomed}") == [{"c": 0}]
    assert await rows(driver, "MATCH (:Entity)-[r:RELATES]->() WHERE r.memory_id IN $ids RETURN count(r) AS c",
                      ids=[e.memory_id for e in events]) == [{"c": 0}]
    schema = [r["name"] for r in await rows(driver, "SHOW INDEXES YIELD name WHERE name STARTS WITH $p RETURN name",
                                            p=f"rs_v{doomed}_")]
    assert schema == []
    assert doomed not in await versions.versions()
    assert await versions.live_version() == live
    versions.made = [live]


async def test_a_graph_written_before_versions_is_adopted_as_version_1(driver, monkeypatch):
    """The real adoption relabels the contract labels and drops the old constraints, which
    are shared: here the same code runs on labels and schema names of the test's own."""
    tag = uuid.uuid4().hex[:8]
    projection, memory, entity = f"neo4j_test_{tag}", f"TestMemory{tag}", f"TestEntity{tag}"
    constraint, index = f"rs_test_{tag}_memory_id", f"rs_test_{tag}_entity_name"
    topic = TOPIC + "-legacy"
    assert Neo4jVersions(driver).legacy_labels == ("User", "Memory", "Entity", "AppliedEvent")
    assert {"rs_memory_id", "rs_projection_offset", "rs_memory_user"} <= set(Neo4jVersions(driver).legacy_schema)
    assert Neo4jVersions(driver, projection=projection).legacy_labels == ()  # never the shared ones
    assert Neo4jVersions(driver, projection=projection).legacy_schema == ()
    try:
        await driver.execute_query(f"CREATE CONSTRAINT {constraint} FOR (m:{memory}) REQUIRE m.id IS UNIQUE")
        await driver.execute_query(f"CREATE INDEX {index} FOR (e:{entity}) ON (e.name)")
        await driver.execute_query(
            f"FOREACH (i IN range(1, 5) | CREATE (:{memory} {{id: $tag + i}}))"
            f" CREATE (:{memory}:{memory}_v7 {{id: $tag + 'kept'}}) CREATE (:{entity} {{name: 'Ana'}})"
            " CREATE (:ProjectionOffset {projection: $p, topic: $t, partition: 0, offset: 5})"
            " CREATE (:ProjectionOffset {projection: $p + '-other', topic: $t, partition: 0, offset: 9})",
            tag=tag, p=projection, t=topic)
        monkeypatch.setattr(neo4j_versions, "_BATCH", 2)  # several transactions per label

        versions = Neo4jVersions(driver, projection=projection, legacy_labels=(memory, entity),
                                 legacy_schema=(constraint, index))
        follow = versions.projection()
        assert await follow.positions(topic) == {0: 5} and follow.version == 1  # adopted, then read as version 1
        assert await live_graph_version(driver, projection=projection) == 1

        found = await rows(driver, f"MATCH (n) WHERE n:{memory} OR n:{entity} RETURN labels(n) AS l")
        assert sorted(sorted(r["l"]) for r in found) == sorted(
            [[memory, f"{memory}_v1"]] * 5 + [[memory, f"{memory}_v7"], [entity, f"{entity}_v1"]])
        offsets = await rows(driver, "MATCH (o:ProjectionOffset {topic: $t}) WHERE o.projection STARTS WITH $p"
                                     " RETURN o.projection AS p, labels(o) AS l", t=topic, p=projection)
        assert {r["p"]: sorted(r["l"]) for r in offsets} == {
            projection: ["ProjectionOffset", "ProjectionOffset_v1"], projection + "-other": ["ProjectionOffset"]}
        names = {r["name"] for r in await rows(driver, "SHOW INDEXES YIELD name RETURN name")}
        assert constraint not in names and index not in names
        assert 1 in await versions.versions()

        # Once there is a pointer, nothing is adopted again.
        await driver.execute_query(f"CREATE (:{memory} {{id: $tag + 'later'}})", tag=tag)
        assert await versions.live_version() == 1
        assert await rows(driver, f"MATCH (m:{memory} {{id: $id}}) RETURN labels(m) AS l", id=tag + "later") == [
            {"l": [memory]}]
    finally:
        await driver.execute_query(f"MATCH (n) WHERE n:{memory} OR n:{entity} DETACH DELETE n")
        await driver.execute_query("MATCH (o:ProjectionOffset {topic: $t}) WHERE o.projection STARTS WITH $p"
                                   " DETACH DELETE o", t=topic, p=projection)
        await forget_projection(driver, projection)
        await driver.execute_query(f"DROP CONSTRAINT {constraint} IF EXISTS")
        await driver.execute_query(f"DROP INDEX {index} IF EXISTS")


async def test_times_are_properties_of_the_memory_not_entities(projector, driver, user_id):
    """`date` entities become the memory's `times`; relations to them are left out; an update
    of the text replaces them (issue 23: times as properties)."""
    topic = TOPIC + "-times"
    create = created(user_id, "Caroline: I moved to Sweden 4 years ago, last Tues.")
    carried = created(user_id, "Ana met Bob on 8 May 2023.",
                      entities=[Entity("Ana", "person"), Entity("Bob", "person"), Entity("8 May 2023", "date")],
                      relations=[Relation("Ana", "met", "8 May 2023"), Relation("Ana", "met", "Bob")])
    await projector.apply_batch(topic, [Applied(0, 1, create), Applied(0, 2, carried)])
    assert await mentions(driver, create.memory_id) == {("Caroline", "person"), ("Sweden", "place")}
    assert await mentions(driver, carried.memory_id) == {("Ana", "person"), ("Bob", "person")}
    times = {r["id"]: r["times"] for r in await rows(driver, "MATCH (m:Memory_vN {user_id: $u}) RETURN m.id AS id, m.times AS times",
                                                      u=user_id)}
    assert times == {create.memory_id: ["4 years ago", "last Tues"], carried.memory_id: ["8 May 2023"]}
    assert sorted((r["source"], r["type"], r["target"]) for r in await relates(driver, user_id)) == [
        ("Ana", "met", "Bob"), ("Caroline", "lives_in", "Sweden")]
    assert not await rows(driver, "MATCH (e:Entity_vN {user_id: $u}) WHERE e.type = 'date' RETURN e", u=user_id)

    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=create.memory_id,
                           text="Caroline: I moved to Oslo yesterday.", occurred_at=T0 + timedelta(days=1))
    await projector.apply_batch(topic, [Applied(0, 3, update)])
    [memory] = await rows(driver, "MATCH (m:Memory_vN {id: $id}) RETURN m.times AS times", id=create.memory_id)
    assert memory["times"] == ["yesterday"]
