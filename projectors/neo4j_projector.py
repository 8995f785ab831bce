"""Neo4jProjector: each user's memories, the entities they mention and the relations
between those entities, with the projection's log positions in the same transaction.

Graph model (all nodes per user; nothing is shared across users):

    (:User {user_id})-[:OWNS]->(:Memory {id, user_id, text, state, created_at, updated_at,
                                         occurred_at, agent_id, run_id, app_id,
                                         deleted_at, entity_source, last_event_id})
    (:Memory)-[:MENTIONS]->(:Entity {user_id, key, name, type})
    (:Entity)-[:RELATES {type, memory_id, valid_from, valid_to}]->(:Entity)
    (:ProjectionOffset {projection: "neo4j", topic, partition, offset})
    (:AppliedEvent {event_id, user_id, event_type})

- `Memory.created_at` / `updated_at` are event times, `occurred_at` is when the remembered
  thing happened (`happened_at`), as in the Postgres read model; `state` is `active` or
  `deleted`.
- `Entity.key` is `lower(name) + "|" + type`, unique per user. The first spelling of a name
  is kept. Types are lower-cased; relation types are lower-cased with non-word runs turned
  into `_` ("Works At" -> `works_at`).
- Entities come from the event (`MemoryCreated` v2 `entities`/`relations`); an event that
  carries neither (every v1 event) gets them from the deterministic offline extractor
  `domain.entities.extract(text)`, so a replay rebuilds the same graph
  (`Memory.entity_source` says `event` or `extractor`). A relation endpoint that is not
  among the event's entities becomes an entity of type `other`.
- `RELATES.valid_from` is the memory's `happened_at` for a create and the event time for an
  update; `valid_to` is unset while the relation holds and is set to the event time when
  the memory's text changes (`MemoryUpdated`: old MENTIONS removed, old RELATES closed, the
  new text's ones added; MemoryUpdated carries no entities, so the new text always goes
  through the offline extractor; a metadata-only update leaves the graph as it is) or the memory is deleted (`MemoryDeleted`, `MemoryScopeDeleted`:
  `state = 'deleted'`, RELATES closed; nodes and MENTIONS stay for audit; readers filter on
  `state` and `valid_to`).
- Other events (access, conversations, identity, ...) do not change the graph; their
  position still advances.

Exactly-once effect: one write transaction per `apply_batch` holds the data and the
`ProjectionOffset` nodes (advanced with a max, so a redelivery never moves them back).
Inside it, events at or below the stored position of their partition are skipped (a
redelivery after a crash before the Kafka commit), and every applied memory event leaves an
`(:AppliedEvent {event_id})` marker, so the same event appended twice at other offsets
(a retried command whose idempotency record was lost) changes nothing either.

Call `ensure_schema()` once before consuming (constraints and indexes, IF NOT EXISTS).
The driver is the caller's: create it with `neo4j.AsyncGraphDatabase.driver(...)` and
close it yourself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction, RoutingControl
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

from domain import entities as extractor
from domain.events import Entity, Event, MemoryCreated, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated, Relation
from projectors.runner import Applied

SCHEMA = (
    "CREATE CONSTRAINT rs_user_id IF NOT EXISTS FOR (u:User) REQUIRE u.user_id IS UNIQUE",
    "CREATE CONSTRAINT rs_memory_id IF NOT EXISTS FOR (m:Memory) REQUIRE m.id IS UNIQUE",
    "CREATE CONSTRAINT rs_entity_user_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.user_id, e.key) IS UNIQUE",
    "CREATE CONSTRAINT rs_projection_offset IF NOT EXISTS FOR (o:ProjectionOffset)"
    " REQUIRE (o.projection, o.topic, o.partition) IS UNIQUE",
    "CREATE CONSTRAINT rs_applied_event_id IF NOT EXISTS FOR (a:AppliedEvent) REQUIRE a.event_id IS UNIQUE",
    "CREATE INDEX rs_memory_user IF NOT EXISTS FOR (m:Memory) ON (m.user_id)",
    "CREATE INDEX rs_entity_user IF NOT EXISTS FOR (e:Entity) ON (e.user_id)",
    "CREATE INDEX rs_entity_name IF NOT EXISTS FOR (e:Entity) ON (e.name)",
    "CREATE INDEX rs_applied_event_user IF NOT EXISTS FOR (a:AppliedEvent) ON (a.user_id)",
    "CREATE INDEX rs_relates_memory IF NOT EXISTS FOR ()-[r:RELATES]-() ON (r.memory_id)",
    "CREATE INDEX rs_relates_type IF NOT EXISTS FOR ()-[r:RELATES]-() ON (r.type)",
)

_MEMORY_EVENTS = (MemoryCreated, MemoryUpdated, MemoryDeleted, MemoryScopeDeleted)

# Datetimes travel as ISO 8601 strings and become DateTime in Cypher: the pure-Python
# Bolt packer is several times slower on datetime values than on strings.
_CREATE_MEMORIES = """
UNWIND $rows AS r
MERGE (u:User {user_id: r.user_id})
CREATE (u)-[:OWNS]->(:Memory {
  id: r.id, user_id: r.user_id, text: r.text, state: 'active',
  created_at: datetime(r.created_at), updated_at: datetime(r.created_at), occurred_at: datetime(r.occurred_at),
  agent_id: r.agent_id, run_id: r.run_id, app_id: r.app_id,
  entity_source: r.entity_source, last_event_id: r.event_id})
