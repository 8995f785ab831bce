"""An in-memory double of the sparse index's documents (projectors/sparse_projection.SparseDocuments):
one version's memory documents in a dict, written at once (no batch overlay, no commit), so every
event's effect is tested without Tantivy (tests/unit/test_projections_sparse.py) and the index is held
to the same observable state (tests/integration/test_read_model_contract.py)."""

from __future__ import annotations

from adapters.sparse_doc import MemoryDoc


class InMemorySparse:
    """SparseDocuments over `docs` (memory id -> document, tombstones included)."""

    def __init__(self) -> None:
        self.docs: dict[str, MemoryDoc] = {}

    def get(self, memory_id: str) -> MemoryDoc | None:
        return self.docs.get(memory_id)

    def of_user(self, user_id: str) -> list[MemoryDoc]:
        return [d for d in self.docs.values() if d.user_id == user_id and d.state != "deleted"]

    def put(self, doc: MemoryDoc) -> None:
        self.docs[doc.memory_id] = doc

    def erase_user(self, user_id: str) -> None:
        self.docs = {k: d for k, d in self.docs.items() if d.user_id != user_id}
