"""Text embedders: local all-MiniLM-L6-v2 without torch (default) and OpenAI-compatible endpoints."""

from .base import Embedder, EmbedderUnavailable
from .factory import EMBEDDERS, QUERY_PRECISIONS, build_embedder, build_query_embedder

__all__ = ["EMBEDDERS", "QUERY_PRECISIONS", "Embedder", "EmbedderUnavailable", "build_embedder",
           "build_query_embedder"]
