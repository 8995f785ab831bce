"""The graph read model's writes (projectors/neo4j_projection.GraphWrites) in Cypher, inside the
write transaction of one batch of one version (projectors/neo4j_projector.py, which describes the
graph). Queries name the versioned labels (`Memory_vN`, made `Memory_v3` by `versioned()`); every
value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from neo4j import AsyncManagedTransaction

from adapters.neo4j_read_model import versioned
from domain.events import Event, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated
from projectors.graph_rows import extracted_graph, memory_graph

# UserErased: every node of the user goes, with its relationships (one indexed MATCH per label).
_ERASE_USER = (
    "MATCH (m:Memory_vN {user_id: $user_id}) DETACH DELETE m",
    "MATCH (e:Entity_vN {user_id: $user_id}) DETACH DELETE e",
    "MATCH (u:User_vN {user_id: $user_id}) DETACH DELETE u",
    "MATCH (a:AppliedEvent_vN {user_id: $user_id}) DELETE a",
)


# Datetimes travel as ISO 8601 strings and become DateTime in Cypher: the pure-Python
# Bolt packer is several times slower on datetime values than on strings.
# Nodes are created with both labels; MERGE matches on the versioned one and adds the contract label.
_CREATE_MEMORIES = """
UNWIND $rows AS r
MERGE (u:User_vN {user_id: r.user_id})
  ON CREATE SET u:User
CREATE (u)-[:OWNS]->(:Memory:Memory_vN {
  id: r.id, user_id: r.user_id, text: r.text, state: 'active',
  created_at: datetime(r.created_at), updated_at: datetime(r.created_at), occurred_at: datetime(r.occurred_at),
  agent_id: r.agent_id, run_id: r.run_id, app_id: r.app_id, times: r.times,
  entity_source: r.entity_source, last_event_id: r.event_id})
"""
_MENTION = """
UNWIND $rows AS r
MATCH (m:Memory_vN {id: r.memory_id})
MERGE (e:Entity_vN {user_id: r.user_id, key: r.key})
  ON CREATE SET e:Entity, e.name = r.name, e.type = r.type
MERGE (m)-[:MENTIONS]->(e)
"""
_RELATE = """
UNWIND $rows AS r
MATCH (s:Entity_vN {user_id: r.user_id, key: r.source})
MATCH (t:Entity_vN {user_id: r.user_id, key: r.target})
CREATE (s)-[:RELATES {type: r.type, memory_id: r.memory_id, valid_from: datetime(r.valid_from)}]->(t)
"""
# One relationship per pair of entities a memory names together, its weight the memories that did
# (counted as they are created: an update or a delete does not lower it; MENTIONS stay as well).
_CO_MENTION = """
UNWIND $rows AS r
MATCH (a:Entity_vN {user_id: r.user_id, key: r.a})
MATCH (b:Entity_vN {user_id: r.user_id, key: r.b})
MERGE (a)-[c:CO_MENTIONED]->(b)
  ON CREATE SET c.weight = 1, c.first_at = datetime(r.at), c.last_at = datetime(r.at)
  ON MATCH SET c.weight = c.weight + 1, c.last_at = datetime(r.at)
"""
# Memories with their mentions, relations and co-mentions in one round trip (the writes of
# each subquery are visible to the next).
_CREATE_GRAPH = "\n".join(f"CALL () {{{query.replace('$rows', rows)}}}" for query, rows in (
    (_CREATE_MEMORIES, "$memories"), (_MENTION, "$mentions"), (_RELATE, "$relations"),
    (_CO_MENTION, "$co_mentions")))
# RELATES is not versioned: the index finds the memory's relations, the source's label keeps this version's.
_CLOSE_RELATIONS = """
UNWIND $ids AS id
MATCH (s)-[r:RELATES {memory_id: id}]->()
WHERE s:Entity_vN AND r.valid_to IS NULL
SET r.valid_to = datetime($at)
"""
_UPDATE_MEMORY = """
MATCH (m:Memory_vN {id: $id, user_id: $user_id})
WHERE m.state <> 'deleted'
WITH m, m.text AS old_text
SET m.text = coalesce($text, m.text), m.updated_at = datetime($at), m.last_event_id = $event_id
RETURN old_text
"""
_UNLINK_MENTIONS = "MATCH (:Memory_vN {id: $id})-[r:MENTIONS]->() DELETE r"
_FROM_EXTRACTOR = "MATCH (m:Memory_vN {id: $id}) SET m.entity_source = 'extractor', m.times = $times"
_DELETE_MEMORY = """
MATCH (m:Memory_vN {id: $id, user_id: $user_id})
WHERE m.state <> 'deleted'
SET m.state = 'deleted', m.updated_at = datetime($at), m.deleted_at = datetime($at), m.last_event_id = $event_id
RETURN m.id AS id
"""
_DELETE_SCOPE = """
MATCH (m:Memory_vN {user_id: $user_id})
WHERE m.state <> 'deleted'
  AND ($agent_id IS NULL OR m.agent_id = $agent_id)
  AND ($run_id IS NULL OR m.run_id = $run_id)
  AND ($app_id IS NULL OR m.app_id = $app_id)
