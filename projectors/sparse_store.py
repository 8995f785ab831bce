"""The sparse index's documents as a batch sees them (projectors/sparse_projection.SparseDocuments):
the version's last commit, read through `TantivyCommitted`, with the batch's changes over it in
`Changes`, which projectors/sparse_projector.py then writes and commits in one Tantivy commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import tantivy

from adapters import sparse_schema
from adapters.sparse_schema import KIND_MEMORY, MemoryDoc, memory_from_stored


class Committed(Protocol):
    """The documents as the version's last commit holds them."""

    def get(self, memory_id: str) -> MemoryDoc | None: ...

    def of_user(self, user_id: str) -> Iterable[MemoryDoc]:
        """Every document of the user that is not a tombstone."""


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

    def put(self, doc: MemoryDoc) -> None:
        self.changed[doc.memory_id] = doc

    def erase_user(self, user_id: str) -> None:
        self.erased.add(user_id)
        for memory_id, doc in list(self.changed.items()):
            if doc is not None and doc.user_id == user_id:
                self.changed[memory_id] = None


class TantivyCommitted:
    """Committed: the documents of the version's last commit, read with one searcher."""

    def __init__(self, searcher: tantivy.Searcher):
        self.searcher = searcher
        self.known: dict[str, MemoryDoc | None] = {}

    def prefetch(self, memory_ids: Iterable[str]) -> None:
        wanted = [i for i in set(memory_ids) if i not in self.known]
        if not wanted:
            return
        query = tantivy.Query.term_set_query(sparse_schema.schema(), "memory_id", wanted)
        for _score, address in self.searcher.search(query, limit=len(wanted), count=False).hits:
            doc = memory_from_stored(self.searcher.doc(address).to_dict())
            self.known[doc.memory_id] = doc
        for memory_id in wanted:
            self.known.setdefault(memory_id, None)

    def get(self, memory_id: str) -> MemoryDoc | None:
        if memory_id not in self.known:
            self.prefetch([memory_id])
        return self.known[memory_id]

    def of_user(self, user_id: str) -> list[MemoryDoc]:
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, sparse_schema.term("user_id", user_id)),
            (tantivy.Occur.Must, sparse_schema.term("kind", KIND_MEMORY)),
            (tantivy.Occur.MustNot, sparse_schema.term("state", "deleted"))])
        total = self.searcher.search(query, limit=1, count=True).count
        if not total:
            return []
        return [memory_from_stored(self.searcher.doc(address).to_dict())
                for _score, address in self.searcher.search(query, limit=total, count=False).hits]
