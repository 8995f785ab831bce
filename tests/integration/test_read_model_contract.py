"""One abstract suite for every read model: the same event sequences go through each read model's
projection into its in-memory double (projectors/in_memory_*.py) and into the real store (Postgres,
Redis, Neo4j, the sparse index, written by their projectors), and both must end in the same
observable state: the memories' states every read model shares, and everything else each one keeps
(rows and history, documents and sets, nodes and relationships, index documents).

Each test has a topic of its own (positions start afresh) and each real store a place of its own:
Postgres the live schema under fresh user ids, Redis a far version prefix, Neo4j a version and
projection name of its own, the sparse index a temporary directory.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import neo4j
import pytest
import redis.asyncio as aioredis

from adapters import sparse_layout, sparse_schema
from adapters.neo4j_read_model import versioned
from adapters.redis_read_model import prefix_of
from domain.events import (ApiKeyIssued, ApiKeyRevoked, CoreMemoryBlockAppended, CoreMemoryBlockCreated,
                           CoreMemoryBlockDeleted, CoreMemoryBlockReplaced, Event, MemoryShared, MemoryUnshared,
                           UserErased, UserProfileUpdated, UserRegistered)
from projectors.applied import Applied
from projectors.in_memory_graph import InMemoryGraph
from projectors.in_memory_pg import InMemoryPg
from projectors.in_memory_redis import InMemoryRedis
from projectors.in_memory_sparse import InMemorySparse
from projectors.neo4j_projection import HANDLERS as GRAPH_EVENTS
from projectors.neo4j_projection import project_events
from projectors.neo4j_versions import Neo4jVersions
from projectors.pg_projection import project_batch
from projectors.pg_projector import PgProjector
from projectors.redis_projection import project as project_redis
from projectors.redis_projector import RedisProjector
from projectors.sparse_projection import project as project_sparse
from projectors.sparse_projector import SparseProjector
from tests.unit.projection_events import (accessed, at, consolidated, created, deleted, erased, expired, forgotten,
                                          new_user, restored, scope_deleted, updated)

pytestmark = pytest.mark.integration

GRAPH_VERSION = random.randrange(10_000, 100_000)
GRAPH_PROJECTION = f"neo4j_contract_{uuid.uuid4().hex[:8]}"
AGAIN = "again"  # in a scenario's batches: the previous batch delivered once more, at the same offsets


# --- the scenarios: batches of events, and the state each memory must end in everywhere ---------------


@dataclass
class Scenario:
    users: list[str]
    batches: list = field(default_factory=list)  # lists of events, or AGAIN
    expected: dict[str, str | None] = field(default_factory=dict)  # memory id -> state (None: gone)


def lifecycle() -> Scenario:
    user = new_user()
    a = created(user, "Ana works at Acme since May 2023", entities=[("Ana", "person"), ("Acme", "organization"),
                                                                    ("May 2023", "date")],
                relations=[("Ana", "works_at", "Acme")], importance=0.5)
    b = created(user, "Bob uses Vim in Berlin.", 1, agent_id="x", metadata={"k": 1})
    c = created(user, "Cleo plays chess.", 2, run_id="r1")
    d = created(user, "Ana left Acme.", 3, entities=[("Ana", "person"), ("Acme", "organization")],
                relations=[("Ana", "left", "Acme")])  # a pair named twice: co-mention weight 2
    return Scenario([user], [
        [a, b, c, d],
        [updated(a, 3, text="Ana works at Globex."), updated(b, 4, metadata={"k": 2}, categories=("tools",)),
         deleted(c, 5), forgotten(b, 6), updated(d, 6, text="Ana left Acme for Initech.")],
        [restored(b, 7), scope_deleted(user, 8, agent_id="x"), updated(b, 9, text="too late"),
         deleted(d, 9)],  # its old relations stay closed when they were
    ], {a.memory_id: "active", b.memory_id: "deleted", c.memory_id: "deleted", d.memory_id: "deleted"})


def consolidation() -> Scenario:
    user = new_user()
    a, b, c, d = (created(user, text, n) for n, text in enumerate(
        ["Ana likes jazz.", "Ana loves jazz music.", "Ana hates jazz.", "Bob plays bass."]))
    summary = consolidated([a, b, c], "Ana likes jazz music.", 5)
    again = type(summary)(**{**summary.__dict__, "event_id": str(uuid.uuid4()), "occurred_at": summary.occurred_at})
    return Scenario([user], [
        [a, b, c, d, forgotten(b, 1), deleted(c, 2)],
        [summary],
        [restored(a, 6), again],
    ], {a.memory_id: "active", b.memory_id: "archived", c.memory_id: "deleted", d.memory_id: "active",
        summary.memory_id: "active"})


def erasure() -> Scenario:
    user, other = new_user(), new_user()
    x, y = created(user, "Ana met Bob in Paris."), created(user, "Ana runs.", 1)
    z = created(other, "Zoe met Ana in Paris.", 2)
    w = created(user, "A new life in Lisbon.", 9)
    share = MemoryShared(user_id=other, actor="t", memory_id=z.memory_id, grantee_user_id=user)
    return Scenario([user, other], [
        [UserRegistered(user_id=user, actor="t", display_name="Ana"), x, y, z, share, deleted(y, 3),
         accessed(user, [x], 4)],
        [erased(user, 5), w],
    ], {x.memory_id: None, y.memory_id: None, z.memory_id: "active", w.memory_id: "active"})


def redelivery() -> Scenario:
    user = new_user()
    a, b = created(user, "Ana sings."), created(user, "Bob swims.", 1)
    return Scenario([user], [
        [a, b, updated(a, 2, text="Ana sings opera.")],
        AGAIN,
        [accessed(user, [a, b], 3), updated(a, 4, text="Ana sings jazz."), forgotten(b, 5)],
        AGAIN,
    ], {a.memory_id: "active", b.memory_id: "forgotten"})


def identity() -> Scenario:
    user, friend = new_user(), new_user()
    memory = created(user, "Ana shares this.")
    key_id = str(uuid.uuid4())
    return Scenario([user, friend], [
        [UserRegistered(user_id=user, actor="t", display_name="Ana"), UserRegistered(user_id=user, actor="t",
                                                                                     is_admin=True),
         ApiKeyIssued(user_id=user, actor="t", key_id=key_id, prefix="rs_test", key_hash=uuid.uuid4().hex,
                      scopes=("admin",)),
         memory, MemoryShared(user_id=user, actor="t", memory_id=memory.memory_id, grantee_user_id=friend)],
        [ApiKeyRevoked(user_id=user, actor="t", key_id=key_id, reason="lost"),
         MemoryUnshared(user_id=user, actor="t", memory_id=memory.memory_id, grantee_user_id=friend),
         MemoryShared(user_id=user, actor="t", memory_id=memory.memory_id, grantee_user_id="someone")],
    ], {memory.memory_id: "active"})


def expiry() -> Scenario:
    """Expiry: created with one, moved, cleared, set again; MemoryExpired hides a memory as forgetting does
    (history row MemoryExpired), a restore brings it back."""
    user = new_user()
    a = created(user, "Ana is on call this week.", expires_at=at(60))
    b = created(user, "The sprint goal is search.", 1, expires_at=at(30))
    c = created(user, "Cleo never expires.", 2)
    return Scenario([user], [
        [a, b, c, updated(a, 3, expires_at=at(90)), updated(b, 4, expiry_cleared=True)],
        [updated(c, 5, expires_at=at(45), text="Cleo expires now."), expired(a, 91)],
        AGAIN,
        [restored(a, 92), updated(b, 93, expires_at=at(120)), expired(b, 121)],
    ], {a.memory_id: "active", b.memory_id: "forgotten", c.memory_id: "active"})


def profiles() -> Scenario:
    """UserProfileUpdated: Postgres keeps each user's newest version (a late or repeated older one
    changes nothing), UserErased removes it; every other read model only advances its position."""
    user, other = new_user(), new_user()
    a, b = created(user, "Ana prefers tea."), created(other, "Bob uses Vim.", 1)

    def profile(owner: str, version: int, memory: str, minutes: int) -> UserProfileUpdated:
        return UserProfileUpdated(user_id=owner, actor="worker:consolidate", version=version, builder="offline",
                                  built_from=f"t/0:{version}", memory_count=1, occurred_at=at(minutes),
                                  profile={"preferences": [{"text": f"v{version}", "memory_ids": [memory]}]})

    return Scenario([user, other], [
        [a, b, profile(user, 1, a.memory_id, 2), profile(other, 1, b.memory_id, 2)],
        [profile(user, 2, a.memory_id, 3), profile(user, 1, a.memory_id, 4)],
        AGAIN,
        [erased(user, 5)],
    ], {a.memory_id: None, b.memory_id: "active"})


def core_memory() -> Scenario:
    """Core memory blocks: edits in order, a conflicting one skipped on record, a delete, a redelivery,
    an erasure; only Postgres keeps blocks, the other read models take the events and change nothing."""
    user, other = new_user(), new_user()
    a = created(user, "Ana keeps a persona block.")
    env = dict(user_id=user, actor="t", correlation_id="c")
    made = CoreMemoryBlockCreated(**env, label="persona", value="I help Ana.", limit_tokens=50)
    return Scenario([user, other], [
        [a, made, CoreMemoryBlockAppended(**env, label="persona", content="Be brief.", version=2),
         CoreMemoryBlockCreated(user_id=other, actor="t", label="human", value="Bob", limit_tokens=40,
                                agent_id="cursor")],
        AGAIN,
        [CoreMemoryBlockReplaced(**env, label="persona", old_content="brief", new_content="terse", version=3),
         CoreMemoryBlockAppended(**env, label="persona", content="raced", version=3),
         CoreMemoryBlockCreated(**env, label="scratch", value="x", limit_tokens=20),
         CoreMemoryBlockDeleted(**env, label="scratch", version=2)],
        [erased(other, 9)],
    ], {a.memory_id: "active"})


SCENARIOS: dict[str, Callable[[], Scenario]] = {f.__name__: f for f in (lifecycle, consolidation, erasure,
                                                                         redelivery, identity, profiles, expiry,
                                                                         core_memory)}


def deliveries(scenario: Scenario) -> list[list[Applied]]:
    """The batches as one partition's records, offsets running on (AGAIN: the last batch again)."""
    out: list[list[Applied]] = []
    offset = 0
    for batch in scenario.batches:
        if batch == AGAIN:
            out.append(out[-1])
            continue
        out.append([Applied(0, offset + n, event) for n, event in enumerate(batch)])
        offset += len(batch)
    return out