"""
_MENTION = """
UNWIND $rows AS r
MATCH (m:Memory {id: r.memory_id})
MERGE (e:Entity {user_id: r.user_id, key: r.key})
  ON CREATE SET e.name = r.name, e.type = r.type
MERGE (m)-[:MENTIONS]->(e)
"""
_RELATE = """
UNWIND $rows AS r
MATCH (s:Entity {user_id: r.user_id, key: r.source})
MATCH (t:Entity {user_id: r.user_id, key: r.target})
CREATE (s)-[:RELATES {type: r.type, memory_id: r.memory_id, valid_from: datetime(r.valid_from)}]->(t)
"""
_CLOSE_RELATIONS = """
UNWIND $ids AS id
MATCH ()-[r:RELATES {memory_id: id}]->()
WHERE r.valid_to IS NULL
SET r.valid_to = datetime($at)
"""
_UPDATE_MEMORY = """
MATCH (m:Memory {id: $id, user_id: $user_id})
WHERE m.state <> 'deleted'
WITH m, m.text AS old_text
SET m.text = coalesce($text, m.text), m.updated_at = datetime($at), m.last_event_id = $event_id
RETURN old_text
"""
_DELETE_MEMORY = """
MATCH (m:Memory {id: $id, user_id: $user_id})
WHERE m.state <> 'deleted'
SET m.state = 'deleted', m.updated_at = datetime($at), m.deleted_at = datetime($at), m.last_event_id = $event_id
RETURN m.id AS id
"""
_DELETE_SCOPE = """
MATCH (m:Memory {user_id: $user_id})
WHERE m.state <> 'deleted'
  AND ($agent_id IS NULL OR m.agent_id = $agent_id)
  AND ($run_id IS NULL OR m.run_id = $run_id)
  AND ($app_id IS NULL OR m.app_id = $app_id)
SET m.state = 'deleted', m.updated_at = datetime($at), m.deleted_at = datetime($at), m.last_event_id = $event_id
RETURN m.id AS id
"""
_MARK_APPLIED = """
UNWIND $rows AS r
CREATE (:AppliedEvent {event_id: r.event_id, user_id: r.user_id, event_type: r.event_type})
"""
_ADVANCE = """
UNWIND $rows AS r
MERGE (o:ProjectionOffset {projection: $projection, topic: $topic, partition: r.partition})
  ON CREATE SET o.offset = r.offset
  ON MATCH SET o.offset = CASE WHEN r.offset > o.offset THEN r.offset ELSE o.offset END
