"""Route small requests and bulk requests to differently threaded embedders.

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