# --- one harness per read model: apply, then observe; `states` is what every read model shares -----


def _iso_free(value):
    return value.to_native() if hasattr(value, "to_native") else value


class PgHarness:
    memory_fields = ("user_id", "agent_id", "run_id", "app_id", "text", "embedding_model", "metadata", "categories",
                     "importance", "state", "version", "created_at", "updated_at", "occurred_at", "last_event_id",
                     "access_count", "last_accessed_at", "expires_at")
    history_fields = ("user_id", "event_type", "actor", "correlation_id", "occurred_at", "log_partition",
                      "log_offset", "old_text", "new_text", "old_metadata", "new_metadata", "reason")
    profile_fields = ("user_id", "version", "profile", "builder", "built_from", "memory_count", "updated_at",
                      "last_event_id")
    core_block_fields = ("user_id", "agent_id", "label", "value", "limit_tokens", "description", "version",
                         "created_at", "updated_at", "last_event_id")
    core_history_fields = ("event_id", "user_id", "agent_id", "label", "event_type", "version", "old_value",
                           "new_value", "applied", "skipped", "log_partition", "log_offset")

    def __init__(self, topic: str, pool=None):
        self.topic, self.pool = topic, pool
        self.double = InMemoryPg() if pool is None else None

    async def apply(self, batch: list[Applied]) -> None:
        if self.double is not None:
            await project_batch(self.double, batch)
        else:
            await PgProjector(self.pool).apply_batch(self.topic, batch)

    async def observe(self, users: list[str]) -> dict:
        if self.double is not None:
            store = self.double
            memories = {i: r for i, r in store.memories.items() if r["user_id"] in users}
            history = [r for r in store.history.values() if r["user_id"] in users]
            others = (list(store.users.values()), list(store.api_keys.values()), list(store.shares.values()),
                      list(store.profiles.values()), list(store.core_blocks.values()),
                      list(store.core_history.values()))
        else:
            memories = {str(r["id"]): dict(r) for r in await self.pool.fetch(
                "SELECT * FROM memories WHERE user_id = ANY($1)", users)}
            history = [dict(r) for r in await self.pool.fetch(
                "SELECT * FROM memory_history WHERE user_id = ANY($1)", users)]
            others = []
            for query in ("SELECT user_id, display_name, is_admin FROM users WHERE user_id = ANY($1)",
                          "SELECT key_id, user_id, revoked_reason FROM api_keys WHERE user_id = ANY($1)",
                          "SELECT memory_id, user_id, grantee_user_id FROM memory_shares WHERE user_id = ANY($1)",
                          "SELECT * FROM user_profiles WHERE user_id = ANY($1)",
                          "SELECT * FROM core_memory_blocks WHERE user_id = ANY($1)",
                          "SELECT * FROM core_memory_history WHERE user_id = ANY($1)"):
                others.append([dict(r) for r in await self.pool.fetch(query, users)])
        return {
            "memories": {i: tuple(_plain(r[f]) for f in self.memory_fields) for i, r in memories.items()},
            "history": sorted((str(r["event_id"]), str(r["memory_id"]), *(_plain(r[f]) for f in self.history_fields))
                              for r in history),
            "users": sorted((r["user_id"], r["display_name"], r["is_admin"]) for r in others[0]),
            "keys": sorted((str(r["key_id"]), r["user_id"], r["revoked_reason"]) for r in others[1]),
            "shares": sorted((str(r["memory_id"]), r["user_id"], r["grantee_user_id"]) for r in others[2]),
            "profiles": sorted(tuple(_plain(r[f]) for f in PgHarness.profile_fields) for r in others[3]
                               if r["user_id"] in users),
            "core_blocks": sorted(tuple(_plain(r[f]) for f in PgHarness.core_block_fields) for r in others[4]
                                  if r["user_id"] in users),
            "core_history": sorted(tuple(_plain(r[f]) for f in PgHarness.core_history_fields) for r in others[5]
                                   if r["user_id"] in users),
        }

    @staticmethod
    def states(observed: dict) -> dict[str, str]:
        return {i: row[PgHarness.memory_fields.index("state")] for i, row in observed["memories"].items()}


