"""An in-memory double of the graph read model's writes (projectors/neo4j_projection.GraphWrites):
the nodes and relationships projectors/neo4j_store.py writes, in dicts, so every event's effect is
tested without a server (tests/unit/test_projections_neo4j.py) and the Cypher is held to the same
observable state (tests/integration/test_read_model_contract.py). Times are kept as datetimes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domain.events import Event, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated
from projectors.graph_rows import extracted_graph, memory_graph

_SCOPE = ("agent_id", "run_id", "app_id")


class InMemoryGraph:
    """GraphWrites over dicts: `users`, `memories` (id -> properties), `entities` ((user, key) ->
    {name, type}), `mentions` ((memory id, user, key)), `relates` (one dict per RELATES: user,
    source, target, type, memory_id, valid_from, valid_to) and `co_mentions` ((user, a, b) ->
    {weight, first_at, last_at})."""

    def __init__(self) -> None:
        self.users: set[str] = set()
        self.memories: dict[str, dict] = {}
        self.entities: dict[tuple[str, str], dict] = {}
        self.mentions: set[tuple[str, str, str]] = set()
        self.relates: list[dict] = []
        self.co_mentions: dict[tuple[str, str, str], dict] = {}

    async def create_memories(self, events: Sequence[MemoryCreated | MemoryConsolidated]) -> list[str]:
        created = []
        for event in events:
            if event.memory_id in self.memories:
                continue
            graph = memory_graph(event)
            self.users.add(event.user_id)
            row = graph.memory
            self.memories[event.memory_id] = {
                **{k: row[k] for k in ("id", "user_id", "text", "agent_id", "run_id", "app_id", "times",
                                       "entity_source")},
                "state": "active", "created_at": event.occurred_at, "updated_at": event.occurred_at,
                "occurred_at": datetime.fromisoformat(row["occurred_at"]), "last_event_id": event.event_id,
                "deleted_at": None}
            self._link(graph.mentions, graph.relations)
            for pair in graph.co_mentions:
                key = (pair["user_id"], pair["a"], pair["b"])
                at = datetime.fromisoformat(pair["at"])
                if key in self.co_mentions:
                    self.co_mentions[key].update(weight=self.co_mentions[key]["weight"] + 1, last_at=at)
                else:
                    self.co_mentions[key] = {"weight": 1, "first_at": at, "last_at": at}
            created.append(event.memory_id)
        return created

    async def update_text(self, event: MemoryUpdated) -> str | None:
        memory = self._own(event.user_id, event.memory_id)
        if memory is None or memory["state"] == "deleted":
            return None
        old_text = memory["text"]
        memory.update(text=event.text if event.text is not None else old_text, updated_at=event.occurred_at,
                      last_event_id=event.event_id)
        return old_text

    async def relink(self, event: MemoryUpdated) -> None:
        mentions, relations, times = extracted_graph(event.user_id, event.memory_id, event.text, event.occurred_at)
        self.mentions = {m for m in self.mentions if m[0] != event.memory_id}
        self.memories[event.memory_id].update(entity_source="extractor", times=times)
        self._link(mentions, relations)

    async def delete_memory(self, event: MemoryDeleted) -> list[str]:
        memory = self._own(event.user_id, event.memory_id)
        return self._mark_deleted([memory] if memory is not None else [], event)

    async def delete_scope(self, event: MemoryScopeDeleted) -> list[str]:
        return self._mark_deleted([m for m in self.memories.values() if m["user_id"] == event.user_id and all(
            getattr(event, name) is None or m[name] == getattr(event, name) for name in _SCOPE)], event)

    async def close_relations(self, memory_ids: Sequence[str], at: datetime) -> None:
        for relation in self.relates:
            if relation["memory_id"] in memory_ids and relation["valid_to"] is None:
                relation["valid_to"] = at

    async def set_state(self, event: Event, memory_ids: Sequence[str], to: str, from_states: Sequence[str]) -> None:
        for memory_id in memory_ids:
            memory = self._own(event.user_id, memory_id)
            if memory is not None and memory["state"] in from_states:
                memory.update(state=to, updated_at=event.occurred_at, last_event_id=event.event_id)

    async def erase_user(self, user_id: str) -> None:
        self.users.discard(user_id)
        self.memories = {k: m for k, m in self.memories.items() if m["user_id"] != user_id}
        self.entities = {k: e for k, e in self.entities.items() if k[0] != user_id}
        self.mentions = {m for m in self.mentions if m[1] != user_id}
        self.relates = [r for r in self.relates if r["user_id"] != user_id]
        self.co_mentions = {k: c for k, c in self.co_mentions.items() if k[0] != user_id}

    def _own(self, user_id: str, memory_id: str) -> dict | None:
        memory = self.memories.get(memory_id)
        return memory if memory is not None and memory["user_id"] == user_id else None

    def _mark_deleted(self, memories: list[dict], event: Event) -> list[str]:
        deleted = []
        for memory in memories:
            if memory["state"] != "deleted":
                memory.update(state="deleted", updated_at=event.occurred_at, deleted_at=event.occurred_at,
                              last_event_id=event.event_id)
                deleted.append(memory["id"])
        return deleted

    def _link(self, mentions: list[dict], relations: list[dict]) -> None:
        for mention in mentions:
            self.entities.setdefault((mention["user_id"], mention["key"]),
                                     {"name": mention["name"], "type": mention["type"]})
            self.mentions.add((mention["memory_id"], mention["user_id"], mention["key"]))
        for relation in relations:
            self.relates.append({"user_id": relation["user_id"], "source": relation["source"],
                                 "target": relation["target"], "type": relation["type"],
                                 "memory_id": relation["memory_id"],
                                 "valid_from": datetime.fromisoformat(relation["valid_from"]), "valid_to": None})
