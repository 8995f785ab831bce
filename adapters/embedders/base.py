"""The embedder port: what the command and query paths call to turn text into vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


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