def _plain(value):
    """A column value as the double holds it (jsonb text parsed, uuids as strings, float4 as float)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class RedisHarness:
    def __init__(self, topic: str, client=None, version: int | None = None):
        self.topic, self.client, self.version = topic, client, version
        self.double = InMemoryRedis(topic=topic) if client is None else None

    async def apply(self, batch: list[Applied]) -> None:
        if self.double is not None:
            for item in batch:
                project_redis(self.double, item)
        else:
            await RedisProjector(self.client, self.version).apply_batch(self.topic, batch)

    async def observe(self, users: list[str]) -> dict:
        if self.double is not None:
            store = self.double
            return {"docs": {i: d for i, d in store.docs.items() if d["user_id"] in users},
                    "sets": {k: _newest_first(store.sets[k].items()) for k in store.sets if k[0] in users
                             and store.sets[k]},
                    "all": {u: sorted(store.all[u]) for u in users if store.all.get(u)},
                    "gen": {u: store.gen[u] for u in users if u in store.gen},
                    "watermarks": store.watermarks}
        prefix, client = prefix_of(self.version), self.client
        docs = {}
        async for key in client.scan_iter(match=f"{prefix}:mem:*", count=1000):
            doc = {k.decode(): v.decode() for k, v in (await client.hgetall(key)).items()}
            if doc.get("user_id") in users:
                docs[doc["id"]] = doc
        sets = {}
        for user in sorted(users):
            for what in ("ids", "inactive", "recent"):
                members = await client.zrange(f"{prefix}:user:{user}:{what}", 0, -1, withscores=True)
                if members:
                    sets[(user, what)] = [(m.decode(), int(s)) for m, s in members]
        gens = {u: int(g) for u in users if (g := await client.get(f"{prefix}:user:{u}:gen")) is not None}
        return {"docs": docs,
                "sets": {k: _newest_first(v) for k, v in sets.items()},
                "all": {u: sorted(m.decode() for m in members) for u in users
                        if (members := await client.smembers(f"{prefix}:user:{u}:all"))},
                "gen": gens,
                "watermarks": {int(p): int(o) for p, o in (await client.hgetall(f"{prefix}:wm:{self.topic}")).items()}}

    @staticmethod
    def states(observed: dict) -> dict[str, str]:
        return {i: d["state"] for i, d in observed["docs"].items()}


def _newest_first(members) -> list[tuple[str, int]]:
    return sorted(members, key=lambda m: (m[1], m[0]), reverse=True)


def _by_value(row: tuple) -> tuple:
    """A sort key equal for equal rows whatever the datetimes' tzinfo classes."""
    return tuple(str(v.timestamp()) if isinstance(v, datetime) else str(v) for v in row)


