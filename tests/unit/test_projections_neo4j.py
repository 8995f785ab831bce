"""Every event type's effect on the graph read model, through its projection
(projectors/neo4j_projection.py) into the in-memory double (projectors/in_memory_graph.py): no server."""

from __future__ import annotations

import uuid

from domain.events import ApiKeyIssued, ConversationReceived
from projectors.graph_rows import entity_key
from projectors.in_memory_graph import InMemoryGraph
from projectors.neo4j_projection import HANDLERS, project_events
from tests.unit.projection_events import (HAPPENED, T0, accessed, at, consolidated, created, deleted, erased,
                                          forgotten, new_user, restored, scope_deleted, updated)

ANA = entity_key("Ana", "person")
ACME = entity_key("Acme", "organization")


async def projected(*events, graph: InMemoryGraph | None = None) -> InMemoryGraph:
    graph = graph or InMemoryGraph()
    await project_events(graph, events)
    return graph


def works_at(user: str, minutes: int = 0, **fields):
    return created(user, "Ana works at Acme since May 2023", minutes, entities=[
        ("Ana", "person"), ("Acme", "organization"), ("May 2023", "date")],
        relations=[("Ana", "works_at", "Acme")], **fields)


def states(graph: InMemoryGraph) -> dict[str, str]:
    return {memory_id: memory["state"] for memory_id, memory in graph.memories.items()}


def open_relations(graph: InMemoryGraph) -> list[tuple[str, str, str]]:
    return [(r["source"], r["type"], r["target"]) for r in graph.relates if r["valid_to"] is None]


async def test_a_create_adds_the_memory_its_entities_relations_times_and_co_mentions_once():
    user = new_user()
    memory = works_at(user, agent_id="a1")
    graph = await projected(memory, memory)
    node = graph.memories[memory.memory_id]
    assert (node["state"], node["entity_source"], node["times"], node["agent_id"]) == (
        "active", "event", ["May 2023"], "a1")
    assert (node["created_at"], node["occurred_at"]) == (T0, HAPPENED)
    assert graph.entities == {(user, ANA): {"name": "Ana", "type": "person"},
                              (user, ACME): {"name": "Acme", "type": "organization"}}
    assert graph.mentions == {(memory.memory_id, user, ANA), (memory.memory_id, user, ACME)}
    assert open_relations(graph) == [(ANA, "works_at", ACME)]
    assert graph.relates[0]["valid_from"] == HAPPENED
    assert graph.co_mentions == {(user, min(ANA, ACME), max(ANA, ACME)): {"weight": 1, "first_at": T0,
                                                                          "last_at": T0}}
    assert graph.users == {user}


async def test_a_memory_without_entities_gets_the_extractors_and_co_mentions_add_up():
    user = new_user()
    first, second = works_at(user), works_at(user, 5)
    plain = created(user, "Ana met Bob in Paris.", 9)
    graph = await projected(first, second, plain)
    assert graph.memories[plain.memory_id]["entity_source"] == "extractor"
    assert {key for memory_id, _user, key in graph.mentions if memory_id == plain.memory_id} == {
        ANA, entity_key("Bob", "person"), entity_key("Paris", "place")}  # a well-known place
    pair = graph.co_mentions[(user, min(ANA, ACME), max(ANA, ACME))]
    assert (pair["weight"], pair["first_at"], pair["last_at"]) == (2, T0, at(5))


async def test_a_new_text_closes_the_old_relations_and_links_the_new_ones():
    user = new_user()
    memory = works_at(user)
    graph = await projected(memory, updated(memory, 1, text="Ana works at Globex."))
    node = graph.memories[memory.memory_id]
    assert (node["text"], node["entity_source"], node["updated_at"]) == ("Ana works at Globex.", "extractor", at(1))
    closed = [r for r in graph.relates if r["valid_to"] is not None]
    assert [(r["source"], r["target"], r["valid_to"]) for r in closed] == [(ANA, ACME, at(1))]
    assert (memory.memory_id, user, ACME) not in graph.mentions


