"""Ranking policies for hybrid search (pure: no I/O).

Each source (dense, sparse, temporal, graph) returns memory ids in its own rank order;
`fuse_rrf` combines them with reciprocal rank fusion, `boost` folds in importance and
recency, `mmr` optionally diversifies, and every result keeps its rank in each source so
the API can explain itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

# Larger k flattens rank differences. Cormack et al. chose 60 across collections. On LoCoMo's dev
# split, cross-validated leave-one-conversation-out (bench/locomo_cv.py): 20 against 60 first
# (hit@10 0.743 vs 0.726), then, with the turn context, 5 with the sparse source at 1.5
# (query_api/search.py DEFAULT_WEIGHTS) against 20 at 1: hit@1 0.405 vs 0.339, hit@10 0.770 vs
# 0.765 (chosen for every held-out conversation by hit@1, four of six by hit@10; docs/benchmarks.md).
DEFAULT_RRF_K = 5
# A memory said by someone the query names ("What did Caroline ...?", `Caroline: ...`) counts x 1.4.
# Chosen from 0, 0.1, 0.25 and 0.4 by leave-one-conversation-out on LoCoMo dev, with the dense turn
# context (every held-out conversation chose 0.4; docs/benchmarks.md). Larger weights score higher
# still there, where almost every question names one of a chat's two speakers: 0.4 is a cap, so that
# the boost stays a lift (about two ranks at the top, k 5) and never a filter on the speaker.
SPEAKER_WEIGHT = 0.4


@dataclass(frozen=True)
class Fused:
    memory_id: str
    score: float
    ranks: Mapping[str, int] = field(default_factory=dict)  # source -> 1-based rank there
    contributions: Mapping[str, float] = field(default_factory=dict)  # source -> weight / (k + rank)


def ranks_with_ties(scored: Sequence[tuple[str, float]], truncated: bool) -> list[tuple[str, int]]:
    """(id, rank) from (id, score) best first, equal scores sharing a rank ("1224"): a
    source that cannot tell memories apart must not pretend to order them. When the list
    was cut at a limit (`truncated`), its last tie group is dropped: which of the tied
    memories made it into the list was arbitrary (a name that every memory mentions would
    otherwise boost a random few)."""
    out: list[tuple[str, int]] = []
    rank, previous = 0, None
    for position, (memory_id, score) in enumerate(scored, start=1):
        if score != previous:
            rank, previous = position, score
        out.append((memory_id, rank))
    if truncated and out:
        last = out[-1][1]
        out = [r for r in out if r[1] != last]
    return out


def fuse_rrf(rankings: Mapping[str, Sequence[str] | Sequence[tuple[str, int]]], k: int = DEFAULT_RRF_K,
             weights: Mapping[str, float] | None = None) -> list[Fused]:
    """Reciprocal rank fusion: score(d) = sum over sources of weight_s / (k + rank_s(d)).

    `rankings` maps a source name to memory ids, best first, or to (id, rank) pairs when
    ranks are explicit (ties, see `ranks_with_ties`); a repeated id keeps its best rank.
    Sources missing from `weights` weigh 1. Ties are broken by the best single rank, then
    by id, so the order is deterministic.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    weights = weights or {}
    ranks: dict[str, dict[str, int]] = {}
    for source, items in rankings.items():
        for position, item in enumerate(items, start=1):
            memory_id, rank = item if isinstance(item, tuple) else (item, position)
            ranks.setdefault(memory_id, {}).setdefault(source, rank)
    fused = []
    for memory_id, by_source in ranks.items():
        contributions = {s: weights.get(s, 1.0) / (k + r) for s, r in by_source.items()}
        fused.append(Fused(memory_id, sum(contributions.values()), by_source, contributions))
    fused.sort(key=lambda f: (-f.score, min(f.ranks.values()), f.memory_id))
    return fused


def recency_factor(at: datetime, now: datetime, half_life_days: float) -> float:
    """1 for now, 0.5 one half-life ago, towards 0 for the distant past (future counts as now)."""
    if half_life_days <= 0:
        return 1.0
    age_days = max(0.0, (now - at).total_seconds() / 86_400)
    return 0.5 ** (age_days / half_life_days)


def boost(results: Sequence[Fused], importance: Mapping[str, float | None], created: Mapping[str, datetime],
          now: datetime, importance_weight: float = 0.2, recency_weight: float = 0.1,
          half_life_days: float = 30.0, favoured: Collection[str] = (), favour_weight: float = 0.0) -> list[Fused]:
    """Multiply each fused score by (1 + w_i * importance + w_r * recency), and those `favoured`
    (said by someone the query names) by (1 + favour_weight): a gentle re-ranking that never lets
    an irrelevant but important, fresh or favoured memory jump far."""
    boosted = []
    for r in results:
        imp = importance.get(r.memory_id) or 0.0
        rec = recency_factor(created[r.memory_id], now, half_life_days) if r.memory_id in created else 0.0
        favour = 1 + favour_weight if r.memory_id in favoured else 1.0
        boosted.append(replace(r, score=r.score * (1 + importance_weight * imp + recency_weight * rec) * favour))
    boosted.sort(key=lambda f: (-f.score, min(f.ranks.values(), default=0), f.memory_id))
    return boosted


def mmr(results: Sequence[Fused], similarity: Callable[[str, str], float], limit: int,
        diversity: float = 0.3) -> list[Fused]:
    """Maximal marginal relevance: pick, one at a time, the result that maximises
    (1 - diversity) * relevance - diversity * (max similarity to those already picked).
    Relevance is the fused score scaled to [0, 1]; `similarity` gives cosine in [-1, 1]."""
    if not 0 <= diversity <= 1:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    pool = list(results)
    if not pool or limit <= 0:
        return []
    top = max(r.score for r in pool) or 1.0
    picked: list[Fused] = []
    while pool and len(picked) < limit:
        def value(r: Fused) -> float:
            redundancy = max((similarity(r.memory_id, p.memory_id) for p in picked), default=0.0)
            return (1 - diversity) * (r.score / top) - diversity * redundancy

        best = max(pool, key=lambda r: (value(r), -pool.index(r)))
        picked.append(best)
        pool.remove(best)
    return picked


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
