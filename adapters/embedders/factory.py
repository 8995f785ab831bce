"""build_embedder(name, **opts) and build_query_embedder(documents, precision): the only constructors
the composition root uses."""

from __future__ import annotations

import importlib.util
from typing import Any

from .base import Embedder

EMBEDDERS = ("minilm", "openai")
QUERY_PRECISIONS = ("int8", "float32")


def build_embedder(name: str, **opts: Any) -> Embedder:
    """"minilm" -> local all-MiniLM-L6-v2 (opts: backend, threads, batch_size, cache_dir, spin, precision);
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


def build_query_embedder(documents: Embedder, precision: str = "int8", **opts: Any) -> Embedder:
    """What the query API embeds searches with. "int8" and MiniLM documents: the int8 MiniLM graph on
    one thread per query (concurrent searches use the other core), documents' vectors unchanged
    (adapters/embedders/_bert_int8.py, docs/search.md). Otherwise (float32, or another model) the
    documents' embedder itself. opts go to the int8 MiniLMEmbedder (spin, cache_dir)."""
    if precision not in QUERY_PRECISIONS:
        raise ValueError(f"unknown query precision {precision!r}; allowed values: {', '.join(QUERY_PRECISIONS)}")
    from .minilm import MODEL_ID, MiniLMEmbedder
    from .routed import QueryEmbedder

    if precision == "float32" or documents.model_id != MODEL_ID or importlib.util.find_spec("onnxruntime") is None:
        return documents
    return QueryEmbedder(MiniLMEmbedder(threads=1, precision="int8", **opts), documents)
