"""Neo4jReadModel against the real Neo4j: the graph retrieval source, the user's graph and
the positions, read from the live version of a projection of the test's own.

Like tests/integration/test_neo4j_projector.py, everything is written by the real
Neo4jProjector into a version numbered 1000..9999 under a projection name of its own
(its own live pointer), and dropped afterwards. Every test uses its own user id."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import neo4j
import pytest

from adapters import neo4j_read_model
from adapters.neo4j_read_model import (EXACT_WEIGHT, NEO4J_UNAVAILABLE, WORD_WEIGHT, Neo4jReadModel, match_patterns,
                                       versioned)
from domain.events import Entity, MemoryCreated, MemoryDeleted, MemoryUpdated, Relation
from projectors.applied import Applied
from projectors.neo4j_versions import Neo4jVersions
from tests.integration.test_neo4j_projector import (T0, consolidated, created, forget_projection, forgotten,  # noqa: F401
                                                     restored, versions_apart)

pytestmark = pytest.mark.integration

VERSION = random.randrange(1000, 10000)
PROJECTION = f"neo4j_test_{uuid.uuid4().hex[:8]}"
TOPIC = f"test-topic-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def live_version(settings):
    """VERSION made the live version of PROJECTION for the module; dropped afterwards."""
    async with neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri,
                                               auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        versions = Neo4jVersions(driver, projection=PROJECTION)
        await versions.create_version(VERSION)
        try:
            await versions.live_version()  # the pointer (version 1: nothing of this projection in it)
            assert await versions.switch(VERSION, TOPIC)
            yield VERSION
        finally:
            await driver.execute_query("MATCH (p:ReadModelLive {projection: $p}) DELETE p", p=PROJECTION)
            await versions.drop(VERSION)
            await forget_projection(driver, PROJECTION)


@pytest.fixture
async def graph(driver, live_version):
    """(apply, read model): `apply(*events)` writes them through the live projector at the next offsets."""
    projector = Neo4jVersions(driver, projection=PROJECTION).projection()
    await projector.positions(TOPIC)  # follows the live version
    assert projector.version == live_version
    partition = random.randrange(1000)  # offsets of this test's own

    async def apply(*events) -> None:
        start = (await projector.positions(TOPIC)).get(partition, -1) + 1
        await projector.apply_batch(TOPIC, [Applied(partition, start + i, e) for i, e in enumerate(events)])

    return apply, Neo4jReadModel(driver, projection=PROJECTION, live_ttl=0)


def memory(user_id: str, text: str, names: list[tuple[str, str]], relations=(), *, minutes: int = 0,
           **scope) -> MemoryCreated:
    """A create carrying its own entities and relations (names: (name, type)); `minutes`
    after T0 is when it happened (the tie-breaker)."""
    return created(user_id, text, at=T0 + timedelta(days=1, minutes=minutes),
                   entities=[Entity(n, t) for n, t in names], relations=[Relation(*r) for r in relations], **scope)


def ids(hits: list[tuple[str, float]]) -> list[str]:
    return [memory_id for memory_id, _ in hits]


# --- the graph retrieval source ------------------------------------------------------------


async def test_a_named_entity_finds_the_memories_that_mention_it_whatever_the_case(graph, user_id):
    apply, read = graph
    ana = memory(user_id, "Ana Lopes works at Acme Corp.", [("Ana Lopes", "person"), ("Acme Corp", "organization")],
                 [("Ana Lopes", "works_at", "Acme Corp")])
    bob = memory(user_id, "Bob uses Vim.", [("Bob", "person"), ("Vim", "product")], [("Bob", "uses", "Vim")])
    await apply(ana, bob)

    for names in (["Ana Lopes"], ["ana lopes"], ["ANA  LOPES "], ["nobody", "aNa LoPeS"]):
        assert await read.memories_for_entities(user_id, names, hops=0) == [(ana.memory_id, EXACT_WEIGHT)], names
    assert await read.memories_for_entities(user_id, ["vim"], hops=0) == [(bob.memory_id, EXACT_WEIGHT)]
    assert await read.memories_for_entities(user_id, ["Vim", "Bob"], hops=0) == [(bob.memory_id, 2 * EXACT_WEIGHT)]
    assert await read.memories_for_entities(user_id, ["Carol"]) == []
    assert await read.memories_for_entities(user_id, []) == []
    assert await read.memories_for_entities(user_id, ["", "  "]) == []


async def test_a_name_matches_as_a_whole_word_either_way_from_three_characters(graph, user_id):
    apply, read = graph
    lopes = memory(user_id, "Ana Lopes plays chess.", [("Ana Lopes", "person")], minutes=1)
    silva = memory(user_id, "Maria Ana Silva plays go.", [("Maria Ana Silva", "person")], minutes=2)
    anabel = memory(user_id, "Anabel plays poker.", [("Anabel", "person")], minutes=3)
    ed = memory(user_id, "Ed plays bridge.", [("Ed", "person")], minutes=4)
    await apply(lopes, silva, anabel, ed)

    async def found(*names: str) -> list[tuple[str, float]]:
        return await read.memories_for_entities(user_id, list(names), hops=0)

    # The entity's name contains the query name as a word: first, middle or last.
    assert await found("ana") == [(silva.memory_id, WORD_WEIGHT), (lopes.memory_id, WORD_WEIGHT)]  # newest first
    assert await found("LOPES") == [(lopes.memory_id, WORD_WEIGHT)]
    assert await found("silva") == [(silva.memory_id, WORD_WEIGHT)]
    assert await found("maria ana") == await found("Ana Silva") == [(silva.memory_id, WORD_WEIGHT)]
    # The query name contains the entity's name as a word.
    assert await found("Anabel Smith") == [(anabel.memory_id, WORD_WEIGHT)]
    assert await found("Dr Ana Lopes PhD") == [(lopes.memory_id, WORD_WEIGHT)]
    # Not a whole word, or too short to match inside another name; an exact short name still does.
    for names in (["Anab"], ["Lope"], ["na"], ["Ed Smith"], ["a"], ["Maria Silva"], ["Lopes Ana"]):
        assert ids(await found(*names)) == [], names
    assert await found("ed") == [(ed.memory_id, EXACT_WEIGHT)]
    # An exact match weighs more than a word match.
    exact = memory(user_id, "Ana plays tennis.", [("Ana", "person")], minutes=0)
    await apply(exact)
    assert (await found("Ana"))[0] == (exact.memory_id, EXACT_WEIGHT)


async def test_neighbours_one_and_two_hops_away_count_less_than_direct_mentions(graph, user_id):
    apply, read = graph
    works = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                   [("Ana", "works_at", "Acme")], minutes=1)
    acquired = memory(user_id, "Acme acquired Globex.", [("Acme", "organization"), ("Globex", "organization")],
                      [("Acme", "acquired", "Globex")], minutes=2)
    rockets = memory(user_id, "Acme ships rockets.", [("Acme", "organization")], minutes=3)  # 1 hop from Ana
    widgets = memory(user_id, "Globex makes widgets.", [("Globex", "organization")], minutes=4)  # 2 hops
    tea = memory(user_id, "Ana likes tea.", [("Ana", "person")], minutes=5)
    unrelated = memory(user_id, "Zed uses Vim.", [("Zed", "person"), ("Vim", "product")], [("Zed", "uses", "Vim")])
    await apply(works, acquired, rockets, widgets, tea, unrelated)

    two = await read.memories_for_entities(user_id, ["ana"], hops=2)
    assert ids(two) == [works.memory_id, tea.memory_id, acquired.memory_id, rockets.memory_id, widgets.memory_id]
    assert [score for _, score in two] == pytest.approx([1 + 1 / 2, 1, 1 / 2 + 1 / 3, 1 / 2, 1 / 3])

    one = await read.memories_for_entities(user_id, ["ana"], hops=1)  # Globex is not reached
    assert ids(one) == [works.memory_id, tea.memory_id, rockets.memory_id, acquired.memory_id]  # a tie: newest first
    assert [score for _, score in one] == pytest.approx([1.5, 1, 0.5, 0.5])

    assert await read.memories_for_entities(user_id, ["ana"], hops=0) == [(tea.memory_id, 1.0), (works.memory_id, 1.0)]
    assert ids(await read.memories_for_entities(user_id, ["ana"], hops=2, limit=2)) == [works.memory_id, tea.memory_id]
    assert ids(await read.memories_for_entities(user_id, ["ana"], hops=99)) == ids(two)  # at most MAX_HOPS
    # From the other end: Globex reaches Ana in two hops.
    assert ids(await read.memories_for_entities(user_id, ["Globex"], hops=2)) == [
        acquired.memory_id, widgets.memory_id, works.memory_id, rockets.memory_id, tea.memory_id]


async def test_deleted_memories_and_closed_relations_are_left_out(graph, user_id):
    apply, read = graph
    works = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                   [("Ana", "works_at", "Acme")], minutes=1)
    rockets = memory(user_id, "Acme ships rockets.", [("Acme", "organization")], minutes=2)
    bob = memory(user_id, "Bob works at Initech.", [("Bob", "person"), ("Initech", "organization")],
                 [("Bob", "works_at", "Initech")], minutes=3)
    staplers = memory(user_id, "Initech sells staplers.", [("Initech", "organization")], minutes=4)
    await apply(works, rockets, bob, staplers)
    assert ids(await read.memories_for_entities(user_id, ["Ana"])) == [works.memory_id, rockets.memory_id]
    assert ids(await read.memories_for_entities(user_id, ["Bob"])) == [bob.memory_id, staplers.memory_id]

    # Deleted: the memory is gone and its relation closed, so Acme is no longer Ana's neighbour.
    await apply(MemoryDeleted(user_id=user_id, actor="user:x", memory_id=works.memory_id,
                              occurred_at=T0 + timedelta(days=2)))
    assert await read.memories_for_entities(user_id, ["Ana"]) == []
    assert ids(await read.memories_for_entities(user_id, ["Acme"])) == [rockets.memory_id]
    # A new text closes the old relation: Initech is no longer Bob's neighbour.
    await apply(MemoryUpdated(user_id=user_id, actor="user:x", memory_id=bob.memory_id, text="Bob works at Globex.",
                              occurred_at=T0 + timedelta(days=2)))
    assert ids(await read.memories_for_entities(user_id, ["Bob"])) == [bob.memory_id]
    assert ids(await read.memories_for_entities(user_id, ["Initech"])) == [staplers.memory_id]

    # Archived (a consolidation's source) only when asked for.
    await apply(consolidated(user_id, "Shipping news.", [rockets], at=T0 + timedelta(days=3)))
    assert await read.memories_for_entities(user_id, ["Acme"]) == []
    assert ids(await read.memories_for_entities(user_id, ["Acme"], include_archived=True)) == [rockets.memory_id]


async def test_a_consolidated_summary_is_found_and_its_sources_only_with_include_archived(graph, user_id):
    apply, read = graph
    works = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                   [("Ana", "works_at", "Acme")], minutes=1)
    jazz = memory(user_id, "Ana likes Jazz.", [("Ana", "person"), ("Jazz", "genre")], [("Ana", "likes", "Jazz")],
                  minutes=2)
    summary = consolidated(user_id, "Ana works at Acme and likes Jazz.", [works, jazz], at=T0 + timedelta(days=3),
                           happened_at=T0 + timedelta(days=1),
                           entities=[Entity("Ana", "person"), Entity("Acme", "organization"), Entity("Jazz", "genre")],
                           relations=[Relation("Ana", "works_at", "Acme"), Relation("Ana", "likes", "Jazz")])
    await apply(works, jazz)
    assert ids(await read.memories_for_entities(user_id, ["Ana"])) == [jazz.memory_id, works.memory_id]
    await apply(summary)
    assert ids(await read.memories_for_entities(user_id, ["Ana"])) == [summary.memory_id]
    assert ids(await read.memories_for_entities(user_id, ["Jazz"], hops=1)) == [summary.memory_id]
    assert ids(await read.memories_for_entities(user_id, ["Ana"], include_archived=True)) == [
        summary.memory_id, jazz.memory_id, works.memory_id]  # a tie: the newest occurred_at first
    await apply(summary)  # redelivered at a later offset: nothing changes
    assert ids(await read.memories_for_entities(user_id, ["Ana"], include_archived=True)) == [
        summary.memory_id, jazz.memory_id, works.memory_id]
    # The sources' relations still hold (history): the graph lists them.
    assert {r["memory_id"] for r in (await read.user_graph(user_id))["relations"]} == {
        works.memory_id, jazz.memory_id, summary.memory_id}


async def test_a_forgotten_memory_and_its_relations_are_hidden_until_restored(graph, user_id):
    apply, read = graph
    works = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                   [("Ana", "works_at", "Acme")], minutes=1)
    rockets = memory(user_id, "Acme ships rockets.", [("Acme", "organization")], minutes=2)
    await apply(works, rockets)
    assert ids(await read.memories_for_entities(user_id, ["Ana"])) == [works.memory_id, rockets.memory_id]

    forget = forgotten(works, T0 + timedelta(days=3))
    await apply(forget)
    # Hidden everywhere, archived or not; its relation (not closed) is not followed: Acme is out of reach.
    for include_archived in (False, True):
        assert await read.memories_for_entities(user_id, ["Ana"], include_archived=include_archived) == []
    assert await read.memories_for_entities(user_id, ["Ana"], valid_at=T0 + timedelta(days=2)) == []
    assert ids(await read.memories_for_entities(user_id, ["Acme"])) == [rockets.memory_id]
    assert (await read.user_graph(user_id))["relations"] == []
    assert [r["memory_id"] for r in (await read.user_graph(user_id, include_closed=True))["relations"]] == [
        works.memory_id]
    await apply(forget)  # redelivered
    assert await read.memories_for_entities(user_id, ["Ana"]) == []

    restore = restored(works, T0 + timedelta(days=4))
    await apply(restore, restore)
    assert ids(await read.memories_for_entities(user_id, ["Ana"])) == [works.memory_id, rockets.memory_id]
    assert [r["memory_id"] for r in (await read.user_graph(user_id))["relations"]] == [works.memory_id]


async def test_a_past_time_follows_the_relations_that_held_then(graph, user_id):
    """An update contradicting an old fact closes its relation; a question about a time
    before the update still follows it, a question about now follows the new one."""
    apply, read = graph
    works = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                   [("Ana", "works_at", "Acme")], minutes=1)  # happened at T0 + 1 min: the relation's valid_from
    rockets = memory(user_id, "Acme ships rockets.", [("Acme", "organization")], minutes=2)
    widgets = memory(user_id, "Globex makes widgets.", [("Globex", "organization")], minutes=3)
    await apply(works, rockets, widgets)
    moved = T0 + timedelta(days=30)
    await apply(MemoryUpdated(user_id=user_id, actor="user:x", memory_id=works.memory_id,
                              text="Ana works at Globex.", occurred_at=moved))

    async def found(**kwargs) -> list[str]:
        return ids(await read.memories_for_entities(user_id, ["Ana"], hops=1, **kwargs))

    assert await found() == [works.memory_id, widgets.memory_id]  # now: Globex
    assert await found(valid_at=moved + timedelta(days=1)) == [works.memory_id, widgets.memory_id]
    assert await found(valid_at=moved) == [works.memory_id, widgets.memory_id]  # closed at `moved`: not then
    assert await found(valid_at=moved - timedelta(seconds=1)) == [works.memory_id, rockets.memory_id]  # Acme
    assert await found(valid_at=T0 + timedelta(days=10)) == [works.memory_id, rockets.memory_id]
    assert await found(valid_at=T0) == [works.memory_id]  # before either relation held
    # A window: what held at any moment of it.
    assert set(await found(valid_at=(T0 + timedelta(days=10), moved + timedelta(days=1)))) == {
        works.memory_id, rockets.memory_id, widgets.memory_id}
    assert await found(valid_at=(T0 + timedelta(days=10), moved)) == [works.memory_id, rockets.memory_id]
    assert await found(valid_at=(moved, moved + timedelta(days=1))) == [works.memory_id, widgets.memory_id]
    # A deleted memory's relations are not followed at any time (deleting is not "until then").
    await apply(MemoryDeleted(user_id=user_id, actor="user:x", memory_id=works.memory_id,
                              occurred_at=moved + timedelta(days=2)))
    assert ids(await read.memories_for_entities(user_id, ["Acme"], hops=1, valid_at=T0 + timedelta(days=10))) == [
        rockets.memory_id]
    for bad in (datetime(2024, 1, 1), (T0, T0 - timedelta(days=1)), "2024-01-01", (T0,)):
        with pytest.raises(ValueError):
            await read.memories_for_entities(user_id, ["Ana"], valid_at=bad)
    assert await read.memories_for_entities(user_id, ["Ana"], valid_at=datetime(2024, 1, 2, tzinfo=timezone.utc)) == []


async def test_scope_fields_must_match_the_memory(graph, user_id):
    apply, read = graph
    ide = memory(user_id, "Ana uses Rust.", [("Ana", "person"), ("Rust", "product")], [("Ana", "uses", "Rust")],
                 minutes=1, agent_id="ide", run_id="r1", app_id="a")
    cli = memory(user_id, "Ana uses Vim.", [("Ana", "person"), ("Vim", "product")], [("Ana", "uses", "Vim")],
                 minutes=2, agent_id="cli", run_id="r2", app_id="a")
    rust = memory(user_id, "Rust is fast.", [("Rust", "product")], minutes=3, agent_id="cli")
    plain = memory(user_id, "Ana likes tea.", [("Ana", "person")], minutes=4)
    await apply(ide, cli, rust, plain)

    async def found(scope):
        return set(ids(await read.memories_for_entities(user_id, ["Ana"], hops=2, scope=scope)))

    everything = {ide.memory_id, cli.memory_id, rust.memory_id, plain.memory_id}
    assert await found(None) == everything
    assert await found({}) == everything
    assert await found({"agent_id": None, "run_id": None}) == everything
    assert await found({"agent_id": "ide"}) == {ide.memory_id}
    assert await found({"agent_id": "cli"}) == {cli.memory_id, rust.memory_id}  # a neighbour's memory of the scope too
    assert await found({"run_id": "r2"}) == {cli.memory_id}
    assert await found({"app_id": "a"}) == {ide.memory_id, cli.memory_id}
    assert await found({"agent_id": "ide", "run_id": "r2"}) == set()
    assert await found({"app_id": "b"}) == set()
    with pytest.raises(ValueError, match="user_id"):
        await read.memories_for_entities(user_id, ["Ana"], scope={"user_id": "someone-else"})


async def test_other_users_graphs_never_leak(graph, user_id):
    apply, read = graph
    other = user_id + "-other"
    mine = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                  [("Ana", "works_at", "Acme")])
    theirs = memory(other, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                    [("Ana", "works_at", "Acme")])
    # The other user's Acme is related to more, and mentioned more.
    their_more = [memory(other, "Acme acquired Globex.", [("Acme", "organization"), ("Globex", "organization")],
                         [("Acme", "acquired", "Globex")]),
                  memory(other, "Globex makes widgets.", [("Globex", "organization")]),
                  memory(other, "Anabel Ana Smith met Ana.", [("Ana", "person"), ("Anabel Ana Smith", "person")])]
    await apply(mine, theirs, *their_more)

    for names in (["Ana"], ["Acme"], ["Globex"], ["ana smith"], ["Anabel Ana Smith"]):
        found = set(ids(await read.memories_for_entities(user_id, names, hops=3)))
        assert found <= {mine.memory_id}, names
    assert ids(await read.memories_for_entities(user_id, ["Globex"], hops=3)) == []
    assert len(await read.memories_for_entities(other, ["Ana"], hops=3)) == 4
    graph_of_mine = await read.user_graph(user_id)
    assert {e["name"] for e in graph_of_mine["entities"]} == {"Ana", "Acme"}
    assert [r["memory_id"] for r in graph_of_mine["relations"]] == [mine.memory_id]
    assert await read.user_graph(user_id + "-nobody") == {"entities": [], "relations": [], "co_mentions": []}
    assert await read.memories_for_entities(user_id + "-nobody", ["Ana"]) == []


async def test_a_hub_entity_expands_at_most_per_node_relations(graph, user_id, monkeypatch):
    apply, read = graph
    hub = memory(user_id, "Ana knows many.", [("Ana", "person")] + [(f"Friend {i}", "person") for i in range(6)],
                 [("Ana", "knows", f"Friend {i}") for i in range(6)], minutes=10)
    friends = [memory(user_id, f"Friend {i} cooks.", [(f"Friend {i}", "person")], minutes=i) for i in range(6)]
    await apply(hub, *friends)
    assert len(await read.memories_for_entities(user_id, ["Ana"], hops=1)) == 7
    monkeypatch.setattr(neo4j_read_model, "PER_NODE", 2)
    bounded = await read.memories_for_entities(user_id, ["Ana"], hops=1)
    assert ids(bounded)[0] == hub.memory_id and len(bounded) == 3  # the hub's memory and two neighbours'
    monkeypatch.setattr(neo4j_read_model, "PER_NODE", 100)
    monkeypatch.setattr(neo4j_read_model, "NEIGHBOUR_MENTIONS", 4)  # 12 MENTIONS of neighbours: 4 read
    capped = await read.memories_for_entities(user_id, ["Ana"], hops=1)
    assert ids(capped)[0] == hub.memory_id and 2 <= len(capped) <= 5


async def test_input_is_only_ever_a_parameter(graph, user_id, driver):
    apply, read = graph
    ana = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                 [("Ana", "works_at", "Acme")])
    await apply(ana)
    hostile = ["x'}) MATCH (n) DETACH DELETE n //", 'Ana"}) RETURN 1 //', "Ana|person", "ana|", "`Memory_v1`", "\\"]
    assert await read.memories_for_entities(user_id + "' OR 1=1 //", ["Ana"]) == []
    assert await read.memories_for_entities(user_id, hostile) == []
    assert await read.memories_for_entities(user_id, ["Ana"], hops=0) == [(ana.memory_id, 1.0)]  # all still there
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ValueError):
            await read.memories_for_entities(user_id, ["Ana"], hops=bad)
    for bad in (0, -5, "10", None):
        with pytest.raises(ValueError):
            await read.memories_for_entities(user_id, ["Ana"], limit=bad)
        with pytest.raises(ValueError):
            await read.user_graph(user_id, limit=bad)
    with pytest.raises(TypeError):
        await read.memories_for_entities(user_id, "Ana")


def test_match_patterns():
    prefixes, infixes = match_patterns(["  Ana   LOPES ", "AI", "ana lopes"])
    assert {p["prefix"]: p["weight"] for p in prefixes} == {
        "ana lopes|": EXACT_WEIGHT, "ana lopes ": WORD_WEIGHT, "ana|": WORD_WEIGHT, "lopes|": WORD_WEIGHT,
        "ai|": EXACT_WEIGHT}
    assert infixes == [" ana lopes ", " ana lopes|"]


def test_the_version_helpers_name_versioned_labels():
    assert neo4j_read_model.labels(4)["Memory"] == "Memory_v4"
    assert neo4j_read_model.versioned("MATCH (m:Memory_vN)", 4) == "MATCH (m:Memory_v4)"
    with pytest.raises(ValueError):
        neo4j_read_model.check_version(0)


# --- the user's graph ------------------------------------------------------------------------


async def test_user_graph_lists_entities_by_mentions_and_the_relations_that_hold(graph, user_id):
    apply, read = graph
    works = memory(user_id, "Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")],
                   [("Ana", "works_at", "Acme")], minutes=1)
    uses = memory(user_id, "Ana uses Rust.", [("Ana", "person"), ("Rust", "product")], [("Ana", "uses", "Rust")],
                  minutes=2)
    bob = memory(user_id, "Bob uses Rust.", [("Bob", "person"), ("Rust", "product")], [("Bob", "uses", "Rust")],
                 minutes=3)
    gone = memory(user_id, "Carol lives in Oslo.", [("Carol", "person"), ("Oslo", "place")],
                  [("Carol", "lives_in", "Oslo")], minutes=4)
    deleted_at = T0 + timedelta(days=3)
    await apply(works, uses, bob, gone, MemoryDeleted(user_id=user_id, actor="user:x", memory_id=gone.memory_id,
                                                      occurred_at=deleted_at))

    result = await read.user_graph(user_id)
    assert result["entities"] == [
        {"name": "Ana", "type": "person", "mentions": 2}, {"name": "Rust", "type": "product", "mentions": 2},
        {"name": "Acme", "type": "organization", "mentions": 1}, {"name": "Bob", "type": "person", "mentions": 1}]
    happened = {m.memory_id: m.happened_at for m in (works, uses, bob, gone)}
    assert result["relations"] == [  # newest first
        {"source": "Bob", "target": "Rust", "type": "uses", "memory_id": bob.memory_id,
         "valid_from": happened[bob.memory_id].isoformat(), "valid_to": None},
        {"source": "Ana", "target": "Rust", "type": "uses", "memory_id": uses.memory_id,
         "valid_from": happened[uses.memory_id].isoformat(), "valid_to": None},
        {"source": "Ana", "target": "Acme", "type": "works_at", "memory_id": works.memory_id,
         "valid_from": happened[works.memory_id].isoformat(), "valid_to": None},
    ]
    for relation in result["relations"]:
        assert datetime.fromisoformat(relation["valid_from"]).utcoffset() is not None
    # Co-mentions: one per pair named together, weighted by the memories that did (the deleted
    # memory's pair stays counted: MENTIONS stay too), heaviest first.
    assert result["co_mentions"] == [
        {"source": "Acme", "source_type": "organization", "target": "Ana", "target_type": "person", "weight": 1},
        {"source": "Ana", "source_type": "person", "target": "Rust", "target_type": "product", "weight": 1},
        {"source": "Bob", "source_type": "person", "target": "Rust", "target_type": "product", "weight": 1},
    ]
    await apply(memory(user_id, "Ana and Bob both use Rust.", [("Ana", "person"), ("Bob", "person"), ("Rust", "product")],
                       [], minutes=5))
    assert [(c["source"], c["target"], c["weight"]) for c in (await read.user_graph(user_id))["co_mentions"]] == [
        ("Ana", "Rust", 2), ("Bob", "Rust", 2), ("Acme", "Ana", 1), ("Ana", "Bob", 1)]

    closed = await read.user_graph(user_id, include_closed=True)
    assert {"name": "Carol", "type": "person", "mentions": 0} in closed["entities"]
    assert closed["relations"][0] == {
        "source": "Carol", "target": "Oslo", "type": "lives_in", "memory_id": gone.memory_id,
        "valid_from": happened[gone.memory_id].isoformat(), "valid_to": deleted_at.isoformat()}
    assert len(closed["relations"]) == 4

    top = await read.user_graph(user_id, limit=2)
    assert [e["name"] for e in top["entities"]] == ["Ana", "Rust"]
    assert [(r["source"], r["target"]) for r in top["relations"]] == [("Ana", "Rust")]  # only between those listed
    assert [e["name"] for e in (await read.user_graph(user_id, limit=1))["entities"]] == ["Ana"]


async def test_warming_the_graph_source_up_reads_real_seeds_most_mentioned_first(graph, user_id, caplog):
    import bootstrap

    apply, read = graph
    await apply(*(memory(user_id, f"Zoltan Hubert fixed bug {i}.", [("Zoltan Hubert", "person")], minutes=i)
                  for i in range(3)),
                memory(user_id, "Quentin Leafy read a book.", [("Quentin Leafy", "person")], minutes=4))
    sample = await read.sample_entities(limit=100)
    ours = [name for user, name in sample if user == user_id]
    assert ours == ["Zoltan Hubert", "Quentin Leafy"]
    with pytest.raises(ValueError):
        await read.sample_entities(limit=0)

    with caplog.at_level("INFO", logger="recallstack"):
        await bootstrap._warm_graph(read, rounds=2, pause_s=0)
    assert f"on {min(len(sample), 20)} seeds x 2 rounds" in caplog.text, caplog.text  # 20: its default sample


# --- positions, readiness, outage ---------------------------------------------------------


async def test_positions_are_the_live_versions_offsets(graph, driver, user_id):
    apply, read = graph
    projector = Neo4jVersions(driver, projection=PROJECTION).projection()
    topic = TOPIC + "-positions"
    assert await read.positions(topic) == {}
    await projector.apply_batch(topic, [Applied(0, 4, memory(user_id, "Ana likes tea.", [("Ana", "person")])),
                                        Applied(2, 9, None)])
    assert await read.positions(topic) == {0: 4, 2: 9}
    await projector.apply_batch(topic, [Applied(0, 7, None)])
    assert await read.positions(topic) == {0: 7, 2: 9}
    assert await read.version() == VERSION


async def test_reads_follow_a_switch_of_the_live_version(driver, user_id, versions_apart):
    """A projection of its own (the module's pointer stays): readers move with the pointer."""
    versions = Neo4jVersions(driver, projection=f"neo4j_test_{uuid.uuid4().hex[:8]}")
    old, new = random.sample([v for v in range(1000, 10000) if v != VERSION], 2)
    topic = TOPIC + "-switch"
    try:
        for version in (old, new):
            await versions.create_version(version)
        await versions.live_version()
        assert await versions.switch(old, topic)
        first = memory(user_id, "Ana likes tea.", [("Ana", "person")])
        second = memory(user_id, "Ana likes coffee.", [("Ana", "person")], minutes=1)
        await versions.projection(old).apply_batch(topic, [Applied(0, 0, first)])
        await versions.projection(new).apply_batch(topic, [Applied(0, 0, first), Applied(0, 1, second)])

        fresh = Neo4jReadModel(driver, projection=versions.name, live_ttl=0)
        cached = Neo4jReadModel(driver, projection=versions.name, live_ttl=3600)
        for read in (fresh, cached):
            assert await read.positions(topic) == {0: 0}
            assert ids(await read.memories_for_entities(user_id, ["Ana"])) == [first.memory_id]
        assert await versions.switch(new, topic)
        assert await fresh.positions(topic) == {0: 1}
        assert ids(await fresh.memories_for_entities(user_id, ["Ana"])) == [second.memory_id, first.memory_id]
        assert [e["mentions"] for e in (await fresh.user_graph(user_id))["entities"]] == [2]
        assert await cached.version() == old  # until its live_ttl has passed
    finally:
        await driver.execute_query("MATCH (p:ReadModelLive {projection: $p}) DELETE p", p=versions.name)
        for version in (old, new):
            await versions.drop(version)
        await forget_projection(driver, versions.name)


async def test_check_and_an_unreachable_neo4j(driver, settings):
    await Neo4jReadModel(driver).check()
    assert {neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired, OSError} <= set(NEO4J_UNAVAILABLE)
    async with neo4j.AsyncGraphDatabase.driver("bolt://127.0.0.1:1", auth=(settings.neo4j_user, "x"),
                                               connection_timeout=2) as nowhere:
        read = Neo4jReadModel(nowhere)
        with pytest.raises(NEO4J_UNAVAILABLE):
            await read.check()
        with pytest.raises(NEO4J_UNAVAILABLE):
            await read.memories_for_entities("u", ["Ana"])
        with pytest.raises(NEO4J_UNAVAILABLE):
            await read.positions(TOPIC)

