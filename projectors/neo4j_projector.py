"""Neo4jProjector: each user's memories, the entities they mention and the relations
between those entities, with the projection's log positions in the same transaction.

What each event writes is projectors/neo4j_projection.py, in Cypher projectors/neo4j_store.py
(its rows: projectors/graph_rows.py); this module holds the batch's transaction (positions,
applied-event markers, the live pointer check) and the versions (`Neo4jVersions`).

Graph model (all nodes per user; nothing is shared across users):

    (:User {user_id})-[:OWNS]->(:Memory {id, user_id, text, state, created_at, updated_at,
                                         occurred_at, agent_id, run_id, app_id, times,
                                         deleted_at, entity_source, last_event_id})
    (:Memory)-[:MENTIONS]->(:Entity {user_id, key, name, type})
    (:Entity)-[:RELATES {type, memory_id, valid_from, valid_to}]->(:Entity)
    (:Entity)-[:CO_MENTIONED {weight, first_at, last_at}]->(:Entity)
    (:ProjectionOffset {projection: "neo4j", topic, partition, offset})
    (:AppliedEvent {event_id, user_id, event_type})

- `Memory.created_at` / `updated_at` are event times, `occurred_at` is when the remembered
  thing happened (`happened_at`), as in the Postgres read model; `state` is `active`,
  `archived` (a source of a consolidation: history, read only with include_archived),
  `forgotten` (hidden by a worker, restorable) or `deleted`.
- `Entity.key` is `lower(name) + "|" + type`, unique per user. The first spelling of a name
  is kept. Types are lower-cased; relation types are lower-cased with non-word runs turned
  into `_` ("Works At" -> `works_at`).
- Entities come from the event (`MemoryCreated` v2 / `MemoryConsolidated` v2
  `entities`/`relations`); an event that carries neither (every v1 event) gets them from the
  deterministic offline extractor `domain.entities.extract(text)`, so a replay rebuilds the
  same graph (`Memory.entity_source` says `event` or `extractor`). A relation endpoint that
  is not among the event's entities becomes an entity of type `other`.
- Times are not entities: the `date` entities of a memory ("yesterday", "May 2023") become
  its `times` list (as written; `occurred_at` is when it happened), and relations to them are
  left out. As nodes they joined unrelated memories and crowded the graph.
- `CO_MENTIONED` joins two entities a memory names together (its first 8 entities that are no
  quantity: at most 28 pairs), one relationship per pair, from the smaller key to the larger,
  `weight` the memories created that named both (an update or a delete does not lower it,
  as MENTIONS stay; `first_at`/`last_at` their event times). The graph source does not walk
  it (RELATES only); the Graph page draws it, thicker with weight.
- `RELATES.valid_from` is the memory's `happened_at` for a create and the event time for an
  update; `valid_to` is unset while the relation holds and is set to the event time when
  the memory's text changes (`MemoryUpdated`: old MENTIONS removed, old RELATES closed, the
  new text's ones added; MemoryUpdated carries no entities, so the new text always goes
  through the offline extractor; a metadata-only update leaves the graph as it is) or the memory is deleted (`MemoryDeleted`, `MemoryScopeDeleted`:
  `state = 'deleted'`, RELATES closed; nodes and MENTIONS stay for audit; readers filter on
  `state` and `valid_to`).
- `MemoryConsolidated` creates the summary memory like a create (`happened_at`, or the event
  time when it has none, is its `occurred_at` and its relations' `valid_from`) and, when
  the summary is new, sets the user's sources that are `active` or `forgotten` to
  `archived` (as Postgres does). Their MENTIONS and RELATES stay open: what they said is
  history, not contradicted. A summary that exists already changes nothing.
- `MemoryForgotten` sets an `active` or `archived` memory to `forgotten`; `MemoryRestored`
  sets a `forgotten` or `archived` one back to `active`. Neither touches MENTIONS or RELATES
  (forgetting is undone by a restore, so nothing is closed): readers leave out the relations
  of forgotten and deleted memories by their memory's `state`.
- Other events (access, conversations, identity, ...) do not change the graph; their
  position still advances.

Versions (projectors/versions.py). The graph lives in numbered label sets: every node of
version n carries its contract label and a versioned one, `(:Memory:Memory_v3)`,
`(:Entity:Entity_v3)`, `(:User:User_v3)`, `(:ProjectionOffset:ProjectionOffset_v3)`,
`(:AppliedEvent:AppliedEvent_v3)`. Every MATCH and MERGE names the versioned label only, so
versions never mix and each uses its own constraints and indexes (`rs_v3_memory_id`, ...;
created by `Neo4jVersions.create_version`). Relationship types are not versioned (they only
join nodes of one version; their property indexes are global); a query that starts from a
relationship index still pins an endpoint's versioned label. Labels are formatted into the
query text from an int version only (`versioned()`: `Memory_vN` -> `Memory_v3`), never from
input. Readers find the live version with `live_graph_version()` and its labels with
`labels(version)` (both in adapters/neo4j_read_model.py, with `Neo4jReadModel`, what the
query API reads through).

- The pointer `(:ReadModelLive {projection: "neo4j", version: n})` says which version is
  live (readers read it, the live projector writes it). Without one, the first
  `live_version()` creates version 1 as live; a graph written before versions existed
  (plain labels, no pointer) is adopted as version 1 in place (its nodes get the `_v1`
  labels, in batches) and the old unversioned constraints and indexes are dropped: a
  plain-label uniqueness constraint would make two versions collide on the same memory id.
- `Neo4jProjector(driver)` follows the live version: `positions()` reads the pointer and
  remembers the version; each batch's write transaction reads the pointer first and raises
  `Relocated` (nothing written) when it moved, and once more after advancing its offsets,
  which a switch locks, so a batch never lands in a version that is no longer live.
  `Neo4jProjector(driver, version=n)` writes version n whatever the pointer says (a replay).
- `Neo4jVersions.switch(n, topic)`: one write transaction locks the pointer and the live
  version's offsets of the topic, and moves the pointer to n only if n's offsets cover
  them on every partition. `drop(n)` deletes a version that is not live, in batches, then
  its constraints and indexes. A `(:ReadModelVersion {projection, version})` marker lists
  the versions a projection created, so versions() does not pick up another projection's
  label sets.

Exactly-once effect: one write transaction per `apply_batch` holds the data and the
`ProjectionOffset` nodes (advanced with a max, so a redelivery never moves them back).
Inside it, events at or below the stored position of their partition are skipped (a
redelivery after a crash before the Kafka commit), and every applied memory event leaves an
`(:AppliedEvent {event_id})` marker, so the same event appended twice at other offsets
(a retried command whose idempotency record was lost) changes nothing either.

Call `ensure_schema()` once before consuming (the written version's constraints and
indexes, IF NOT EXISTS). The driver is the caller's: create it with
`neo4j.AsyncGraphDatabase.driver(...)` and close it yourself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction, RoutingControl
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

# The version helpers live with the read side (the query API reads the graph without projectors/).
from adapters.neo4j_read_model import NODE_LABELS, PROJECTION, READ_LIVE, check_version, versioned
from domain.events import Event, MemoryConsolidated, MemoryCreated, UserErased
from projectors.applied import Applied, Relocated
from projectors.neo4j_projection import HANDLERS, project_events
from projectors.neo4j_store import Neo4jGraphStore, rows, run
from projectors.versions import covers

CREATES = (MemoryCreated, MemoryConsolidated)  # whose ids the batch's first round trip looks up


# Per version: `_vN` becomes `_v<n>` (versioned()).
VERSION_SCHEMA = (
    "CREATE CONSTRAINT rs_vN_user_id IF NOT EXISTS FOR (u:User_vN) REQUIRE u.user_id IS UNIQUE",
    "CREATE CONSTRAINT rs_vN_memory_id IF NOT EXISTS FOR (m:Memory_vN) REQUIRE m.id IS UNIQUE",
    ("CREATE CONSTRAINT rs_vN_entity_user_key IF NOT EXISTS FOR (e:Entity_vN)"
     " REQUIRE (e.user_id, e.key) IS UNIQUE"),
    ("CREATE CONSTRAINT rs_vN_projection_offset IF NOT EXISTS FOR (o:ProjectionOffset_vN)"
     " REQUIRE (o.projection, o.topic, o.partition) IS UNIQUE"),
    "CREATE CONSTRAINT rs_vN_applied_event_id IF NOT EXISTS FOR (a:AppliedEvent_vN) REQUIRE a.event_id IS UNIQUE",
    "CREATE INDEX rs_vN_memory_user IF NOT EXISTS FOR (m:Memory_vN) ON (m.user_id)",
    "CREATE INDEX rs_vN_entity_user IF NOT EXISTS FOR (e:Entity_vN) ON (e.user_id)",
    "CREATE INDEX rs_vN_entity_name IF NOT EXISTS FOR (e:Entity_vN) ON (e.name)",
    "CREATE INDEX rs_vN_applied_event_user IF NOT EXISTS FOR (a:AppliedEvent_vN) ON (a.user_id)",
)
VERSION_CONSTRAINTS = ("rs_vN_user_id", "rs_vN_memory_id", "rs_vN_entity_user_key", "rs_vN_projection_offset",
                       "rs_vN_applied_event_id")
VERSION_INDEXES = ("rs_vN_memory_user", "rs_vN_entity_user", "rs_vN_entity_name", "rs_vN_applied_event_user")
# Shared by every version: relationship property indexes, the pointer and the version markers.
GLOBAL_SCHEMA = (
    "CREATE CONSTRAINT rs_read_model_live IF NOT EXISTS FOR (p:ReadModelLive) REQUIRE p.projection IS UNIQUE",
    ("CREATE CONSTRAINT rs_read_model_version IF NOT EXISTS FOR (v:ReadModelVersion)"
     " REQUIRE (v.projection, v.version) IS UNIQUE"),
    "CREATE INDEX rs_relates_memory IF NOT EXISTS FOR ()-[r:RELATES]-() ON (r.memory_id)",
    "CREATE INDEX rs_relates_type IF NOT EXISTS FOR ()-[r:RELATES]-() ON (r.type)",
)
# What the code before versions created on the plain labels (dropped when adopting it).
LEGACY_CONSTRAINTS = ("rs_user_id", "rs_memory_id", "rs_entity_user_key", "rs_projection_offset",
                      "rs_applied_event_id")
LEGACY_INDEXES = ("rs_memory_user", "rs_entity_user", "rs_entity_name", "rs_applied_event_user")

_BATCH = 10_000
def _check_label(label: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", label):
        raise ValueError(f"not a plain label name: {label!r}")
    return label


_POSITIONS = """
MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
RETURN o.partition AS partition, o.offset AS offset
"""
# A batch's first and last round trips. First: the live pointer, this version's offsets, which
# of the batch's events were applied before and which of its memories exist already.
# Last: its events marked applied, its offsets advanced, then the pointer read again (now that
# this transaction holds the offsets' locks: a switch that took them first has committed, and
# its new pointer is visible). One round trip each instead of five (~1.7 ms apiece here).
_BEGIN_BATCH = """
OPTIONAL MATCH (p:ReadModelLive {projection: $projection})
CALL () {
  MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
  RETURN collect([o.partition, o.offset]) AS offsets
}
CALL () {
  UNWIND $event_ids AS id
  MATCH (a:AppliedEvent_vN {event_id: id})
  RETURN collect(a.event_id) AS seen
}
CALL () {
  UNWIND $memory_ids AS id
  MATCH (m:Memory_vN {id: id})
  RETURN collect([m.id, m.user_id]) AS existing
}
RETURN p.version AS version, offsets, seen, existing
"""
_END_BATCH = """
CALL () {
  UNWIND $marks AS r
  CREATE (:AppliedEvent:AppliedEvent_vN {event_id: r.event_id, user_id: r.user_id, event_type: r.event_type})
}
CALL () {
  UNWIND $rows AS r
  MERGE (o:ProjectionOffset_vN {projection: $projection, topic: $topic, partition: r.partition})
    ON CREATE SET o:ProjectionOffset, o.offset = r.offset
    ON MATCH SET o.offset = CASE WHEN r.offset > o.offset THEN r.offset ELSE o.offset END
}
WITH 1 AS written
OPTIONAL MATCH (p:ReadModelLive {projection: $projection})
RETURN p.version AS version
"""
# A switch write-locks the live version's offsets (the Neo4j manual's `_LOCK_` idiom), then
# reads them: a batch advancing them commits first and is counted, or waits for the switch
# and then sees the pointer moved.
_LOCK_POSITIONS = """
MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
WITH o ORDER BY o.partition
SET o._LOCK_ = true
"""
_UNLOCK_POSITIONS = """
MATCH (o:ProjectionOffset_vN {projection: $projection, topic: $topic})
REMOVE o._LOCK_
RETURN o.partition AS partition, o.offset AS offset
"""
_LOCK_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) SET p._LOCK_ = true RETURN p.version AS version"
_SET_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) REMOVE p._LOCK_ SET p.version = $version"
_UNLOCK_LIVE = "MATCH (p:ReadModelLive {projection: $projection}) REMOVE p._LOCK_"
_CREATE_LIVE = """
MERGE (p:ReadModelLive {projection: $projection})
  ON CREATE SET p.version = $version