class GraphHarness:
    """The projector's own filter stands in front of the double: records at or below the stored
    position and events applied before (their markers) are skipped."""

    def __init__(self, topic: str, driver=None):
        self.topic, self.driver = topic, driver
        self.double = InMemoryGraph() if driver is None else None
        self.position, self.seen = -1, set()

    async def apply(self, batch: list[Applied]) -> None:
        if self.double is None:
            projector = Neo4jVersions(self.driver, projection=GRAPH_PROJECTION).projection(GRAPH_VERSION)
            await projector.apply_batch(self.topic, batch)
            return
        fresh = []
        for item in batch:
            if (type(item.event) in GRAPH_EVENTS and item.offset > self.position
                    and item.event.event_id not in self.seen):
                self.seen.add(item.event.event_id)
                fresh.append(item.event)
        await project_events(self.double, fresh)
        self.position = max([self.position, *(item.offset for item in batch)])

    async def observe(self, users: list[str]) -> dict:
        if self.double is not None:
            g = self.double
            memories = {i: m for i, m in g.memories.items() if m["user_id"] in users}
            entities = [(u, k, e["name"], e["type"]) for (u, k), e in g.entities.items() if u in users]
            mentions = [m for m in g.mentions if m[1] in users]
            relates = [(r["user_id"], r["source"], r["type"], r["target"], r["memory_id"], r["valid_from"],
                        r["valid_to"]) for r in g.relates if r["user_id"] in users]
            co = [(*k, c["weight"], c["first_at"], c["last_at"]) for k, c in g.co_mentions.items() if k[0] in users]
            owners = [u for u in g.users if u in users]
        else:
            memories = {r["m"]["id"]: {k: _iso_free(v) for k, v in r["m"].items()} for r in await self._q(
                "MATCH (m:Memory_vN) WHERE m.user_id IN $users RETURN properties(m) AS m", users)}
            entities = [tuple(r.values()) for r in await self._q(
                "MATCH (e:Entity_vN) WHERE e.user_id IN $users RETURN e.user_id, e.key, e.name, e.type", users)]
            mentions = [tuple(r.values()) for r in await self._q(
                "MATCH (m:Memory_vN)-[:MENTIONS]->(e:Entity_vN) WHERE m.user_id IN $users"
                " RETURN m.id, e.user_id, e.key", users)]
            relates = [tuple(_iso_free(v) for v in r.values()) for r in await self._q(
                "MATCH (s:Entity_vN)-[r:RELATES]->(t:Entity_vN) WHERE s.user_id IN $users"
                " RETURN s.user_id, s.key, r.type, t.key, r.memory_id, r.valid_from, r.valid_to", users)]
            co = [tuple(_iso_free(v) for v in r.values()) for r in await self._q(
                "MATCH (a:Entity_vN)-[c:CO_MENTIONED]->(b:Entity_vN) WHERE a.user_id IN $users"
                " RETURN a.user_id, a.key, b.key, c.weight, c.first_at, c.last_at", users)]
            owners = [r["u"] for r in await self._q(
                "MATCH (u:User_vN) WHERE u.user_id IN $users RETURN u.user_id AS u", users)]
        fields = ("user_id", "text", "state", "created_at", "updated_at", "occurred_at", "agent_id", "run_id",
                  "app_id", "times", "entity_source", "last_event_id", "deleted_at")
        return {"memories": {i: tuple(m.get(f) for f in fields) for i, m in memories.items()},
                "entities": sorted(entities), "mentions": sorted(mentions), "relates": sorted(relates, key=_by_value),
                "co_mentions": sorted(co, key=_by_value), "users": sorted(owners)}

    async def _q(self, query: str, users: list[str]) -> list[dict]:
        records, _, _ = await self.driver.execute_query(versioned(query, GRAPH_VERSION), users=users)
        return [r.data() for r in records]

    @staticmethod
    def states(observed: dict) -> dict[str, str]:
        return {i: m[2] for i, m in observed["memories"].items()}


