"""The embedder port: what the command and query paths call to turn text into vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from prometheus_client import Histogram

# Every embed() call of the concrete embedders (a search's query, a write's texts, a batch).
EMBED_SECONDS = Histogram("recallstack_embed_seconds", "Time of each embed() call, by embedding model", ["model"],
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))


class EmbedderUnavailable(Exception):
    """The embedding backend cannot answer right now (connection refused, timeout, 5xx).

    Transient by nature: the API layer maps it to 503 with Retry-After.
    """


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # "sentence-transformers/all-MiniLM-L6-v2" locally, "openai:<model>" remotely
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised rows; an empty list gives shape (0, dim)."""
        ...

    def embed_one(self, text: str) -> np.ndarray:
        """(dim,) float32, unit norm."""
        ...


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation, same as torch.nn.functional.normalize (eps clamps the norm)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


def checked_texts(texts: Sequence[str]) -> list[str]:
    """The input of embed(), as a list, refusing what is not a sequence of strings."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of strings; use embed_one() for a single text")
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"embed() expects str items, got {type(t).__name__}")
    return texts
