"""The rows a memory adds to the graph read model (projectors/neo4j_store.py and its double,
projectors/in_memory_graph.py), computed from its entities and relations without I/O: entity
keys, MENTIONS and RELATES rows, its times (properties, not entities) and its co-mention pairs.
The sparse index reads entity names the same way (projectors/sparse_projection.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain import entities as extractor
from domain.events import Entity, MemoryConsolidated, MemoryCreated, Relation

__all__ = ["CO_MENTION_ENTITIES", "MAX_INDEXED_BYTES", "TIME_TYPES", "MemoryGraph", "co_mention_rows", "entity_key",
           "extracted_graph", "graph_rows", "memory_graph", "split_times"]


def _norm_name(name: str) -> str:
    return " ".join(str(name).split())


def _norm_type(type_: str) -> str:
    return re.sub(r"\W+", "_", str(type_).strip().lower()).strip("_") or "other"


def entity_key(name: str, type_: str) -> str:
    """The per-user identity of an entity: lower(name) + "|" + type."""
    return f"{_norm_name(name).lower()}|{_norm_type(type_)}"


# Neo4j refuses a property value over about 8 KB in a range index ("Property value is too large
# to index"): an entity whose key would be longer (a 20,000-character URL or backticked blob in a
# memory's text) is left out of the graph, with its relations, rather than failing the event.
MAX_INDEXED_BYTES = 4_000


def _indexable(value: str) -> bool:
    return len(value) * 4 <= MAX_INDEXED_BYTES or len(value.encode("utf-8", "surrogatepass")) <= MAX_INDEXED_BYTES


# Times are properties of the memory (`Memory.times`), not entities: "yesterday" or "May 2023"
# as nodes would join unrelated memories and crowd the graph.
TIME_TYPES = frozenset({"date"})
# Co-mentions of a memory: pairs of its first entities (at most 28 pairs a memory).
CO_MENTION_ENTITIES = 8


# Nor are amounts nodes: "a few days", "$20" or "3 people" would join unrelated memories too.
NOT_NODES = TIME_TYPES | {"quantity"}


def split_times(entities: Sequence[Entity], relations: Sequence[Relation]
                ) -> tuple[tuple[Entity, ...], tuple[Relation, ...], list[str]]:
    """The entities that are nodes (neither times nor quantities), the relations between them,
    and the times' names."""
    times = [e.name for e in entities if _norm_type(e.type) in TIME_TYPES]
    names = {_norm_name(e.name).lower() for e in entities if _norm_type(e.type) in NOT_NODES}
    return (tuple(e for e in entities if _norm_type(e.type) not in NOT_NODES),
            tuple(r for r in relations if not {_norm_name(r.source).lower(), _norm_name(r.target).lower()} & names),
            times)


def co_mention_rows(mentions: Sequence[dict], at: datetime) -> list[dict]:
    """One row per pair of the memory's first CO_MENTION_ENTITIES entities (its nodes: split_times
    left out times and amounts), in a fixed direction (the smaller key first) so a pair is one
    relationship."""
    keys = [m["key"] for m in mentions][:CO_MENTION_ENTITIES]
    return [{"user_id": mentions[0]["user_id"], "a": min(a, b), "b": max(a, b), "at": at.isoformat()}
            for i, a in enumerate(keys) for b in keys[i + 1:]]


def graph_rows(user_id: str, memory_id: str, entities: Sequence[Entity], relations: Sequence[Relation],
                valid_from: datetime) -> tuple[list[dict], list[dict]]:
    """MENTIONS rows (one per distinct entity) and RELATES rows (one per distinct relation);
    an entity or relation type too long to index is left out."""
    mentions: list[dict] = []
    keys: set[str] = set()
    by_name: dict[str, str] = {}  # lower(name) -> key of the first entity with that name

    def mention(name: str, type_: str) -> str | None:
        name = _norm_name(name)
        if not name:
            return None
        key = entity_key(name, type_)
        if not _indexable(key):
            return None
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
        type_ = _norm_type(relation.type)
        if not _indexable(type_):
            continue
        source, target = (by_name.get(_norm_name(name).lower()) or mention(name, "other")
                          for name in (relation.source, relation.target))
        if source is None or target is None or source == target or (source, type_, target) in seen:
            continue
        seen.add((source, type_, target))
        rows.append({"user_id": user_id, "memory_id": memory_id, "source": source, "target": target,
                     "type": type_, "valid_from": valid_from.isoformat()})
    return mentions, rows


@dataclass(frozen=True)
class MemoryGraph:
    """What a created memory (or a consolidation's summary) adds to the graph."""
    memory: dict  # the Memory node's properties (times as ISO 8601 strings)
    mentions: list[dict]
    relations: list[dict]
    co_mentions: list[dict]


def memory_graph(event: MemoryCreated | MemoryConsolidated) -> MemoryGraph:
    """The event's entities and relations or, when it carries neither (every v1 event), the offline
    extractor's from its text; the relations hold from when the memory happened."""
    if event.entities or event.relations:
        ents, rels, source = event.entities, event.relations, "event"
    else:
        (ents, rels), source = extractor.extract_with_topics(event.text), "extractor"
    happened = event.happened_at or event.occurred_at  # a v1 consolidation has none
    ents, rels, times = split_times(ents, rels)
    mentions, relations = graph_rows(event.user_id, event.memory_id, ents, rels, valid_from=happened)
    memory = {"id": event.memory_id, "user_id": event.user_id, "text": event.text,
              "created_at": event.occurred_at.isoformat(), "occurred_at": happened.isoformat(),
              "agent_id": event.agent_id, "run_id": event.run_id, "app_id": event.app_id,
              "entity_source": source, "event_id": event.event_id, "times": times}
    return MemoryGraph(memory, mentions, relations, co_mention_rows(mentions, at=event.occurred_at))


def extracted_graph(user_id: str, memory_id: str, text: str, valid_from: datetime
                    ) -> tuple[list[dict], list[dict], list[str]]:
    """A new text's mentions, relations and times, from the offline extractor (an update carries no entities)."""
    ents, rels, times = split_times(*extractor.extract_with_topics(text))
    mentions, relations = graph_rows(user_id, memory_id, ents, rels, valid_from=valid_from)
    return mentions, relations, times
