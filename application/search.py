"""The search use cases: a hybrid search and a context block, with read-your-writes. No HTTP here.

A search waits (bounded) until Postgres applied the request's consistency token; the graph
gets a short grace beyond Postgres and is left out (named in `degraded`) when it lags; the
answer cache and the sparse index get one look, no wait: one that has not applied the token
is bypassed (the answer is computed) or stood in for by Postgres full-text, exactly (a Tantivy
commit, ~40 ms of fsyncs, would otherwise make every read-your-writes search wait for it).
Reads that return memories record a MemoryAccessed in the background (the `access` port).

The ports are Protocols below, injected by bootstrap.py (query_app): the search engine
(query_api/search.py HybridSearch), the embedding cache, the answer cache, the access log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from application.freshness import Consistency, PostgresGuard, PostgresUnavailable
from application.reranking import Reranking
from domain import query_terms, temporal
from domain.consistency import ConsistencyToken
from domain import core_memory

SOURCES = ("dense", "sparse", "temporal", "graph")
SEARCH_OPTIONS = frozenset({"threshold", "sources", "weights", "rrf_k", "mmr", "temporal", "cache", "explain",
                            "rerank"})


@dataclass
class Query:
    """What the search engine looks for. `scope` is the read model's (query_api/pg_reads.Scope:
    user_id, fields, filters, include_archived)."""
    text: str
    scope: Any
    limit: int
    threshold: float | None
    reference_time: datetime
    sources: tuple[str, ...] = SOURCES
    weights: dict[str, float] = field(default_factory=dict)
    rrf_k: int | None = None
    mmr: bool = False
    temporal_mode: str = "boost"  # boost | filter | off
    include_shared: bool = False  # also memories other users shared with this one


@dataclass
class Outcome:
    results: list[dict]
    degraded: list[dict]
    timings_ms: dict[str, float]
    explain: dict[str, Any]
    window: temporal.TimeWindow | None
    postgres_down: bool = False  # answered without it (Redis showed what sparse and graph found)


class SourceFailed(Exception):
    """No search source could answer."""


def reads_graph(sources: Iterable[str], names: list[str]) -> bool:
    """Whether a search can query the graph: it asks for the graph and its query names someone
    (query_terms.names), the graph being seeded with names only. A read-your-writes search
    waits for the graph only then."""
    return "graph" in sources and bool(names)


class SearchEngine(Protocol):
    def can_do_without_postgres(self, query: Query) -> bool: ...

    async def run(self, query: Query, vector_task: Awaitable[Any], graph_allowed: bool = True,
                  graph_reason: str | None = None, sparse_fresh: bool = True, postgres_up: bool = True) -> Outcome: ...


class Embeddings(Protocol):
    async def embed(self, text: str) -> tuple[Any, str]:
        """(the query's vector, where it came from: model, lru, redis)."""


class Answers(Protocol):
    """The answer cache (query_api/caches.AnswerCache)."""

    def request_key(self, parts: dict) -> str: ...

    def saw(self, offsets: Iterable[tuple[int, int]]) -> None: ...

    async def lookup(self, user_id: str, request_key: str) -> tuple[dict | None, Any]: ...

    async def store(self, slot: Any, answer: dict, pg_applied: dict[int, int]) -> bool: ...


class AccessLog(Protocol):  # adapters/access_log.py AccessRecorder
    def record(self, user_id: str, memory_ids: list[str], source: str, query: str | None = None) -> None: ...


class NoAccessLog:
    def record(self, user_id: str, memory_ids: list[str], source: str, query: str | None = None) -> None:
        pass


@dataclass(frozen=True)
class Search:
    """One search request: the engine's query, the request's raw `filters` and `options`
    (SEARCH_OPTIONS: they key the answer cache) and its consistency token."""
    query: Query
    filters: dict | None = None
    options: dict = field(default_factory=dict)
    consistency_token: str | None = None
    # `rerank` asked for with no reranker configured: True notes it in `degraded` (mem0's route: its
    # clients send it by habit), False refuses the search (application/reranking.py).
    rerank_optional: bool = False


@dataclass
class Found:
    answer: dict  # results, degraded, cache (explain, timings_ms with `explain`)
    timings_ms: dict[str, float]  # where the time went, `total` included (the Server-Timing header)


@dataclass
class _CacheLookup:
    state: str = "off"  # off | bypassed | hit | miss | unavailable: <error>
    answer: dict | None = None
    slot: Any = None  # where to store the computed answer (None: it is not stored)


@dataclass
class Searching:
    """The search and context use cases and the ports they need."""
    engine: SearchEngine
    embeddings: Embeddings
    consistency: Consistency
    postgres: PostgresGuard
    answers: Answers | None = None
    cache_errors: tuple[type[BaseException], ...] = ()  # what a failed answer-cache lookup raises
    background: Callable[[Awaitable], None] = asyncio.ensure_future  # the cache store, after the answer
    access: AccessLog = field(default_factory=NoAccessLog)
    count_tokens: Callable[[str, str], int] | None = None  # (encoding, text) -> tokens
    reranking: Reranking = field(default_factory=Reranking)  # the optional stage after fusion (`rerank`)
    # (user_id, agent_id) -> the core memory blocks placed first in a context (application/core_memory.py)
    core_blocks: Callable[[str, str | None], Awaitable[list]] | None = None

    async def search(self, search: Search) -> Found:
        """The ranked memories; their owner's access recorded (a grantee's read of a shared
        memory is not the owner's recall)."""
        found = await self.find(search)
        q = search.query
        self.access.record(q.scope.user_id, [r["id"] for r in found.answer["results"] if "shared" not in r],
                           "search", q.text)
        return found

    async def context(self, search: Search, max_tokens: int, encoding: str) -> tuple[dict, Found]:
        """A block of the best memories within `max_tokens` (counted in `encoding`): (answer, found)."""
        found = await self.find(search)
        results = found.answer["results"]
        count = self.count_tokens or (lambda _enc, text: len(text.split()))
        ranked = [{**r, "occurred_at": datetime.fromisoformat(r["occurred_at"])} for r in results]
        by_id = {r["id"]: r for r in results}
        q = search.query
        # Core memory blocks first, whole, within the budget; the memories in what is left (domain/core_memory.py).
        blocks, degraded = await self._core_blocks(q)
        core = core_memory.core_section(blocks, max_tokens, lambda text: count(encoding, text))
        text, tokens, block = core_memory.with_core(core.text, ranked, max_tokens, lambda text: count(encoding, text))
        self.access.record(q.scope.user_id, [i for i in block.included if "shared" not in by_id[i]], "context", q.text)
        return {"context": text, "tokens": tokens, "max_tokens": max_tokens, "encoding": encoding,
                "core": [{"label": b.label, "agent_id": b.agent_id} for b in core.included],
                "core_omitted": [{"label": b.label, "agent_id": b.agent_id} for b in core.omitted],
                "memories": [by_id[i] for i in block.included], "omitted": block.omitted,
                "degraded": [*found.answer["degraded"], *degraded]}, found

    async def _core_blocks(self, q: Query) -> tuple[list, list[dict]]:
        """The user's core memory blocks for the context (user-wide, then the scope's agent's); none,
        named in `degraded`, when Postgres cannot answer (the memories may still come from Redis)."""
        if self.core_blocks is None:
            return [], []
        try:
            return await self.core_blocks(q.scope.user_id, q.scope.fields.get("agent_id")), []
        except PostgresUnavailable as exc:
            return [], [{"source": "core_memory", "reason": str(exc)}]

    async def find(self, search: Search) -> Found:
        """The answer once the read models it uses applied the token: from the answer cache when
        it has it, else computed (and stored in the cache after the answer)."""
        began = time.perf_counter()
        q, token, options = search.query, search.consistency_token, search.options
        rerank = self.reranking.wanted(options, search.rerank_optional)  # refused before any work
        embedding = _Embedding(self.embeddings, q.text)
        # Waited for only by a search that can read the graph (names: ~0.1 ms of regexes).
        graph_read = bool(token) and reads_graph(q.sources, query_terms.names(q.text))
        graph_wait = asyncio.create_task(self.consistency.lag(token if graph_read else None, "neo4j"))
        applied_task: asyncio.Future | None = None
        try:
            needed = not self.engine.can_do_without_postgres(q)
            await self.consistency.postgres_applied(token, self.postgres, needed=needed)
            if token and self.answers is not None:  # valid: the wait checked it
                self.answers.saw(ConsistencyToken.decode(token).offsets)
            graph_problem, cache_problem, sparse_problem = await asyncio.gather(
                self.consistency.within_grace(graph_wait, "neo4j"),
                self.consistency.lag(token, "redis", wait_ms=0), self.consistency.lag(token, "sparse", wait_ms=0))
            cache = await self._cached(search, graph_problem is None, cache_problem)
            if cache.answer is not None:
                embedding.task.cancel()
                return Found({**cache.answer, "cache": "hit"}, _with_total({"cache": _ms(began)}, began))
            if cache.slot is not None:  # read beside the search, not before it
                applied_task = asyncio.ensure_future(self.postgres.read(self.consistency.postgres()))
            engine_q = dataclasses.replace(q, limit=self.reranking.depth(q.limit)) if rerank else q
            outcome = await self._outcome(engine_q, embedding.vector(), graph_problem, sparse_problem)
            if rerank:
                outcome = await self.reranking.applied(q.text, outcome, q.limit)
            pg_applied = await _applied(applied_task)
        finally:
            for task in (embedding.task, graph_wait, applied_task):
                if task is not None:
                    task.cancel()
        answer = {"results": outcome.results, "degraded": outcome.degraded, "cache": cache.state}
        timings = {"embed": embedding.ms.get("embed", 0.0), **outcome.timings_ms}
        if options.get("explain"):
            answer["explain"] = {**outcome.explain, "embedding_from": embedding.ms.get("origin"),
                                 "reference_time": q.reference_time.isoformat()}
            answer["timings_ms"] = timings
        if cache.slot is not None and not outcome.degraded and pg_applied is not None:
            self.background(self.answers.store(cache.slot, {k: v for k, v in answer.items() if k != "cache"},
                                               pg_applied))
        return Found(answer, _with_total(timings, began))

    async def _cached(self, search: Search, graph_used: bool, cache_problem: str | None) -> _CacheLookup:
        """The cached answer, if any. Not with shared memories: an owner's change moves the
        owner's offsets, which the grantee's cached answer is not keyed on."""
        q, options = search.query, search.options
        if self.answers is None or not options.get("cache", True) or options.get("explain") or q.include_shared:
            return _CacheLookup()
        if cache_problem:
            return _CacheLookup("bypassed")
        key = self.answers.request_key({
            "q": q.text, "scope": q.scope.fields, "filters": search.filters, "limit": q.limit,
            "archived": q.scope.include_archived,
            "options": {k: v for k, v in options.items() if k not in ("cache", "explain")},
            "graph": graph_used,
            "day": q.reference_time.date().isoformat(),  # relative times depend on 'now'
            # Processes may differ in their reranker (a change of model, one without): its answer is its own.
            **({"reranker": self.reranking.identity()} if options.get("rerank") else {}),
        })
        try:
            cached, slot = await self.answers.lookup(q.scope.user_id, key)
        except self.cache_errors as exc:
            return _CacheLookup(f"unavailable: {type(exc).__name__}")
        return _CacheLookup("hit" if cached else "miss", cached, slot)

    async def _outcome(self, q: Query, vector: asyncio.Future, graph_problem: str | None,
                       sparse_problem: str | None) -> Outcome:
        """The engine's answer; Postgres's breaker told how it went."""
        breaker = self.postgres.breaker
        try:
            outcome = await self.engine.run(q, vector, graph_allowed=graph_problem is None,
                                            graph_reason=f"Neo4j {graph_problem}" if graph_problem else None,
                                            sparse_fresh=sparse_problem is None, postgres_up=breaker.state != "open")
        except self.postgres.failures as exc:
            raise self.postgres.down(exc) from exc
        if outcome.postgres_down:  # answered from the other sources and Redis: Postgres still counts as down
            if breaker.state != "open":
                breaker.record_failure()
        else:
            breaker.record_success()
        return outcome


class _Embedding:
    """The query's vector, computed from the start of the request (beside the token waits)."""

    def __init__(self, embeddings: Embeddings, text: str):
        self.began = time.perf_counter()
        self.task = asyncio.ensure_future(self._vector(embeddings, text))
        self.ms: dict[str, Any] = {}

    async def _vector(self, embeddings: Embeddings, text: str):
        result, origin = await embeddings.embed(text)
        self.ms.setdefault("embed", _ms(self.began))
        self.ms.setdefault("origin", origin)
        return result

    def vector(self) -> asyncio.Future:
        return self.task


async def _applied(task: asyncio.Future | None) -> dict[int, int] | None:
    """Postgres's positions read beside the search (where the answer cache files it); None: not
    asked, or Postgres is down (answered all the same, not cached)."""
    if task is None:
        return None
    try:
        return await task
    except PostgresUnavailable:
        return None


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 2)


def _with_total(timings: dict[str, float], began: float) -> dict[str, float]:
    return {**timings, "total": _ms(began)}
