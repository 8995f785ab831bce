"""build_embedder(name, **opts): the only constructor the composition root uses."""

from __future__ import annotations

from typing import Any

from .base import Embedder

EMBEDDERS = ("minilm", "openai")


def build_embedder(name: str, **opts: Any) -> Embedder:
    """"minilm" -> local all-MiniLM-L6-v2 (opts: backend, threads, batch_size, cache_dir);
    "openai" -> any OpenAI-compatible /v1/embeddings endpoint
    (opts: base_url, api_key, model, dimensions=None, timeout, batch_size)."""
    key = (name or "").strip().lower()
    if key == "minilm":
        from .minilm import MiniLMEmbedder

        return MiniLMEmbedder(**opts)
    if key == "openai":
        from .openai_compat import OpenAICompatibleEmbedder

        return OpenAICompatibleEmbedder(**opts)
    raise ValueError(f"unknown embedder {name!r}; allowed values: {', '.join(EMBEDDERS)}")
