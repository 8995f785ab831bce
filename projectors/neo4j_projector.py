"""Neo4jProjector: each user's memories, the entities they mention and the relations
between those entities, with the projection's log positions in the same transaction.

What each event writes is projectors/neo4j_projection.py, in Cypher projectors/neo4j_store.py
(its rows: projectors/graph_rows.py); this module holds the batch's transaction (positions,
applied-event markers, the live pointer check); the versions are projectors/neo4j_versions.py.

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
  left out. As nodes they joined unrelated memories and crowded the graph. Nor are amounts
  (`quantity` entities: "a few days", "$20"): they are left out with their relations.
- `CO_MENTIONED` joins two entities a memory names together (its first 8 entity nodes: at most
  28 pairs), one relationship per pair, from the smaller key to the larger,
  `weight` the memories created that named both (an update or a delete does not lower it,
  as MENTIONS stay; `first_at`/`last_at` their event times). The graph source does not walk
  it (RELATES only); the Graph page draws it, thicker with weight.
- `RELATES.valid_from` is the memory's `happened_at` for a create and the event time for an
  update; `valid_to` is unset while the relation holds and is set to the event time when
  the memory's text changes (`MemoryUpdated`: old MENTIONS removed, old RELATES closed, the
  new text's ones added; MemoryUpdated carries no entities, so the new text always goes
  through the offline extractor; a metadata-only update leaves the graph as it is) or the
  memory is deleted (`MemoryDeleted`, `MemoryScopeDeleted`: `state = 'deleted'`, RELATES
  closed; nodes and MENTIONS stay for audit; readers filter on `state` and `valid_to`).
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
- `Neo4jVersions(driver).projection()` follows the live version: `positions()` reads the pointer and
  remembers the version; each batch's write transaction reads the pointer first and raises
  `Relocated` (nothing written) when it moved, and once more after advancing its offsets,
  which a switch locks, so a batch never lands in a version that is no longer live.
  `Neo4jVersions(driver).projection(n)` writes version n whatever the pointer says (a replay).
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

from collections.abc import Sequence
from typing import Protocol

from neo4j import AsyncDriver, AsyncManagedTransaction, RoutingControl
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

# The version helpers live with the read side (the query API reads the graph without projectors/).
from adapters.neo4j_read_model import PROJECTION, check_version, versioned
from domain.events import Event, MemoryConsolidated, MemoryCreated, UserErased
from projectors.applied import Applied, Relocated
from projectors.neo4j_projection import HANDLERS, project_events
from projectors.neo4j_store import Neo4jGraphStore, rows

CREATES = (MemoryCreated, MemoryConsolidated)  # whose ids the batch's first round trip looks up


POSITIONS = """
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
class GraphVersions(Protocol):
    """What a projector needs of the graph's versions (projectors/neo4j_versions.Neo4jVersions)."""
    driver: AsyncDriver
    database: str | None
    name: str

    async def live_version(self) -> int: ...

    async def create_version(self, version: int) -> None: ...


class Neo4jProjector:
    name = PROJECTION
    transient_errors: tuple[type[BaseException], ...] = (
        ServiceUnavailable,  # includes IncompleteCommit: safe to retry, the batch is idempotent
        SessionExpired,
        TransientError,  # includes DatabaseUnavailable, deadlocks
        OSError,  # includes ConnectionError and TimeoutError
    )

    def __init__(self, versions: GraphVersions, version: int | None = None):
        self.versions = versions  # the pointer and each version's schema (projectors/neo4j_versions.py)
        self.driver, self.database = versions.driver, versions.database
        self.name = versions.name  # the pointer's key and ProjectionOffset.projection (another one only in tests)
        self.pinned = None if version is None else check_version(version)  # None: follow the live version
        self.version = self.pinned  # the version written (following: the live one as of positions())

    async def ensure_schema(self) -> None:
        """Constraints and indexes of the version written; safe to call on every start."""
        if self.pinned is None:
            self.version = await self.versions.live_version()
        await self.versions.create_version(self.version)

    async def positions(self, topic: str) -> dict[int, int]:
        if self.pinned is None:
            self.version = await self.versions.live_version()
        records, _, _ = await self.driver.execute_query(
            versioned(POSITIONS, self.version), projection=self.name, topic=topic, database_=self.database,
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
