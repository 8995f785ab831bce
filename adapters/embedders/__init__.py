"""Text embedders: local all-MiniLM-L6-v2 without torch (default) and OpenAI-compatible endpoints."""

from .base import Embedder, EmbedderUnavailable
from .factory import EMBEDDERS, build_embedder

__all__ = ["EMBEDDERS", "Embedder", "EmbedderUnavailable", "build_embedder"]
