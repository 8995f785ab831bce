"""Hybrid search: four sources in parallel, each with its own time budget, fused with RRF.

    dense     pgvector HNSW (cosine) over the scope, iterative scans so filters cannot starve it
    sparse    BM25 on the sparse index (Tantivy, a read model of its own) plus fuzzy matches of
              names/identifiers; Okapi BM25 over Postgres full-text vectors and trigrams where
              the index cannot answer (a filter tree, shared memories, a consistency token it
              has not applied yet, the index unavailable)
    temporal  when the query names a time ("last week", "in May 2023", "two days before the
              meeting"): the memories that happened in that window, nearest first
    graph     entities named in the query, their neighbours within two hops in Neo4j, and the
              memories that mention them

The answer: RRF over the sources that answered (weights and k configurable), then an
importance/recency boost, optional MMR, `threshold` on the cosine similarity to the query,
`limit`. A source that fails or misses its budget is left out and named in `degraded`.

Waste avoided: sparse and graph start while the query is embedded; the graph source is
skipped when the user has no entity named like a word of the query's names (the sparse
index knows each memory's entity words: no Neo4j round trip); each Postgres source is one
round trip (pg_reads.SearchSession); the dense rows come back whole, so only the other
sources' hits are hydrated.

Postgres down: a search that needs nothing else of it (no filter tree, shared memories,
threshold or MMR) ranks with the sparse index and the graph and shows what they found from
the Redis read model (query_api/cache_reads.py), dense and temporal named in `degraded`;
while Postgres's circuit is open they are not even tried. Finding nothing then is a 503, not
an empty answer.

With `include_shared`, the memories other users shared with the searching user join the
dense, sparse and temporal sources: ranked in the same lists by the same scores (cosine
similarity; BM25 with the searcher's corpus figures), so RRF weighs them like the user's own.
The graph is per user and stays the user's own. Shared results carry `shared`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

import asyncpg
import numpy as np
from prometheus_client import Counter, Histogram

from adapters.postgres import CONNECTION_ERRORS
# The query objects are the search use case's (application/search.py); SOURCES is re-exported.
from application.search import SOURCES, Outcome, Query, SourceFailed, reads_graph  # noqa: F401
from domain import query_terms, ranking, temporal
from domain.filters import All, Condition, Node
from domain.speaker import named, said_by
from query_api import pg_reads
from query_api.pg_reads import Scope, SearchSession, SharedScope

log = logging.getLogger(__name__)

SOURCE_SECONDS = Histogram("recallstack_search_source_seconds", "Time of each search source that answered",
                           ["source"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
DEGRADED = Counter("recallstack_search_degraded_total", "Sources left out of a search answer", ["source"])
DEGRADED_ANSWERS = Counter("recallstack_search_degraded_answers_total",
                           "Search answers with at least one source left out (count once per answer)")

HARD_LIMIT_FACTOR = 4  # a source query is cancelled by Postgres / Neo4j at this many budgets
# The sparse source's top ranks are the surest (domain/ranking.py DEFAULT_RRF_K says how it was tuned).
DEFAULT_WEIGHTS = {"dense": 1.0, "sparse": 1.5, "temporal": 0.5, "graph": 0.5}


@dataclass(frozen=True)
class SearchConfig:
    rrf_k: int = ranking.DEFAULT_RRF_K
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    source_timeout_ms: int = 250
    hard_limit_s: float = 10.0  # when no source answered within its budget: how long to wait for the first
    ef_search: int = 100
    # Gentle: tie-breakers. Adjacent RRF ranks differ by 3-14 % at k = 5 (1.6 % at k = 60): these
    # reorder results whose fused scores are close, never a clear winner.
    importance_weight: float = 0.05
    recency_weight: float = 0.02
    recency_half_life_days: float = 30.0
    speaker_weight: float = ranking.SPEAKER_WEIGHT  # said by someone the query names
    mmr_diversity: float = 0.3


class Timer:
    def __init__(self):
        self.ms: dict[str, float] = {}

    async def run(self, name: str, coro: Awaitable):
        began = time.perf_counter()
        try:
            return await coro
        finally:
            self.ms[name] = round((time.perf_counter() - began) * 1000, 2)


POSTGRES_SOURCES = frozenset({"dense", "temporal"})  # read from Postgres, whatever else answers
POSTGRES_OPEN = "Postgres unreachable (circuit open): not tried"


def _left_out(degraded: list, source: str, reason: str) -> None:
    degraded.append({"source": source, "reason": reason})


class PostgresCircuitOpen(ConnectionError):
    """Postgres was not tried (its circuit is open) and nothing else found anything."""


# (user_id, names, limit, scope fields, include_archived, valid_at): valid_at is when the relations
# followed must hold, an instant or a (start, end) window; None: now.
GraphSource = Callable[[str, list[str], int, dict, bool, datetime | tuple[datetime, datetime] | None],
                       Awaitable[list[tuple[str, float]]]]
Hydrator = Callable[[list[str], Scope], Awaitable[dict[str, dict]]]  # (ids, scope) -> documents by id
PRESENT_SLACK = timedelta(minutes=1)  # a reference_time this close to now is the present (client clocks)


class SparseIndex(Protocol):
    """The read side of the sparse index (adapters.sparse_index.SparseIndex)."""

    def available(self) -> bool: ...

    def search(self, user_id: str, words: list[str], names: list[str], fields: dict[str, str],
               include_archived: bool, window: tuple[datetime, datetime] | None,
               limit: int) -> list[tuple[str, float]]: ...

    def graph_names(self, user_id: str, names: list[str]) -> list[str]: ...


class HybridSearch:
    """Runs one search. `pool` is the search pool (connections set up by `session`);
    `graph` the Neo4j source (or None); `sparse` the sparse index (or None: SQL BM25)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], graph: GraphSource | None, config: SearchConfig,
                 stats: pg_reads.CorpusStats | None = None, sparse: SparseIndex | None = None,
                 without_postgres: Hydrator | None = None):
        self.pool, self.graph, self.config, self.sparse = pool, graph, config, sparse
        # Postgres down: the documents of what sparse and graph ranked, from elsewhere (Redis).
        self.without_postgres = without_postgres
        self.stats = stats or pg_reads.CorpusStats()
        self.session = SearchSession(HARD_LIMIT_FACTOR * config.source_timeout_ms, config.ef_search)

    def can_do_without_postgres(self, q: Query) -> bool:
        """Sparse and graph can rank without Postgres, and Redis can show what they found, for a
        search that needs nothing else of it: no filter tree, shared memories, similarity
        threshold or MMR (a consistency token is the caller's to check)."""
        return (self.without_postgres is not None and q.scope.filters is None and not q.include_shared
                and q.threshold is None and not q.mmr)

    async def run(self, q: Query, vector_task: Awaitable[np.ndarray], graph_allowed: bool = True,
                  graph_reason: str | None = None, sparse_fresh: bool = True, postgres_up: bool = True) -> Outcome:
        """`postgres_up` False (its circuit is open): Postgres is not even tried; only for a
        search that can do without it."""
        if not postgres_up and not self.can_do_without_postgres(q):
            raise PostgresCircuitOpen(POSTGRES_OPEN)
        timer, degraded = Timer(), []
        window = temporal.resolve(q.text, q.reference_time) if q.temporal_mode != "off" else None
        # "last week" is not a topic: the time phrase does not go to the lexical source.
        lexical_text = re.sub(re.escape(window.phrase), " ", q.text, flags=re.IGNORECASE) if window else q.text
        words = query_terms.keywords(lexical_text)
        tsquery = query_terms.tsquery_text(words)
        names = query_terms.names(q.text)
        depth = min(200, max(30, 3 * q.limit))
        budget = self.config.source_timeout_ms / 1000
        pool = self.pool()
        shared = SharedScope(q.scope.user_id, filters=q.scope.filters) if q.include_shared else None

        window, filter_window = await self._anchored(window, q, timer, degraded, budget, postgres_up)

        known: dict[str, dict] = {}  # whole rows the dense and temporal sources brought back

        def nearest(name: str, within: tuple[datetime, datetime] | None):
            return self._nearest(q, vector_task, pool, shared, depth, known, timer, name, within)

        gate, index = self._sparse_gate(q, sparse_fresh, shared is not None, degraded)
        sparse_from = "index" if index is not None else "postgres"

        def index_failed(exc: Exception) -> None:  # its files went away under us (a replay dropped them)
            nonlocal sparse_from
            sparse_from = "postgres"
            degraded.append({"source": "sparse", "reason": f"the sparse index failed ({type(exc).__name__}): "
                                                           "BM25 from Postgres full-text instead"})

        async def sparse():
            return await timer.run("sparse", self._lexical(q, index, words, names, filter_window, depth, shared, pool,
                                                           index_failed))

        valid_at = _valid_at(window, q.reference_time)
        # The graph is seeded with the names an entity of the user shares a word with (it finds
        # nothing for others) that are no hub (a speaker named in half the memories seeds an
        # arbitrary sample of them); without the sparse index, with every name.
        seeds = ([] if not reads_graph(q.sources, names) else
                 gate.graph_names(q.scope.user_id, names) if gate is not None else names)

        async def graph():
            return await timer.run("graph", self.graph(q.scope.user_id, seeds, depth, q.scope.fields,
                                                       q.scope.include_archived, valid_at))

        wanted: dict[str, Callable[[], Awaitable]] = {}
        if not postgres_up:  # what reads Postgres is named, not tried
            for name in ("dense", "temporal"):
                if name in q.sources and (name == "dense" or window is not None and window.start is not None):
                    _left_out(degraded, name, POSTGRES_OPEN)
        elif "dense" in q.sources:
            wanted["dense"] = lambda: nearest("dense", filter_window)
        if "sparse" in q.sources and (tsquery or names):
            wanted["sparse"] = sparse
        if (postgres_up and "temporal" in q.sources and window is not None and window.start is not None
                and filter_window is None):
            wanted["temporal"] = lambda: nearest("temporal", (window.start, window.end))
        if "graph" in q.sources and seeds:
            if self.graph is None or not graph_allowed:
                degraded.append({"source": "graph", "reason": graph_reason or "the graph read model is not configured"})
            else:
                wanted["graph"] = graph

        postgres_optional = self.can_do_without_postgres(q)
        rankings = await self._gather(wanted, vector_task, budget, degraded, postgres_optional)
        if not postgres_up and not any(rankings.values()):  # nothing found, and the dense source not asked
            raise PostgresCircuitOpen(POSTGRES_OPEN)
        for name in rankings:
            SOURCE_SECONDS.labels(name).observe(timer.ms.get(name, 0.0) / 1000)

        fused, candidates, weights, k = self._fused(q, rankings, depth, timer)
        vector = await vector_task
        docs, postgres_down = await self._documents(q, candidates, known, vector, pool, shared, timer, postgres_up,
                                                    postgres_optional)
        began = time.perf_counter()
        candidates = [c for c in candidates if c.memory_id in docs]  # the graph's hits pass the filters here
        top, results = self._ranked(q, candidates, docs, rankings, weights, k, names)
        timer.ms["rank"] = round((time.perf_counter() - began) * 1000, 2)
        explain = _explain(words, names, k, weights, rankings, sparse_from, window, fused, candidates, top)
        for left_out in degraded:
            DEGRADED.labels(left_out["source"]).inc()
        if degraded:
            DEGRADED_ANSWERS.inc()
        return Outcome(results, degraded, timer.ms, explain, window, postgres_down)

    def _fused(self, q: Query, rankings: dict, depth: int, timer: Timer) -> tuple[list, list, dict[str, float], int]:
        """(every fused result, the candidates kept, the weights, k): RRF over the sources' rankings."""
        began = time.perf_counter()
        weights = {**self.config.weights, **q.weights}
        k = q.rrf_k if q.rrf_k is not None else self.config.rrf_k
        ranked = {s: ranking.ranks_with_ties(r, truncated=len(r) >= depth) for s, r in rankings.items()}
        fused = ranking.fuse_rrf(ranked, k=k, weights=weights)
        candidates = fused[:max(q.limit * 3, 30)] if q.mmr else fused[:max(q.limit * 2, 20)]
        timer.ms["fusion"] = round((time.perf_counter() - began) * 1000, 2)
        return fused, candidates, weights, k

    async def _nearest(self, q: Query, vector_task: Awaitable, pool, shared: SharedScope | None, depth: int,
                       known: dict[str, dict], timer: Timer, name: str, within: tuple[datetime, datetime] | None):
        """The dense (or, `within` a time window, temporal) source: nearest by cosine, the user's
        whole rows kept in `known` (no hydration needed for them)."""
        vector = await vector_task
        ef = max(self.config.ef_search, depth)
        searches = [pg_reads.dense(pool, vector, q.scope, depth, self.session, ef, within)]
        if shared is not None:
            searches.append(pg_reads.dense(pool, vector, shared, depth, self.session, ef, within, exact=True))
        found = [doc for docs in await timer.run(name, asyncio.gather(*searches)) for doc in docs]
        found.sort(key=lambda d: -d["similarity"])
        known.update((d["id"], d) for d in found if d["user_id"] == q.scope.user_id)  # not shared ones
        return [(d["id"], d["similarity"]) for d in found[:depth]]

    def _sparse_gate(self, q: Query, sparse_fresh: bool, shared: bool, degraded: list):
        """(the sparse index if it may answer for this request, else None; the same for the
        sparse source's ranking itself)."""
        available = self.sparse is not None and self.sparse.available()
        if self.sparse is not None and not available and "sparse" in q.sources:
            # Still answered (from Postgres full-text), but an operator should hear of it.
            degraded.append({"source": "sparse", "reason": "the sparse index is unavailable: "
                                                           "BM25 from Postgres full-text instead"})
        # `sparse_fresh`: it has applied the request's consistency token (it may lag Postgres).
        gate = self.sparse if available and sparse_fresh else None
        # It holds the scope fields, states and times, not a filter tree; shared memories are
        # ranked with the searcher's own in one BM25 (Postgres's): those stay with SQL.
        return gate, gate if q.scope.filters is None and q.scope.state is None and not shared else None

    def _ranked(self, q: Query, candidates: list, docs: dict[str, dict], rankings: dict, weights: dict[str, float],
                k: int, names: list[str]) -> tuple[list, list[dict]]:
        """(the top fused results, their documents with scores): boosted by importance, recency
        and whether someone the query names said them, diversified (MMR) and cut at the similarity
        threshold when asked."""
        wanted = named(names)
        spoken = {i for i, d in docs.items() if said_by(d.get("memory") or "", wanted)} if names else set()
        boosted = ranking.boost(
            candidates, {i: d["importance"] for i, d in docs.items()},
            {i: datetime.fromisoformat(d["occurred_at"]) for i, d in docs.items()}, q.reference_time,
            self.config.importance_weight, self.config.recency_weight, self.config.recency_half_life_days,
            spoken, self.config.speaker_weight)
        if q.mmr:
            def similarity(a: str, b: str) -> float:
                return float(np.dot(docs[a]["embedding"], docs[b]["embedding"]))
            boosted = ranking.mmr(boosted, similarity, len(boosted), self.config.mmr_diversity)
        if q.threshold is not None:
            boosted = [f for f in boosted if (docs[f.memory_id]["similarity"] or 0.0) >= q.threshold]
        top = boosted[:q.limit]
        # Scores in [0, 1]: 1 means first in every source that answered (before the boost).
        best = sum(weights.get(s, 1.0) for s in rankings) / (k + 1) or 1.0
        results = []
        for f in top:
            doc = dict(docs[f.memory_id])
            doc.pop("embedding", None)
            doc["score"] = round(f.score / best, 6)
            doc["ranks"] = dict(f.ranks)
            results.append(doc)
        return top, results

    async def _documents(self, q: Query, candidates: list, known: dict[str, dict], vector, pool, shared,
                         timer: Timer, postgres_up: bool, postgres_optional: bool) -> tuple[dict[str, dict], bool]:
        """(the candidates' documents, whether Postgres was down): the rows dense and temporal
        brought back, the others hydrated from Postgres, or from Redis when Postgres is down and
        the search can do without it; shared ones with who shared them."""
        docs = {c.memory_id: known[c.memory_id] for c in candidates if c.memory_id in known and not q.mmr}
        missing = [c.memory_id for c in candidates if c.memory_id not in docs]
        postgres_down = not postgres_up
        if postgres_up:
            try:
                docs.update(await timer.run("hydrate", pg_reads.hydrate(pool, missing, q.scope, vector,
                                                                        with_embedding=q.mmr)))
            except CONNECTION_ERRORS:
                if not postgres_optional:
                    raise
                postgres_down = True
        if postgres_down:
            docs.update(await timer.run("hydrate", self.without_postgres(missing, q.scope)))
        if shared is not None:
            docs.update(await timer.run("hydrate_shared", self._shared_documents(
                pool, [c.memory_id for c in candidates if c.memory_id not in docs], shared, vector, q.mmr)))
        return docs, postgres_down

    async def _lexical(self, q: Query, index: SparseIndex | None, words: list[str], names: list[str], filter_window,
                       depth: int, shared: SharedScope | None, pool, index_failed: Callable[[Exception], None]):
        """The sparse source's ranking: the sparse index's, or BM25 over Postgres full-text (the
        shared memories' merged in) with trigram matches of names after its hits."""
        if index is not None:
            try:
                return index.search(q.scope.user_id, words, names, q.scope.fields, q.scope.include_archived,
                                    filter_window, depth)
            except Exception as exc:  # SQL answers
                log.warning("the sparse index failed; Postgres full-text answers", exc_info=True)
                index_failed(exc)
        tsquery = query_terms.tsquery_text(words)
        lists = await asyncio.gather(
            pg_reads.bm25(pool, tsquery, self._scoped(q.scope, filter_window), depth, self.stats)
            if tsquery else _nothing(),
            pg_reads.trigram(pool, names, self._scoped(q.scope, filter_window), depth)
            if names else _nothing())
        bm25_hits = lists[0]
        if shared is not None and tsquery:
            bm25_hits = await _merged(depth, _done(bm25_hits), pg_reads.bm25(
                pool, tsquery, self._scoped(shared, filter_window), depth, self.stats))
        # Trigram matches only add what BM25 missed (a misspelt name, a fragment of an
        # identifier), after its hits.
        seen = {i for i, _ in bm25_hits}
        return (bm25_hits + [(i, s) for i, s in lists[1] if i not in seen])[:depth]

    async def _anchored(self, window: temporal.TimeWindow | None, q: Query, timer: Timer, degraded: list,
                        budget: float, postgres_up: bool):
        """(the query's time window, anchored on the event it names; the window a "filter" search
        keeps to). An anchor needs Postgres: with its circuit open the window is dropped, named."""
        if window is not None and window.anchor is not None and postgres_up:
            window = await self._anchor(window, q.scope, timer, degraded, budget)
        elif window is not None and window.anchor is not None:
            _left_out(degraded, "temporal", f"anchor {window.anchor!r}: {POSTGRES_OPEN}")
            window = None
        if window is not None and window.start is not None and q.temporal_mode == "filter":
            return window, (window.start, window.end)
        return window, None

    async def _gather(self, wanted: dict[str, Callable[[], Awaitable]], vector_task: Awaitable, budget: float,
                      degraded: list, postgres_optional: bool = False) -> dict[str, list[tuple[str, float]]]:
        """Run the sources at once; wait `budget` once the query vector is there (sparse and
        graph started earlier and got that head start). A source still running then is left
        out and named in `degraded` -- unless none has answered yet: then the first to answer
        (within `hard_limit_s`) is waited for, so an overloaded box answers late, not never.
        Late sources are not cancelled mid-query (that would break Bolt and pool
        connections); their answers are dropped."""
        tasks = {name: asyncio.ensure_future(make()) for name, make in wanted.items()}
        for task in tasks.values():
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        if not tasks:
            return {}
        try:
            await vector_task
        except Exception:
            pass  # dense reports it
        await asyncio.wait(tasks.values(), timeout=budget)
        deadline = time.monotonic() + self.config.hard_limit_s
        while (not any(t.done() and not t.exception() for t in tasks.values())
               and not all(t.done() for t in tasks.values()) and time.monotonic() < deadline):
            await asyncio.wait([t for t in tasks.values() if not t.done()], timeout=deadline - time.monotonic(),
                               return_when=asyncio.FIRST_COMPLETED)
        rankings = {}
        for name, task in tasks.items():
            if not task.done():
                degraded.append({"source": name, "reason": _reason(asyncio.TimeoutError(), budget)})
            elif task.exception() is not None:
                degraded.append({"source": name, "reason": _reason(task.exception(), budget)})
            else:
                rankings[name] = task.result()
        # Postgres is down: no answer without it, even when another source answered (an empty
        # answer from the sparse index alone would read as "nothing found") -- unless the search
        # can do without it and another source found something: then dense and temporal are named in
        # `degraded` like any source that failed.
        found = postgres_optional and any(rankings.values())
        unreachable = [task.exception() for name, task in tasks.items()
                       if (name in POSTGRES_SOURCES and not found or not rankings) and task.done()
                       and isinstance(task.exception(), CONNECTION_ERRORS)]
        if unreachable:
            raise unreachable[0]
        if not rankings:
            raise SourceFailed("; ".join(f"{d['source']}: {d['reason']}" for d in degraded))
        return rankings

    @staticmethod
    def _scoped(scope: Scope, window) -> Scope:
        if window is None:
            return scope
        extra = All((Condition("occurred_at", "gte", window[0]), Condition("occurred_at", "lt", window[1])))
        filters: Node = extra if scope.filters is None else All((scope.filters, extra))
        return dataclasses.replace(scope, filters=filters)  # a SharedScope stays one

    @staticmethod
    async def _shared_documents(pool, ids: list[str], shared: SharedScope, vector, with_embedding: bool) -> dict:
        """The shared memories among `ids`, each with who shared it (`shared`)."""
        if not ids:
            return {}
        docs = await pg_reads.hydrate(pool, ids, shared, vector, with_embedding=with_embedding)
        details = await pg_reads.share_details(pool, list(docs), shared.user_id) if docs else {}
        return {i: {**d, "shared": details[i]} for i, d in docs.items() if i in details}

    async def _anchor(self, window: temporal.TimeWindow, scope: Scope, timer: Timer, degraded: list,
                      budget: float) -> temporal.TimeWindow | None:
        """"two days before the meeting": when the meeting happened, from its best lexical match."""
        tsquery = query_terms.tsquery_text(query_terms.keywords(window.anchor or ""))
        if not tsquery:
            return None
        try:
            at = await timer.run("anchor", asyncio.wait_for(pg_reads.anchor_time(self.pool(), tsquery, scope), budget))
        except (asyncio.TimeoutError, *CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            degraded.append({"source": "temporal", "reason": f"anchor {window.anchor!r}: {_reason(exc, budget)}"})
            return None
        if at is None:
            return None
        return temporal.around_anchor(window, at)


async def _merged(depth: int, *lists: Awaitable[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """One ranking of several (id, score) lists whose scores compare (the user's own and
    the shared memories'), best first."""
    hits = [hit for ranked in await asyncio.gather(*lists) for hit in ranked]
    return sorted(hits, key=lambda hit: -hit[1])[:depth]


async def _done(value):
    return value


async def _nothing() -> list:
    return []


def _reason(exc: BaseException, budget: float) -> str:
    if isinstance(exc, asyncpg.QueryCanceledError):
        return f"cancelled by Postgres after {HARD_LIMIT_FACTOR * budget * 1000:.0f} ms"
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within its budget of {budget * 1000:.0f} ms"
    # A database's own text stays in the log (with the request's correlation id): an answer
    # names only what failed.
    log.warning("a search source failed: %s: %s", type(exc).__name__, exc)
    return f"failed ({type(exc).__name__})"


def _valid_at(window: temporal.TimeWindow | None, reference_time: datetime):
    """When the relations the graph follows must hold: a question about the past follows the
    relations that held then (a fact an update replaced since included); otherwise those that
    hold now (None)."""
    now = utc_now()
    return ((window.start, window.end) if window is not None and window.start is not None and window.start < now
            else reference_time if reference_time < now - PRESENT_SLACK else None)


def _explain(words: list[str], names: list[str], k: int, weights: dict[str, float], rankings: dict,
             sparse_from: str, window: temporal.TimeWindow | None, fused: list, candidates: list, top: list) -> dict:
    """How each result was ranked: the query's terms, the sources run, each source's score and
    contribution, the fused and boosted scores."""
    raw_scores = {s: dict(r) for s, r in rankings.items()}
    fused_score = {c.memory_id: c.score for c in candidates}
    return {
        "keywords": words, "names": names, "rrf_k": k, "weights": {s: weights.get(s, 1.0) for s in rankings},
        "sources_run": list(rankings),
        "sparse_from": sparse_from,
        "time_window": _window_dict(window),
        "candidates": len(fused),
        "per_result": {f.memory_id: {"contributions": {s: round(v, 6) for s, v in f.contributions.items()},
                                     "source_scores": {s: round(raw_scores[s][f.memory_id], 6)
                                                       for s in f.ranks if f.memory_id in raw_scores.get(s, {})},
                                     "fused": round(fused_score[f.memory_id], 6),
                                     "boosted": round(f.score, 6)} for f in top},
    }


def _window_dict(window: temporal.TimeWindow | None) -> dict | None:
    if window is None:
        return None
    return {"phrase": window.phrase, "start": window.start.isoformat() if window.start else None,
            "end": window.end.isoformat() if window.end else None, "anchor": window.anchor}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
