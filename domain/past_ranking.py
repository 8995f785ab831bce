"""A hybrid search over memories held in memory: the ranking of a search `as_of` a past moment (pure).

The live search asks Postgres (dense by pgvector, temporal) and the sparse index (BM25); a past
state rebuilt from the log (application/as_of.py) has no index, so the same sources are computed
here over its rows and fused by the same RRF, boost and MMR (domain/ranking.py):
- dense: cosine between the query vector and each memory's vector (the one its events carried);
- sparse: Okapi BM25 (k1 1.2, b 0, as the live sources) over the memories' words, unstemmed;
- temporal: when the query names a time (domain/temporal.py), the memories that happened in that
  window, nearest first (with `temporal: filter`, only they are candidates);
- graph: not rebuilt (the answer names it as left out).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from domain import query_terms, ranking, temporal

BM25_K1 = 1.2  # b = 0: no length normalisation, as the live sources (query_api/pg_reads.py says why)
_WORD = re.compile(r"[a-z0-9]+")
PAST_SOURCES = ("dense", "sparse", "temporal")


@dataclass(frozen=True)
class Tuning:
    """The live engine's fusion settings (query_api/search.SearchConfig has these fields)."""
    rrf_k: int = ranking.DEFAULT_RRF_K
    weights: Mapping[str, float] = field(default_factory=dict)
    importance_weight: float = 0.05
    recency_weight: float = 0.02
    recency_half_life_days: float = 30.0
    mmr_diversity: float = 0.3


@dataclass(frozen=True)
class Ask:
    """What to rank: the query's text and vector, the request's search options."""
    text: str
    vector: np.ndarray
    limit: int
    reference_time: datetime
    sources: tuple[str, ...] = PAST_SOURCES
    weights: Mapping[str, float] = field(default_factory=dict)
    rrf_k: int | None = None
    threshold: float | None = None
    mmr: bool = False
    temporal_mode: str = "boost"


def bm25(words: Sequence[str], texts: Mapping[str, str]) -> list[tuple[str, float]]:
    """(id, score) best first, of the texts with at least one of `words`. With b = 0 a document's
    length does not count, so only the texts holding a query word as a substring are tokenized
    (a substring test runs in C: 100k texts in milliseconds, where tokenizing them all takes seconds)."""
    words = list(dict.fromkeys(words))
    if not words or not texts:
        return []
    lowered = {i: t.lower() for i, t in texts.items()}
    candidates = {i: Counter(_WORD.findall(t)) for i, t in lowered.items() if any(w in t for w in words)}
    n = len(texts)
    scores: dict[str, float] = {}
    for word in words:
        having = [i for i, c in candidates.items() if word in c]
        if not having:
            continue
        idf = math.log(1 + (n - len(having) + 0.5) / (len(having) + 0.5))
        for i in having:
            tf = candidates[i][word]
            scores[i] = scores.get(i, 0.0) + idf * tf * (BM25_K1 + 1) / (tf + BM25_K1)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class Vectors:
    """Every row's vector, scaled to unit length, in one matrix: built once per rebuilt state (stacking
    100k vectors costs more than the product), then each query is one matrix-vector product."""
    ids: tuple[str, ...]
    unit: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[dict]) -> "Vectors":
        if not rows:
            return cls((), np.zeros((0, 0), dtype=np.float32))
        matrix = np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return cls(tuple(r["id"] for r in rows), matrix / np.where(norms == 0, 1.0, norms))

    def cosines(self, vector: np.ndarray) -> dict[str, float]:
        if not self.ids:
            return {}
        query = np.asarray(vector, dtype=np.float32)
        scores = self.unit @ (query / (float(np.linalg.norm(query)) or 1.0))
        return dict(zip(self.ids, scores.tolist()))


def similarities(vector: np.ndarray, rows: Sequence[dict]) -> dict[str, float]:
    """Cosine of the query vector with each row's vector."""
    return Vectors.of(rows).cosines(vector)


@dataclass(frozen=True)
class Hit:
    row: dict
    score: float  # in [0, 1]: 1 is first in every source that ranked (before the boost), as the live search
    ranks: Mapping[str, int]  # source -> rank there
    similarity: float | None  # cosine with the query


def ranked(ask: Ask, rows: Sequence[dict], tuning: Tuning,
           vectors: Vectors | None = None) -> tuple[list[Hit], dict]:
    """(the hits best first, at most `limit`; explain: the sources run, their weights, the window).
    `vectors`: the state's vectors when they are at hand (a superset of `rows`)."""
    window = temporal.resolve(ask.text, ask.reference_time) if ask.temporal_mode != "off" else None
    lexical = re.sub(re.escape(window.phrase), " ", ask.text, flags=re.IGNORECASE) if window else ask.text
    in_window = [r for r in rows if window is not None and window.start is not None and _within(r, window)]
    if ask.temporal_mode == "filter" and window is not None and window.start is not None:
        rows = in_window
    every = vectors.cosines(ask.vector) if vectors is not None else similarities(ask.vector, rows)
    similarity = {r["id"]: every[r["id"]] for r in rows}
    depth = min(200, max(30, 3 * ask.limit))
    rankings: dict[str, list[tuple[str, float]]] = {}
    if "dense" in ask.sources:
        rankings["dense"] = sorted(similarity.items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
    if "sparse" in ask.sources:
        hits = bm25(query_terms.keywords(lexical), {r["id"]: r["text"] for r in rows})
        if hits:
            rankings["sparse"] = hits[:depth]
    if "temporal" in ask.sources and in_window:
        kept = {r["id"] for r in in_window}
        rankings["temporal"] = sorted(((i, s) for i, s in similarity.items() if i in kept),
                                      key=lambda kv: (-kv[1], kv[0]))[:depth]
    weights = {**tuning.weights, **ask.weights}
    k = ask.rrf_k if ask.rrf_k is not None else tuning.rrf_k
    fused = ranking.fuse_rrf({s: ranking.ranks_with_ties(r, truncated=len(r) >= depth) for s, r in rankings.items()},
                             k=k, weights=weights)
    candidates = fused[:max(ask.limit * 3, 30)] if ask.mmr else fused[:max(ask.limit * 2, 20)]
    by_id = {r["id"]: r for r in rows}
    boosted = ranking.boost(candidates, {i: by_id[i]["importance"] for i in by_id},
                            {i: by_id[i]["occurred_at"] for i in by_id}, ask.reference_time,
                            tuning.importance_weight, tuning.recency_weight, tuning.recency_half_life_days)
    if ask.mmr:
        def alike(a: str, b: str) -> float:
            return ranking.cosine(by_id[a]["embedding"], by_id[b]["embedding"])
        boosted = ranking.mmr(boosted, alike, len(boosted), tuning.mmr_diversity)
    if ask.threshold is not None:
        boosted = [f for f in boosted if similarity.get(f.memory_id, -1.0) >= ask.threshold]
    best = sum(weights.get(s, 1.0) for s in rankings) / (k + 1) or 1.0
    top = [Hit(by_id[f.memory_id], round(f.score / best, 6), dict(f.ranks), similarity.get(f.memory_id))
           for f in boosted[:ask.limit]]
    explain = {"sources_run": list(rankings), "rrf_k": k, "weights": {s: weights.get(s, 1.0) for s in rankings},
               "window": None if window is None else {"phrase": window.phrase, "start": _iso(window.start),
                                                      "end": _iso(window.end)}}
    return top, explain


def _within(row: dict, window: temporal.TimeWindow) -> bool:
    at = row["occurred_at"]
    return (window.start is None or at >= window.start) and (window.end is None or at < window.end)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
