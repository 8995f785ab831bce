"""Route requests to differently set up embedders of one vector space: by size (threads), by role (queries).

On a small machine serving many concurrent requests, one thread per embedding keeps
both cores busy with different requests; a large batch is faster split over all cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Embedder


class SizeRoutedEmbedder:
    def __init__(self, small: Embedder, bulk: Embedder, cutoff: int = 8):
        if (small.model_id, small.dim) != (bulk.model_id, bulk.dim):
            raise ValueError("both embedders must be the same model")
        self.small, self.bulk, self.cutoff = small, bulk, cutoff
        self.model_id, self.dim = small.model_id, small.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return (self.small if len(texts) <= self.cutoff else self.bulk).embed(texts)

    def embed_one(self, text: str) -> np.ndarray:
        return self.small.embed_one(text)


class QueryEmbedder:
    """The query API's embedder: a search's text through `queries`, a faster runtime whose vectors
    search `documents`' space (the int8 MiniLM graph for float32 MiniLM documents), any list of
    texts through `documents`.

    model_id is the documents' (the space searched: what stored vectors carry, what GET /v1/embedder
    reports); vector_id names what made a query's vector (the query embedding cache keys on it)."""

    def __init__(self, queries: Embedder, documents: Embedder):
        space = getattr(queries, "space_id", queries.model_id)
        if (space, queries.dim) != (documents.model_id, documents.dim):
            raise ValueError(f"{queries.model_id} does not embed into {documents.model_id}'s space")
        self.queries, self.documents = queries, documents
        self.model_id, self.dim = documents.model_id, documents.dim
        self.vector_id = queries.model_id

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.documents.embed(texts)

    def embed_one(self, text: str) -> np.ndarray:
        return self.queries.embed_one(text)