RETURN p.version AS version
"""


class Neo4jProjector:
    name = PROJECTION
    transient_errors: tuple[type[BaseException], ...] = (
        ServiceUnavailable,  # includes IncompleteCommit: safe to retry, the batch is idempotent
        SessionExpired,
        TransientError,  # includes DatabaseUnavailable, deadlocks
        OSError,  # includes ConnectionError and TimeoutError
    )

    def __init__(self, driver: AsyncDriver, database: str | None = None, version: int | None = None, *,
                 projection: str = PROJECTION):
        self.driver = driver
        self.database = database
        self.name = projection  # the pointer's key and ProjectionOffset.projection (another one only in tests)
        self.pinned = None if version is None else check_version(version)  # None: follow the live version
        self.version = self.pinned  # the version written (following: the live one as of positions())
        self.versions = Neo4jVersions(driver, database, projection=projection)

    async def ensure_schema(self) -> None:
        """Constraints and indexes of the version written; safe to call on every start."""
        if self.pinned is None:
            self.version = await self.versions.live_version()
        await self.versions.create_version(self.version)

    async def positions(self, topic: str) -> dict[int, int]:
        if self.pinned is None:
            self.version = await self.versions.live_version()
        records, _, _ = await self.driver.execute_query(
            versioned(_POSITIONS, self.version), projection=self.name, topic=topic, database_=self.database,
            routing_=RoutingControl.READ)
        return {r["partition"]: r["offset"] for r in records}

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None:
        """Apply events and advance the offsets in one transaction: a crash leaves both or neither."""
        if not batch:
            return
        if self.version is None:  # following, used without positions() first (a DLQ retry)
            self.version = await self.versions.live_version()
        # The driver's execute_query bookmark manager: positions() then reads this write (causal consistency).
        async with self.driver.session(database=self.database,
                                       bookmark_manager=self.driver.execute_query_bookmark_manager) as session:
            await session.execute_write(self._write_batch, topic, list(batch))

    def _q(self, template: str) -> str:
        return versioned(template, self.version)

    # --- the transaction ---------------------------------------------------------------

    def _check_live(self, live: int | None) -> None:
        """Following the live version: raise Relocated when the pointer (None: never switched,
        version 1) names another version than the one written."""
        live = 1 if live is None else live
        if self.pinned is None and live != self.version:
            raise Relocated(f"neo4j read model moved from v{self.version} to v{live}")

    async def _write_batch(self, tx: AsyncManagedTransaction, topic: str, batch: list[Applied]) -> None:
        candidates = [item.event for item in batch if type(item.event) in HANDLERS]
        [begin] = await rows(tx, self._q(_BEGIN_BATCH), projection=self.name, topic=topic,
                             event_ids=[e.event_id for e in candidates],
                             memory_ids=[e.memory_id for e in candidates if type(e) in CREATES])
        self._check_live(begin["version"])  # before any write
        stored = {partition: offset for partition, offset in begin["offsets"]}
        fresh = [item.event for item in batch
                 if type(item.event) in HANDLERS and item.offset > stored.get(item.partition, -1)]
        seen = set(begin["seen"])
        existing = dict(begin["existing"])  # memory id -> user id, kept up to date as the batch goes
        applied: list[Event] = []
        for event in fresh:
            if event.event_id not in seen:
                seen.add(event.event_id)
                applied.append(event)
        await project_events(Neo4jGraphStore(tx, self.version, existing), applied)
        # An event followed by its user's erasure in this batch leaves no trace either.
        erased_later: set[str] = set()
        marks = []
        for event in reversed(applied):
            if isinstance(event, UserErased):
                erased_later.add(event.user_id)
            elif event.user_id in erased_later:
                continue
            marks.append({"event_id": event.event_id, "user_id": event.user_id, "event_type": event.event_type})
        highest: dict[int, int] = {}
        for item in batch:
            highest[item.partition] = max(item.offset, highest.get(item.partition, -1))
        [end] = await rows(tx, self._q(_END_BATCH), projection=self.name, topic=topic, marks=marks[::-1],
                           rows=[{"partition": p, "offset": o} for p, o in sorted(highest.items())])
        self._check_live(end["version"])  # again, holding the offsets' locks


class Neo4jVersions:
    """The graph read model's versions (projectors/versions.py): label sets `<Label>_v<n>`.

    `legacy_labels` / `legacy_schema`: what to adopt as version 1 when the pointer is first
    created. By default, for the real projection ("neo4j"), the contract labels and the
    unversioned constraints and indexes of the code before versions; for any other
    projection name nothing global (its own plain ProjectionOffset nodes only), so a test
    projection never relabels or drops what is not its own.
    """

    name = PROJECTION

    def __init__(self, driver: AsyncDriver, database: str | None = None, *, projection: str = PROJECTION,
                 legacy_labels: Sequence[str] | None = None, legacy_schema: Sequence[str] | None = None):
        self.driver = driver
        self.database = database
        self.name = projection
        real = projection == PROJECTION
        self.legacy_labels = tuple(_check_label(label) for label in (
            legacy_labels if legacy_labels is not None
            else [label for label in NODE_LABELS if label != "ProjectionOffset"] if real else ()))
        self.legacy_schema = tuple(_check_label(name) for name in (
            legacy_schema if legacy_schema is not None else (*LEGACY_CONSTRAINTS, *LEGACY_INDEXES) if real else ()))

    def _session(self):
        return self.driver.session(database=self.database, bookmark_manager=self.driver.execute_query_bookmark_manager)

    async def _query(self, query: str, **params: Any) -> list[dict]:
        records, _, _ = await self.driver.execute_query(query, params, database_=self.database)
        return [r.data() for r in records]

    async def _schema(self, statements: Iterable[str]) -> None:
        async with self._session() as session:
            for statement in statements:
                result = await session.run(statement)
                await result.consume()

    # --- the protocol --------------------------------------------------------------------

    async def live_version(self) -> int:
        rows = await self._query(READ_LIVE, projection=self.name)
        if rows:
            return rows[0]["version"]
        return await self._create_live()

    async def versions(self) -> list[int]:
        """The live version, the versions this projection created (their markers), and any
        label set with nodes (memories or offsets) that no projection claims."""
        found = {await self.live_version()}
        markers = await self._query(
            "MATCH (v:ReadModelVersion) RETURN v.projection AS projection, v.version AS version")
        found |= {r["version"] for r in markers if r["projection"] == self.name}
        claimed = {r["version"] for r in markers}
        # db.labels() also lists labels that only a constraint names: count the nodes.
        unclaimed = {int(match[1]) for r in await self._query("CALL db.labels() YIELD label RETURN label")
                     if (match := re.fullmatch(r"(?:Memory|ProjectionOffset)_v(\d+)", r["label"]))} - claimed - found
        for version in sorted(unclaimed):
            query = versioned("RETURN EXISTS { (:Memory_vN) } OR EXISTS { (:ProjectionOffset_vN) } AS present", version)
            if (await self._query(query))[0]["present"]:
                found.add(version)
        return sorted(found)

    async def create_version(self, version: int) -> None:
        version = check_version(version)
        await self._schema(GLOBAL_SCHEMA)
        await self._schema(versioned(statement, version) for statement in VERSION_SCHEMA)
        await self._query("MERGE (:ReadModelVersion {projection: $projection, version: $version})",
                          projection=self.name, version=version)

    def projection(self, version: int | None = None) -> Neo4jProjector:
        projector = Neo4jProjector(self.driver, self.database, version, projection=self.name)
        projector.versions = self  # the same adoption settings
        return projector

    async def switch(self, version: int, topic: str) -> bool:
        version = check_version(version)
        await self.live_version()  # the pointer exists
        async with self._session() as session:
            return await session.execute_write(self._switch, version, topic)

    async def _switch(self, tx: AsyncManagedTransaction, version: int, topic: str) -> bool:
        # Lock order: the pointer, then the live offsets (a batch only ever locks offsets).
        live = (await rows(tx, _LOCK_LIVE, projection=self.name))[0]["version"]
        if live == version:
            await run(tx, _UNLOCK_LIVE, projection=self.name)
            return True
        await run(tx, versioned(_LOCK_POSITIONS, live), projection=self.name, topic=topic)
        current = {r["partition"]: r["offset"] for r in await rows(
            tx, versioned(_UNLOCK_POSITIONS, live), projection=self.name, topic=topic)}
        candidate = {r["partition"]: r["offset"] for r in await rows(
            tx, versioned(_POSITIONS, version), projection=self.name, topic=topic)}
        if not covers(candidate, current):
            await run(tx, _UNLOCK_LIVE, projection=self.name)
            return False
        await run(tx, _SET_LIVE, projection=self.name, version=version)
        return True

    async def drop(self, version: int) -> None:
        """Delete a version with everything in it (never one that is live, for any projection:
        labels are shared), then its constraints, indexes and marker."""
        version = check_version(version)
        if await self.live_version() == version:
            raise ValueError(f"version {version} of the {self.name} read model is live; it cannot be dropped")
        live_elsewhere = await self._query("MATCH (p:ReadModelLive {version: $version}) RETURN p.projection AS p",
                                           version=version)
        if live_elsewhere:
            raise ValueError(f"version {version}'s labels are live for {live_elsewhere[0]['p']!r}; not dropped")
        for label in ("Memory", "Entity", "User", "AppliedEvent", "ProjectionOffset"):  # offsets last: still listed
            query = f"MATCH (n:{label}_v{version}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
            while (await self._query(query, limit=_BATCH))[0]["deleted"]:
                pass
        await self._schema([*(f"DROP CONSTRAINT {versioned(name, version)} IF EXISTS" for name in VERSION_CONSTRAINTS),
                            *(f"DROP INDEX {versioned(name, version)} IF EXISTS" for name in VERSION_INDEXES)])
        await self._query("MATCH (v:ReadModelVersion {projection: $projection, version: $version}) DELETE v",
                          projection=self.name, version=version)

    # --- the first pointer, and adopting a graph written before versions -----------------

    async def _create_live(self) -> int:
        await self.create_version(1)
        await self.adopt_unversioned(1)
        await self.drop_legacy_schema()
        return (await self._query(_CREATE_LIVE, projection=self.name, version=1))[0]["version"]

    async def adopt_unversioned(self, version: int = 1) -> int:
        """Give the nodes written before versions the labels of `version`: every node of a
        `legacy_labels` label that has no versioned label yet, and this projection's plain
        ProjectionOffset nodes. In batches of their own transactions; an interrupted run
        continues where it stopped. Returns how many nodes were relabelled."""
        version = check_version(version)
        adopted = 0
        steps = [(label, "") for label in self.legacy_labels if label != "ProjectionOffset"]
        steps.append(("ProjectionOffset", "n.projection = $projection AND "))
        async with self._session() as session:
            for label, scope in steps:
                result = await session.run(
                    f"MATCH (n:{label}) WHERE {scope}none(l IN labels(n) WHERE l =~ $versioned)"
                    f" CALL (n) {{ SET n:{label}_v{version} }} IN TRANSACTIONS OF {_BATCH} ROWS",
                    projection=self.name, versioned=f"{label}_v[0-9]+")
                adopted += (await result.consume()).counters.labels_added
        return adopted

    async def drop_legacy_schema(self) -> None:
        """Drop the `legacy_schema` constraints and indexes that exist: uniqueness on a plain
        label would make two versions collide (the same memory id is in both)."""
        names = list(self.legacy_schema)
        if not names:
            return
        constraints = [r["name"] for r in await self._query(
            "SHOW CONSTRAINTS YIELD name WHERE name IN $names RETURN name", names=names)]
        indexes = [r["name"] for r in await self._query(
            "SHOW INDEXES YIELD name, owningConstraint WHERE name IN $names AND owningConstraint IS NULL"
            " RETURN name", names=names)]
        await self._schema([*(f"DROP CONSTRAINT {name} IF EXISTS" for name in constraints),
                            *(f"DROP INDEX {name} IF EXISTS" for name in indexes)])
