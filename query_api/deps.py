"""What the query API's routes are given (bootstrap.py builds it): the use cases, and the few
ports the thin reads use directly (the pool, the graph, the caches' figures)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from adapters.http_auth import Authenticator
from application.freshness import Consistency, PostgresGuard
from application.reads import Reading
from application.search import Searching


@dataclass
class QueryDeps:
    searching: Searching
    reading: Reading
    postgres: PostgresGuard
    consistency: Consistency
    pool: Callable[[], asyncpg.Pool]
    embeddings: Any  # query_api/caches.EmbeddingCache: the embedder's id and dimension, the caches' hit ratios
    checks: Any  # what /readyz reports (bootstrap.query_dependencies)
    answers: Any = None  # query_api/caches.AnswerCache (its hit ratio)
    user_graph: Callable[..., Awaitable[dict]] | None = None
    auth: Authenticator = field(default_factory=lambda: Authenticator(None, required=False))
    past: Any = None  # application/as_of.PastReads (reads with `as_of`)
    profiles: Any = None  # application/profiles.Profiles (GET /v1/users/{id}/profile)
    core_memory: Any = None  # application/core_memory.CoreMemoryReads (GET /v1/core-memory...)