SET m.state = 'deleted', m.updated_at = datetime($at), m.deleted_at = datetime($at), m.last_event_id = $event_id
RETURN m.id AS id
"""
# Forget, restore, archive a consolidation's sources: the state only, from the states given.
_SET_STATE = """
MATCH (m:Memory_vN)
WHERE m.id IN $ids AND m.user_id = $user_id AND m.state IN $from_states
SET m.state = $state, m.updated_at = datetime($at), m.last_event_id = $event_id
"""


class Neo4jGraphStore:
    """GraphWrites in `tx`, on `version`'s labels. `existing` (memory id -> user id: the batch's
    creates that exist already, read with the batch's first round trip) is kept up to date."""

    def __init__(self, tx: AsyncManagedTransaction, version: int, existing: dict[str, str]):
        self.tx, self.version, self.existing = tx, version, existing

    def _q(self, template: str) -> str:
        return versioned(template, self.version)

    async def create_memories(self, events: Sequence[MemoryCreated | MemoryConsolidated]) -> list[str]:
        """Memories with their mentions, relations and co-mentions in one round trip."""
        memories, mentions, relations, co_mentions = [], [], [], []
        for event in events:
            if event.memory_id in self.existing:
                continue  # created before (a create is never applied twice, even with a new event id)
            self.existing[event.memory_id] = event.user_id
            graph = memory_graph(event)
            memories.append(graph.memory)
            mentions += graph.mentions
            relations += graph.relations
            co_mentions += graph.co_mentions
        if memories:
            await run(self.tx, self._q(_CREATE_GRAPH), memories=memories, mentions=mentions, relations=relations,
                      co_mentions=co_mentions)
        return [m["id"] for m in memories]

    async def update_text(self, event: MemoryUpdated) -> str | None:
        found = await rows(self.tx, self._q(_UPDATE_MEMORY), id=event.memory_id, user_id=event.user_id,
                           text=event.text, at=event.occurred_at.isoformat(), event_id=event.event_id)
        return found[0]["old_text"] if found else None

    async def relink(self, event: MemoryUpdated) -> None:
        mentions, relations, times = extracted_graph(event.user_id, event.memory_id, event.text, event.occurred_at)
        await run(self.tx, self._q(_UNLINK_MENTIONS), id=event.memory_id)
        await run(self.tx, self._q(_FROM_EXTRACTOR), id=event.memory_id, times=times)
        if mentions:
            await run(self.tx, self._q(_MENTION), rows=mentions)
        if relations:
            await run(self.tx, self._q(_RELATE), rows=relations)

    async def delete_memory(self, event: MemoryDeleted) -> list[str]:
        found = await rows(self.tx, self._q(_DELETE_MEMORY), id=event.memory_id, user_id=event.user_id,
                           at=event.occurred_at.isoformat(), event_id=event.event_id)
        return [r["id"] for r in found]

    async def delete_scope(self, event: MemoryScopeDeleted) -> list[str]:
        found = await rows(self.tx, self._q(_DELETE_SCOPE), user_id=event.user_id, agent_id=event.agent_id,
                           run_id=event.run_id, app_id=event.app_id, at=event.occurred_at.isoformat(),
                           event_id=event.event_id)
        return [r["id"] for r in found]

    async def close_relations(self, memory_ids: Sequence[str], at: datetime) -> None:
        if memory_ids:
            await run(self.tx, self._q(_CLOSE_RELATIONS), ids=list(memory_ids), at=at.isoformat())

    async def set_state(self, event: Event, memory_ids: Sequence[str], to: str, from_states: Sequence[str]) -> None:
        await run(self.tx, self._q(_SET_STATE), ids=list(memory_ids), user_id=event.user_id, state=to,
                  from_states=list(from_states), at=event.occurred_at.isoformat(), event_id=event.event_id)

    async def erase_user(self, user_id: str) -> None:
        for statement in _ERASE_USER:
            await run(self.tx, self._q(statement), user_id=user_id)
        for memory_id in [m for m, owner in self.existing.items() if owner == user_id]:
            del self.existing[memory_id]


async def run(tx: AsyncManagedTransaction, query: str, **params: Any) -> None:
    result = await tx.run(query, params)
    await result.consume()


async def rows(tx: AsyncManagedTransaction, query: str, **params: Any) -> list[dict]:
    result = await tx.run(query, params)
    return await result.data()