"""


class Neo4jProjector:
    name = "neo4j"
    transient_errors: tuple[type[BaseException], ...] = (
        ServiceUnavailable,  # includes IncompleteCommit: safe to retry, the batch is idempotent
        SessionExpired,
        TransientError,  # includes DatabaseUnavailable, deadlocks
        OSError,  # includes ConnectionError and TimeoutError
    )

    def __init__(self, driver: AsyncDriver, database: str | None = None):
        self.driver = driver
        self.database = database

    async def ensure_schema(self) -> None:
        """Constraints and indexes; safe to call on every start."""
        async with self.driver.session(database=self.database) as session:
            for statement in SCHEMA:
                result = await session.run(statement)
                await result.consume()

    async def positions(self, topic: str) -> dict[int, int]:
        records, _, _ = await self.driver.execute_query(
            "MATCH (o:ProjectionOffset {projection: $projection, topic: $topic})"
            " RETURN o.partition AS partition, o.offset AS offset",
            projection=self.name, topic=topic, database_=self.database, routing_=RoutingControl.READ,
        )
        return {r["partition"]: r["offset"] for r in records}

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None:
        """Apply events and advance the offsets in one transaction: a crash leaves both or neither."""
        if not batch:
            return
        # The driver's execute_query bookmark manager: positions() then reads this write (causal consistency).
        async with self.driver.session(database=self.database,
                                       bookmark_manager=self.driver.execute_query_bookmark_manager) as session:
            await session.execute_write(self._write_batch, topic, list(batch))

    # --- the transaction ---------------------------------------------------------------

    async def _write_batch(self, tx: AsyncManagedTransaction, topic: str, batch: list[Applied]) -> None:
        stored = {r["partition"]: r["offset"] for r in await _rows(
            tx, "MATCH (o:ProjectionOffset {projection: $projection, topic: $topic})"
                " RETURN o.partition AS partition, o.offset AS offset", projection=self.name, topic=topic)}
        fresh = [item.event for item in batch
                 if item.event is not None and isinstance(item.event, _MEMORY_EVENTS)
                 and item.offset > stored.get(item.partition, -1)]
        seen = {r["id"] for r in await _rows(
            tx, "UNWIND $ids AS id MATCH (a:AppliedEvent {event_id: id}) RETURN a.event_id AS id",
            ids=[e.event_id for e in fresh])} if fresh else set()
        applied: list[Event] = []
        creates: list[MemoryCreated] = []
        for event in fresh:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            applied.append(event)
            if isinstance(event, MemoryCreated):
                creates.append(event)  # consecutive creates go in one UNWIND
                continue
            await self._create_memories(tx, creates)
            creates = []
            if isinstance(event, MemoryUpdated):
                await self._update(tx, event)
            elif isinstance(event, MemoryDeleted):
                await self._delete(tx, event)
            else:
                await self._delete_scope(tx, event)
        await self._create_memories(tx, creates)
        if applied:
            await _run(tx, _MARK_APPLIED, rows=[
                {"event_id": e.event_id, "user_id": e.user_id, "event_type": e.event_type} for e in applied])
        highest: dict[int, int] = {}
        for item in batch:
            highest[item.partition] = max(item.offset, highest.get(item.partition, -1))
        await _run(tx, _ADVANCE, projection=self.name, topic=topic,
                   rows=[{"partition": p, "offset": o} for p, o in sorted(highest.items())])

    async def _create_memories(self, tx: AsyncManagedTransaction, events: list[MemoryCreated]) -> None:
        if not events:
            return
        existing = {r["id"] for r in await _rows(
            tx, "UNWIND $ids AS id MATCH (m:Memory {id: id}) RETURN m.id AS id", ids=[e.memory_id for e in events])}
        memories, mentions, relations = [], [], []
        for event in events:
            if event.memory_id in existing:
                continue  # created before (a create is never applied twice, even with a new event id)
            existing.add(event.memory_id)
            if event.entities or event.relations:
                ents, rels, source = event.entities, event.relations, "event"
            else:
                (ents, rels), source = extractor.extract(event.text), "extractor"
            memories.append({
                "id": event.memory_id, "user_id": event.user_id, "text": event.text,
                "created_at": event.occurred_at.isoformat(), "occurred_at": event.happened_at.isoformat(),
                "agent_id": event.agent_id, "run_id": event.run_id, "app_id": event.app_id,
                "entity_source": source, "event_id": event.event_id,
            })
            m, r = _graph_rows(event.user_id, event.memory_id, ents, rels, valid_from=event.happened_at)
            mentions += m
            relations += r
        if memories:
            await _run(tx, _CREATE_MEMORIES, rows=memories)
            await self._link(tx, mentions, relations)

    async def _update(self, tx: AsyncManagedTransaction, event: MemoryUpdated) -> None:
        rows = await _rows(tx, _UPDATE_MEMORY, id=event.memory_id, user_id=event.user_id, text=event.text,
                           at=event.occurred_at.isoformat(), event_id=event.event_id)
        if not rows:
            return  # unknown, someone else's, or deleted
        if event.text is None or event.text == rows[0]["old_text"]:
            return  # metadata only: the graph of the text stays
        await _run(tx, "MATCH (:Memory {id: $id})-[r:MENTIONS]->() DELETE r", id=event.memory_id)
        await self._close(tx, [event.memory_id], event.occurred_at)
        await _run(tx, "MATCH (m:Memory {id: $id}) SET m.entity_source = 'extractor'", id=event.memory_id)
        ents, rels = extractor.extract(event.text)
        mentions, relations = _graph_rows(event.user_id, event.memory_id, ents, rels, valid_from=event.occurred_at)
        await self._link(tx, mentions, relations)

    async def _delete(self, tx: AsyncManagedTransaction, event: MemoryDeleted) -> None:
        rows = await _rows(tx, _DELETE_MEMORY, id=event.memory_id, user_id=event.user_id,
                           at=event.occurred_at.isoformat(), event_id=event.event_id)
        await self._close(tx, [r["id"] for r in rows], event.occurred_at)

    async def _delete_scope(self, tx: AsyncManagedTransaction, event: MemoryScopeDeleted) -> None:
        # Per-user order: exactly the memories of the scope that exist when the event is applied.
        rows = await _rows(tx, _DELETE_SCOPE, user_id=event.user_id, agent_id=event.agent_id, run_id=event.run_id,
                           app_id=event.app_id, at=event.occurred_at.isoformat(), event_id=event.event_id)
        await self._close(tx, [r["id"] for r in rows], event.occurred_at)

    async def _close(self, tx: AsyncManagedTransaction, memory_ids: list[str], at: datetime) -> None:
        if memory_ids:
            await _run(tx, _CLOSE_RELATIONS, ids=memory_ids, at=at.isoformat())

    async def _link(self, tx: AsyncManagedTransaction, mentions: list[dict], relations: list[dict]) -> None:
        if mentions:
            await _run(tx, _MENTION, rows=mentions)
        if relations:
            await _run(tx, _RELATE, rows=relations)


# --- helpers ---------------------------------------------------------------------------


async def _run(tx: AsyncManagedTransaction, query: str, **params: Any) -> None:
    result = await tx.run(query, params)
    await result.consume()


async def _rows(tx: AsyncManagedTransaction, query: str, **params: Any) -> list[dict]:
    result = await tx.run(query, params)
    return await result.data()


def _norm_name(name: str) -> str:
    return " ".join(str(name).split())


def _norm_type(type_: str) -> str:
    return re.sub(r"\W+", "_", str(type_).strip().lower()).strip("_") or "other"


def entity_key(name: str, type_: str) -> str:
    """The per-user identity of an entity: lower(name) + "|" + type."""
    return f"{_norm_name(name).lower()}|{_norm_type(type_)}"


def _graph_rows(user_id: str, memory_id: str, entities: Sequence[Entity], relations: Sequence[Relation],
                valid_from: datetime) -> tuple[list[dict], list[dict]]:
    """MENTIONS rows (one per distinct entity) and RELATES rows (one per distinct relation)."""
    mentions: list[dict] = []
    keys: set[str] = set()
    by_name: dict[str, str] = {}  # lower(name) -> key of the first entity with that name

    def mention(name: str, type_: str) -> str | None:
        name = _norm_name(name)
        if not name:
            return None
        key = entity_key(name, type_)
        if key not in keys:
            keys.add(key)
            mentions.append({"user_id": user_id, "memory_id": memory_id, "key": key, "name": name,
                             "type": _norm_type(type_)})
        by_name.setdefault(name.lower(), key)
        return key

    for entity in entities:
        mention(entity.name, entity.type)
    rows: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    for relation in relations:
        source, target = (by_name.get(_norm_name(name).lower()) or mention(name, "other")
                          for name in (relation.source, relation.target))
        type_ = _norm_type(relation.type)
        if source is None or target is None or source == target or (source, type_, target) in seen:
            continue
        seen.add((source, type_, target))
        rows.append({"user_id": user_id, "memory_id": memory_id, "source": source, "target": target,
                     "type": type_, "valid_from": valid_from.isoformat()})
    return mentions, rows
