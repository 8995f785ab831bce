"""What each event does to the sparse index's memory documents, apart from Tantivy and versions.

`project(docs, event)` maps an event, by its type (`HANDLERS`, as the eventsourcing library's
process_event), to reads and writes of `SparseDocuments`: a batch's overlay over the version's
last commit (projectors/sparse_store.Changes, committed by projectors/sparse_projector.py) or
the in-memory double (projectors/in_memory_sparse.py, for unit tests).

The same semantics as the Postgres read model (projectors/pg_projection.py):
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
Other events (access, conversations, identity, user profiles) change nothing here (their position
still advances).

Entity words are derived as the graph derives entities (projectors/graph_rows.py): a
create's or summary's event entities and relations (a relation's endpoints are entities too),
or, when it carries neither, the offline extractor on its text; a new text always goes
through the extractor; a metadata-only update keeps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from adapters.sparse_doc import MemoryDoc, micros
from domain import entities as extractor
from domain import index_terms
from domain.events import (Entity, Event, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryExpired,
                           MemoryForgotten, MemoryRestored, MemoryScopeDeleted, MemoryUpdated, Relation, UserErased)
# The graph's own derivation of a memory's entities, so both read models name the same ones.
from projectors.graph_rows import graph_rows


def entity_words(user_id: str, memory_id: str, entities: Iterable[Entity], relations: Iterable[Relation],
                 at: datetime) -> tuple[str, ...]:
    mentions, _relations = graph_rows(user_id, memory_id, tuple(entities), tuple(relations), valid_from=at)
    return tuple(index_terms.entity_words(m["name"] for m in mentions))


def new_document(event: MemoryCreated | MemoryConsolidated) -> MemoryDoc:
    happened = event.happened_at or event.occurred_at  # a v1 consolidation has none
    if event.entities or event.relations:
        ents, rels = event.entities, event.relations
    else:
        ents, rels = extractor.extract_with_topics(event.text)
    return MemoryDoc(memory_id=event.memory_id, user_id=event.user_id, state="active", text=event.text,
                     agent_id=event.agent_id, run_id=event.run_id, app_id=event.app_id,
                     entities=entity_words(event.user_id, event.memory_id, ents, rels, happened),
                     occurred_us=micros(happened), context=getattr(event, "context", None) or "")


class SparseDocuments(Protocol):
    """The memory documents of one version, as a projection reads and writes them."""

    def get(self, memory_id: str) -> MemoryDoc | None:
        """The document (a tombstone included); None when there is none, or its user was erased."""

    def of_user(self, user_id: str) -> Iterable[MemoryDoc]:
        """Every document of the user that is not a tombstone."""

    def put(self, doc: MemoryDoc) -> None:
        """The document replaces the one with its id (a tombstone: state "deleted", no content)."""

    def erase_user(self, user_id: str) -> None:
        """Every document of the user goes, tombstones included."""


def _own(docs: SparseDocuments, event: Event, memory_id: str, states: tuple[str, ...]) -> MemoryDoc | None:
    doc = docs.get(memory_id)
    return doc if doc is not None and doc.user_id == event.user_id and doc.state in states else None


def _created(docs: SparseDocuments, event: MemoryCreated | MemoryConsolidated) -> bool:
    if docs.get(event.memory_id) is not None:
        return False  # created before: a create never overwrites (a tombstone included)
    docs.put(new_document(event))
    return True


def _consolidated(docs: SparseDocuments, event: MemoryConsolidated) -> None:
    if not _created(docs, event):
        return  # only a new summary archives its sources
    for source_id in event.source_memory_ids:
        source = _own(docs, event, source_id, ("active", "forgotten"))
        if source is not None:
            docs.put(dataclasses.replace(source, state="archived"))


def _updated(docs: SparseDocuments, event: MemoryUpdated) -> None:
    doc = _own(docs, event, event.memory_id, ("active", "archived", "forgotten"))
    if doc is not None and event.text is not None and event.text != doc.text:
        ents, rels = extractor.extract_with_topics(event.text)
        docs.put(dataclasses.replace(doc, text=event.text,
                                     entities=entity_words(doc.user_id, doc.memory_id, ents, rels, event.occurred_at)))


def _deleted(docs: SparseDocuments, event: MemoryDeleted) -> None:
    doc = _own(docs, event, event.memory_id, ("active", "archived", "forgotten"))
    if doc is not None:
        docs.put(doc.tombstone())


def _scope_deleted(docs: SparseDocuments, event: MemoryScopeDeleted) -> None:
    for doc in list(docs.of_user(event.user_id)):
        if all(getattr(event, name) is None or getattr(doc, name) == getattr(event, name)
               for name in ("agent_id", "run_id", "app_id")):
            docs.put(doc.tombstone())


def _moved(to: str, from_states: tuple[str, ...]) -> Callable[[SparseDocuments, Event], None]:
    def handler(docs: SparseDocuments, event: MemoryForgotten | MemoryRestored) -> None:
        doc = _own(docs, event, event.memory_id, from_states)
        if doc is not None:
            docs.put(dataclasses.replace(doc, state=to))
    return handler


HANDLERS: dict[type, Callable[[SparseDocuments, Any], None]] = {
    MemoryCreated: _created,
    MemoryConsolidated: _consolidated,
    MemoryUpdated: _updated,
    MemoryDeleted: _deleted,
    MemoryScopeDeleted: _scope_deleted,
    MemoryForgotten: _moved("forgotten", ("active", "archived")),
    MemoryExpired: _moved("forgotten", ("active", "archived")),  # an expiry hides a memory as forgetting does
    MemoryRestored: _moved("active", ("forgotten", "archived")),
    UserErased: lambda docs, event: docs.erase_user(event.user_id),
}
MEMORY_EVENTS = tuple(HANDLERS)


def project(docs: SparseDocuments, event: Event | None) -> None:
    handler = HANDLERS.get(type(event))
    if handler is not None:
        handler(docs, event)


def referenced_ids(events: Iterable[Event | None]) -> set[str]:
    """The memory ids a batch's events name (read from the last commit together, in one query)."""
    ids: set[str] = set()
    for event in events:
        if type(event) in MEMORY_EVENTS:
            ids.update(filter(None, [getattr(event, "memory_id", None), *getattr(event, "source_memory_ids", ())]))
    return ids