class SparseHarness:
    def __init__(self, topic: str, root=None):
        self.topic = topic
        self.projector = SparseProjector(root, version=1) if root is not None else None
        self.root = root
        self.double = InMemorySparse() if root is None else None

    async def apply(self, batch: list[Applied]) -> None:
        if self.double is not None:
            for item in batch:
                project_sparse(self.double, item.event)
        else:
            await self.projector.apply_batch(self.topic, batch)

    async def observe(self, users: list[str]) -> dict:
        if self.double is not None:
            return {i: d for i, d in self.double.docs.items() if d.user_id in users}
        self.projector.close()
        index = sparse_schema.open_index(sparse_layout.version_dir(self.root, 1))
        index.reload()
        searcher = index.searcher()
        query = sparse_schema.term("kind", sparse_schema.KIND_MEMORY)
        total = searcher.search(query, limit=1, count=True).count
        docs = [sparse_schema.memory_from_stored(searcher.doc(address).to_dict())
                for _score, address in (searcher.search(query, limit=total, count=False).hits if total else [])]
        return {d.memory_id: d for d in docs if d.user_id in users}

    @staticmethod
    def states(observed: dict) -> dict[str, str]:
        return {i: d.state for i, d in observed.items()}


# --- fixtures: a double and a real store of each read model ---------------------------------------


