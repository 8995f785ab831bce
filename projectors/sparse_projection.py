"""What each event does to the sparse index's memory documents (no I/O: the committed
documents come through `Committed`, the changes collect in a `Changes`).

The same semantics as the Postgres read model (projectors/pg_projector.py):
- MemoryCreated: a new document (never over an id that exists, a tombstone included);
- MemoryConsolidated: the summary is created like a memory and, only when it is new, its
  sources of the same user that are active or forgotten become archived;
- MemoryUpdated: a new text replaces the old one (any state but deleted, the user's own);
  metadata, categories and importance are not in this index: such an update changes nothing;
- MemoryDeleted / MemoryScopeDeleted: the memory (every one of the user's matching the scope
  fields given) becomes a tombstone: id, user, state "deleted", nothing of its content;
- MemoryForgotten: active/archived -> forgotten; MemoryRestored: forgotten/archived -> active;
- UserErased: every document of the user goes, tombstones included (the projector then
  rewrites the version, so nothing of them stays in the index files).
Other events change nothing here (their position still advances).

Entity words are derived as the graph derives entities (projectors/neo4j_projector.py): a
create's or summary's event entities and relations (a relation's endpoints are entities too),
or, when it carries neither, the offline extractor on its text; a new text always goes
through the extractor; a metadata-only update keeps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from adapters.sparse_schema import MemoryDoc, micros
from domain import entities as extractor
from domain import index_terms
from domain.events import (Entity, Event, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, Relation, UserErased)
# The graph's own derivation of a memory's entities, so both read models name the same ones.
from projectors.graph_rows import graph_rows

MEMORY_EVENTS = (MemoryCreated, MemoryConsolidated, MemoryUpdated, MemoryDeleted, MemoryScopeDeleted, MemoryForgotten,
                 MemoryRestored, UserErased)


class Committed(Protocol):
    """The documents as the version's last commit holds them."""

    def get(self, memory_id: str) -> MemoryDoc | None: ...

    def of_user(self, user_id: str) -> Iterable[MemoryDoc]:
        """Every document of the user that is not a tombstone."""


def entity_words(user_id: str, memory_id: str, entities: Iterable[Entity], relations: Iterable[Relation],
                 at: datetime) -> tuple[str, ...]:
    mentions, _relations = graph_rows(user_id, memory_id, tuple(entities), tuple(relations), valid_from=at)
    return tuple(index_terms.entity_words(m["name"] for m in mentions))


def _created(event: MemoryCreated | MemoryConsolidated) -> MemoryDoc:
    happened = event.happened_at or event.occurred_at  # a v1 consolidation has none
    if event.entities or event.relations:
        ents, rels = event.entities, event.relations
    else:
        ents, rels = extractor.extract(event.text)
    return MemoryDoc(memory_id=event.memory_id, user_id=event.user_id, state="active", text=event.text,
                     agent_id=event.agent_id, run_id=event.run_id, app_id=event.app_id,
                     entities=entity_words(event.user_id, event.memory_id, ents, rels, happened),
                     occurred_us=micros(happened))


class Changes:
    """The documents one batch changes, applied in log order over the committed ones."""

    def __init__(self, committed: Committed):
        self.committed = committed
        self.changed: dict[str, MemoryDoc | None] = {}  # None: erased (gone without a tombstone)
        self.erased: set[str] = set()  # users erased in this batch: their committed documents are gone

    def get(self, memory_id: str) -> MemoryDoc | None:
        if memory_id in self.changed:
            return self.changed[memory_id]
        doc = self.committed.get(memory_id)
        return None if doc is None or doc.user_id in self.erased else doc

    def of_user(self, user_id: str) -> list[MemoryDoc]:
        """The user's documents that are not tombstones, as of this point of the batch."""
        docs = {} if user_id in self.erased else {d.memory_id: d for d in self.committed.of_user(user_id)}
        for memory_id, doc in self.changed.items():
            if doc is None or doc.user_id != user_id:
                docs.pop(memory_id, None)
            else:
                docs[memory_id] = doc
        return [d for d in docs.values() if d.state != "deleted"]

    def _own(self, event: Event, memory_id: str, states: tuple[str, ...]) -> MemoryDoc | None:
        doc = self.get(memory_id)
        return doc if doc is not None and doc.user_id == event.user_id and doc.state in states else None

    def apply(self, event: Event | None) -> None:
        if isinstance(event, (MemoryCreated, MemoryConsolidated)):
            if self.get(event.memory_id) is not None:
                return  # created before: a create never overwrites (nor does a second summary archive)
            self.changed[event.memory_id] = _created(event)
            if isinstance(event, MemoryConsolidated):
                for source_id in event.source_memory_ids:
                    source = self._own(event, source_id, ("active", "forgotten"))
                    if source is not None:
                        self.changed[source_id] = dataclasses.replace(source, state="archived")
        elif isinstance(event, MemoryUpdated):
            doc = self._own(event, event.memory_id, ("active", "archived", "forgotten"))
            if doc is not None and event.text is not None and event.text != doc.text:
                ents, rels = extractor.extract(event.text)
                self.changed[doc.memory_id] = dataclasses.replace(
                    doc, text=event.text,
                    entities=entity_words(doc.user_id, doc.memory_id, ents, rels, event.occurred_at))
        elif isinstance(event, MemoryDeleted):
            doc = self._own(event, event.memory_id, ("active", "archived", "forgotten"))
            if doc is not None:
                self.changed[doc.memory_id] = doc.tombstone()
        elif isinstance(event, MemoryScopeDeleted):
            for doc in self.of_user(event.user_id):
                if all(getattr(event, name) is None or getattr(doc, name) == getattr(event, name)
                       for name in ("agent_id", "run_id", "app_id")):
                    self.changed[doc.memory_id] = doc.tombstone()
        elif isinstance(event, (MemoryForgotten, MemoryRestored)):
            to, sources = (("forgotten", ("active", "archived")) if isinstance(event, MemoryForgotten)
                           else ("active", ("forgotten", "archived")))
            doc = self._own(event, event.memory_id, sources)
            if doc is not None:
                self.changed[doc.memory_id] = dataclasses.replace(doc, state=to)
        elif isinstance(event, UserErased):
            self.erased.add(event.user_id)
            for memory_id, doc in list(self.changed.items()):
                if doc is not None and doc.user_id == event.user_id:
                    self.changed[memory_id] = None


def referenced_ids(events: Iterable[Event | None]) -> set[str]:
    """The memory ids a batch's events name (read from the last commit together, in one query)."""
    ids: set[str] = set()
    for event in events:
        if isinstance(event, MEMORY_EVENTS) and hasattr(event, "memory_id"):
            ids.add(event.memory_id)
        if isinstance(event, MemoryConsolidated):
            ids.update(event.source_memory_ids)
    return ids