async def test_a_metadata_update_or_someone_elses_leaves_the_graph():
    user = new_user()
    memory = works_at(user)
    stranger = updated(memory, 2, text="hijacked")
    stranger = type(stranger)(**{**stranger.__dict__, "user_id": "someone-else"})
    graph = await projected(memory, updated(memory, 1, metadata={"k": 1}),
                            updated(memory, 2, text=memory.text), stranger)
    assert graph.memories[memory.memory_id]["text"] == memory.text
    assert open_relations(graph) == [(ANA, "works_at", ACME)]
    assert graph.memories[memory.memory_id]["entity_source"] == "event"


async def test_deletes_mark_the_memory_and_close_its_relations():
    user = new_user()
    one, two, three = works_at(user), works_at(user, 1, agent_id="x"), works_at(user, 2, agent_id="y")
    graph = await projected(one, two, three, deleted(one, 3), scope_deleted(user, 4, agent_id="x"),
                            updated(one, 5, text="too late"))
    assert states(graph) == {one.memory_id: "deleted", two.memory_id: "deleted", three.memory_id: "active"}
    assert graph.memories[one.memory_id]["deleted_at"] == at(3) and graph.memories[one.memory_id]["text"] == one.text
    assert [r["memory_id"] for r in graph.relates if r["valid_to"] is None] == [three.memory_id]
    assert len(graph.mentions) == 6  # mentions stay, for audit


async def test_forget_and_restore_change_the_state_only():
    user = new_user()
    memory = works_at(user)
    graph = await projected(memory, forgotten(memory, 1))
    assert states(graph)[memory.memory_id] == "forgotten" and open_relations(graph)
    await projected(restored(memory, 2), graph=graph)
    assert states(graph)[memory.memory_id] == "active"
    await projected(deleted(memory, 3), restored(memory, 4), graph=graph)
    assert states(graph)[memory.memory_id] == "deleted"


async def test_a_new_summary_archives_its_sources_and_a_second_one_changes_nothing():
    user = new_user()
    a, b, c = works_at(user), created(user, "b", 1), created(user, "c", 2)
    summary = consolidated([a, b, c], "Ana works at Acme.", 5)
    graph = await projected(a, b, c, deleted(c, 3), forgotten(b, 4), summary)
    assert states(graph) == {a.memory_id: "archived", b.memory_id: "archived", c.memory_id: "deleted",
                             summary.memory_id: "active"}
    assert len(open_relations(graph)) == 2  # the source's relation stays open: history, not refuted
    again = type(summary)(**{**summary.__dict__, "event_id": str(uuid.uuid4())})
    await projected(restored(a, 6), again, graph=graph)
    assert states(graph)[a.memory_id] == "active"


async def test_an_erasure_removes_every_node_of_the_user():
    user, other = new_user(), new_user()
    mine, theirs = works_at(user), works_at(other)
    graph = await projected(mine, theirs, erased(user, 1), works_at(user, 2))
    assert {m["user_id"] for m in graph.memories.values()} == {other, user}
    assert len([m for m in graph.memories.values() if m["user_id"] == user]) == 1  # the new life only
    assert all(r["user_id"] == other for r in graph.relates[:1])
    await projected(erased(user, 3), graph=graph)
    assert graph.users == {other} and {k[0] for k in graph.entities} == {other}
    assert {k[0] for k in graph.co_mentions} == {other} and {r["user_id"] for r in graph.relates} == {other}


async def test_other_events_change_nothing():
    user = new_user()
    memory = works_at(user)
    graph = await projected(memory)
    others = [accessed(user, [memory], 1), ConversationReceived(user_id=user, actor="t", conversation_id="c",
                                                                messages=(), happened_at=T0),
              ApiKeyIssued(user_id=user, actor="t", key_id=str(uuid.uuid4()), prefix="p", key_hash="h", scopes=()),
              None]
    await projected(*others, graph=graph)
    assert graph.memories[memory.memory_id]["updated_at"] == T0
    assert not any(type(event) in HANDLERS for event in others)