@pytest.fixture(scope="module")
async def graph_version(settings):
    async with neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri,
                                               auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        versions = Neo4jVersions(driver, projection=GRAPH_PROJECTION)
        await versions.create_version(GRAPH_VERSION)
        yield GRAPH_VERSION
        await versions.drop(GRAPH_VERSION)
        await driver.execute_query("MATCH (n) WHERE (n:ReadModelLive OR n:ReadModelVersion) AND n.projection = $p"
                                   " DELETE n", p=GRAPH_PROJECTION)


@pytest.fixture
async def redis_client(settings):
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    version = random.randrange(10**6, 10**9)
    yield client, version
    keys = [k async for k in client.scan_iter(match=f"{prefix_of(version)}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["postgres", "redis", "neo4j", "sparse"])
def harnesses(request, tmp_path):
    """(the double, the real store) of one read model (a plain fixture: it asks for the async ones)."""
    topic = f"test-contract-{uuid.uuid4().hex[:8]}"  # positions of the test's own
    if request.param == "postgres":
        yield PgHarness(topic), PgHarness(topic, request.getfixturevalue("pool"))
    elif request.param == "redis":
        yield RedisHarness(topic), RedisHarness(topic, *request.getfixturevalue("redis_client"))
    elif request.param == "neo4j":
        request.getfixturevalue("graph_version")
        yield GraphHarness(topic), GraphHarness(topic, request.getfixturevalue("driver"))
    else:
        real = SparseHarness(topic, tmp_path)
        yield SparseHarness(topic), real
        real.projector.close()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_the_double_and_the_real_store_end_in_the_same_state(harnesses, scenario):
    double, real = harnesses
    story = SCENARIOS[scenario]()
    for batch in deliveries(story):
        await double.apply(batch)
        await real.apply(batch)
    expected = {i: s for i, s in story.expected.items() if s is not None}
    observed_double, observed_real = await double.observe(story.users), await real.observe(story.users)
    assert type(double).states(observed_double) == expected
    assert observed_real == observed_double


def test_every_scenario_event_is_a_domain_event():
    """The suite feeds real events only (no stand-ins that a projection could special-case)."""
    for make in SCENARIOS.values():
        for batch in make().batches:
            assert batch == AGAIN or all(isinstance(e, Event) for e in batch)
    assert any(isinstance(e, UserErased) for b in erasure().batches for e in b)
