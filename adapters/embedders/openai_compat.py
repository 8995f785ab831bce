"""Embeddings from any OpenAI-compatible /v1/embeddings endpoint (OpenAI, Ollama, vLLM, LM Studio, ...).

Transient backend failures (connection refused/reset, timeout, HTTP 5xx, 429, unparseable answer)
raise EmbedderUnavailable so the API layer answers 503; other 4xx (bad key, unknown model) raise
the openai exception unchanged, since retrying will not help.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import EMBED_SECONDS, EmbedderUnavailable, checked_texts, l2_normalize

# Native output sizes, so `dim` (used to size the pgvector column) needs no request for these.
KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
    "bge-m3": 1024,
}


class OpenAICompatibleEmbedder:
    def __init__(self, base_url: str | None = None, api_key: str | None = None,
                 model: str = "text-embedding-3-small", dimensions: int | None = None,
                 timeout: float = 30.0, batch_size: int = 256, max_retries: int = 1,
                 client: Any = None):
        """batch_size: inputs per request (OpenAI accepts up to 2048). dimensions: requested output size
        (only models that support shortening honour it); None keeps the model's native size, learnt
        from KNOWN_DIMS or, failing that, from one probe request the first time `dim` is read."""
        if not model:
            raise ValueError("the openai embedder needs a model name")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if dimensions is not None and dimensions < 1:
            raise ValueError("dimensions must be a positive integer or None")
        if client is None:
            from openai import OpenAI

            # Local servers ignore the key, but the client refuses to start without one.
            client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout,
                            max_retries=max_retries)
        self._client = client
        self.model = model
        self.model_id = f"openai:{model}"
        self.base_url = str(getattr(client, "base_url", base_url))
        self.dimensions = dimensions
        self.batch_size = batch_size
        self._dim: int | None = dimensions or KNOWN_DIMS.get(model)
        self._dim_lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._dim is None:
            with self._dim_lock:
                if self._dim is None:
                    self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = checked_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with EMBED_SECONDS.labels(self.model_id).time():
            parts = [self._request(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self._dim is None:
            self._dim = out.shape[1]
        elif out.shape[1] != self._dim:
            raise RuntimeError(f"{self.model_id} at {self.base_url} returned {out.shape[1]}-dimensional vectors, "
                               f"expected {self._dim} (check RECALLSTACK_EMBEDDER_MODEL / dimensions)")
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _request(self, chunk: list[str]) -> np.ndarray:
        import openai

        # The OpenAI API rejects empty strings; a single space embeds "nothing" instead of failing.
        payload = [t if t else " " for t in chunk]
        kwargs: dict[str, Any] = {"input": payload, "model": self.model, "encoding_format": "float"}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        where = f"{self.model_id} at {self.base_url}"
        try:
            response = self._client.embeddings.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise EmbedderUnavailable(f"embedding request to {where} timed out") from exc
        except openai.APIConnectionError as exc:
            raise EmbedderUnavailable(f"cannot reach the embedder {where}: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise EmbedderUnavailable(f"embedder {where} answered HTTP {exc.status_code}") from exc
            raise
        except openai.APIResponseValidationError as exc:
            raise EmbedderUnavailable(f"embedder {where} sent an unparseable answer: {exc}") from exc
        try:
            data = sorted(response.data, key=lambda d: d.index)
            vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
        except (AttributeError, TypeError, ValueError) as exc:
            raise EmbedderUnavailable(f"embedder {where} sent an unparseable answer: {exc}") from exc
        if vectors.ndim != 2 or len(vectors) != len(chunk) or not np.isfinite(vectors).all():
            raise EmbedderUnavailable(f"embedder {where} returned {len(vectors)} vectors "
                                      f"for {len(chunk)} inputs (or non-finite values)")
        return l2_normalize(vectors)

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder(model={self.model!r}, base_url={self.base_url!r})"
