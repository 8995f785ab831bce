"""Consolidation policies: which memories may be merged, into which groups, and the offline
summary of a group (pure: numpy and the standard library, no I/O, deterministic).

Eligibility (`eligible`), per scope (user, agent_id, run_id, app_id); pinned memories never:
- by age: written (`created_at`) at least `min_age_days` before `now` (a memory without
  `created_at` counts as old);
- by token budget: when the scope's active memories (pinned ones included: they use the
  budget too) hold more than `token_budget` tokens, the oldest unpinned memories are
  eligible whatever their age, oldest first, until their tokens cover the excess.
Age OR budget makes a memory eligible. A memory's tokens are `tokens`, or len(text) / 4
rounded up when the caller did not count them.

Clusters (`clusters`): only memories of the same scope and the same embedding model (and
vector size) are compared; a memory without a usable vector is left alone. Within a
group, greedy complete linkage: pairs with cosine >= `similarity_at` are taken from the
most similar down (ties: older pair first), and the two groups of a pair are joined only
when every cross pair has cosine >= `similarity_at` and the joined group stays within
`max_cluster`. So every two members of a cluster are similar (no chaining: A~B and B~C
with A!~C never puts A and C together). Clusters smaller than `min_cluster` are dropped.
Members are ordered by (created_at, memory_id), clusters by their oldest member.

Summary (`extractive_summary`), offline: the texts oldest first, split into sentences; a
text whose vector (when given) has cosine >= `duplicate_at` to a kept text is skipped; each
sentence is compared with the kept ones by its content words (stemmed, stop words out, a
negation counts as the word "not"): a subset of a kept sentence's is skipped; a strict
superset replaces that kept sentence in place (the newer, fuller statement wins); a
Jaccard overlap >= 0.8 with one is skipped as a near-duplicate. The kept sentences are
joined with spaces (each ending in punctuation) and capped at `max_chars` on a sentence
boundary: a sentence that does not fit is left out and the next ones are tried; if not
even the first fits, it is cut at a word boundary and ends with "…".

`summary_id(source_ids)`: uuid5 over the sorted, distinct source ids, so a re-run or a
resumed crash names the summary of the same cluster the same, and can never create a
second one.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

import numpy as np

from domain.extraction import NEGATION, content_words, split_sentences

__all__ = ["ConsolidationPolicy", "MemorySnapshot", "OfflineSummarizer", "clusters", "eligible",
           "extractive_summary", "summary_id"]

SUMMARY_NAMESPACE = uuid.UUID("5b0f0c1e-8d3a-5c6e-9f4b-7a2d1e0c3b9a")  # fixed forever: ids must not change
_EPSILON = 1e-9  # float noise at a threshold must not flip a decision between two computations
_BLOCK = 512  # rows of the similarity matrix computed at once (memory stays O(block * n))
_SENTENCE_JACCARD = 0.8


@dataclass(frozen=True)
class MemorySnapshot:
    """One active memory as the consolidation worker sees it (built from a Postgres row)."""
    memory_id: str
    text: str
    vector: Sequence[float] | np.ndarray = field(default=(), compare=False, repr=False)
    created_at: datetime | None = None
    happened_at: datetime | None = None
    importance: float = 0.5
    pinned: bool = False
    tokens: int = 0  # 0: estimated from the text
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    embedding_model: str | None = None

    @property
    def scope(self) -> tuple[str | None, str | None, str | None, str | None]:
        return self.user_id, self.agent_id, self.run_id, self.app_id

    @property
    def token_count(self) -> int:
        return self.tokens if self.tokens > 0 else max(1, math.ceil(len(self.text) / 4))


@dataclass(frozen=True)
class ConsolidationPolicy:
    min_age_days: float = 7.0
    similarity_at: float = 0.85
    min_cluster: int = 2
    max_cluster: int = 8
    token_budget: int = 50_000  # active tokens per user per scope
    summary_max_chars: int = 1_000

    def __post_init__(self):
        if not self.min_age_days >= 0:
            raise ValueError(f"min_age_days must be >= 0, got {self.min_age_days}")
        if not -1 <= self.similarity_at <= 1:
            raise ValueError(f"similarity_at must be in [-1, 1], got {self.similarity_at}")
        if not 2 <= self.min_cluster <= self.max_cluster:
            raise ValueError(f"need 2 <= min_cluster <= max_cluster, got {self.min_cluster} and {self.max_cluster}")
        if self.token_budget <= 0:
            raise ValueError(f"token_budget must be positive, got {self.token_budget}")
        if self.summary_max_chars < 20:
            raise ValueError(f"summary_max_chars must be >= 20, got {self.summary_max_chars}")


def _age_key(memory: MemorySnapshot) -> tuple:
    # A memory without created_at sorts first (oldest): it predates the field.
    return (memory.created_at is not None, memory.created_at or 0, memory.memory_id)


def _by_scope(memories: Iterable[MemorySnapshot]) -> dict[tuple, list[MemorySnapshot]]:
    groups: dict[tuple, list[MemorySnapshot]] = {}
    seen: set[str] = set()
    for memory in memories:
        if memory.memory_id not in seen:
            seen.add(memory.memory_id)
            groups.setdefault(memory.scope, []).append(memory)
    return groups


def eligible(memories: Sequence[MemorySnapshot], now: datetime, policy: ConsolidationPolicy) -> list[MemorySnapshot]:
    """The memories consolidation may merge (age OR token budget; see the module docstring), oldest first."""
    chosen: list[MemorySnapshot] = []
    for group in _by_scope(memories).values():
        unpinned = sorted((m for m in group if not m.pinned), key=_age_key)
        excess = sum(m.token_count for m in group) - policy.token_budget
        covered = 0
        for memory in unpinned:
            old = memory.created_at is None or (now - memory.created_at).total_seconds() >= policy.min_age_days * 86_400
            if old or covered < excess:
                chosen.append(memory)
                covered += memory.token_count
    return sorted(chosen, key=_age_key)


def _unit(vector) -> np.ndarray | None:
    v = np.asarray(vector, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(v)) if v.size else 0.0
    return v / norm if norm > 0 and math.isfinite(norm) else None


def clusters(memories: Sequence[MemorySnapshot], policy: ConsolidationPolicy) -> list[list[MemorySnapshot]]:
    """Groups of similar memories to consolidate (see the module docstring)."""
    groups: dict[tuple, list[tuple[MemorySnapshot, np.ndarray]]] = {}
    for scope, members in _by_scope(memories).items():
        for memory in sorted(members, key=_age_key):
            unit = _unit(memory.vector)
            if unit is not None:
                groups.setdefault((scope, memory.embedding_model, unit.size), []).append((memory, unit))
    found: list[list[MemorySnapshot]] = []
    for members in groups.values():
        found.extend(_complete_linkage([m for m, _ in members], np.stack([u for _, u in members]), policy))
    return sorted(found, key=lambda cluster: _age_key(cluster[0]))


def _complete_linkage(members: list[MemorySnapshot], unit: np.ndarray,
                      policy: ConsolidationPolicy) -> list[list[MemorySnapshot]]:
    at = policy.similarity_at - _EPSILON
    # Sweep the upper triangle in float32 (fast, half the memory) with a margin for its
    # rounding; the float64 complete-linkage check below, which includes the pair itself, decides.
    fast = unit.astype(np.float32)
    edges: list[tuple[float, int, int]] = []
    for start in range(0, len(members), _BLOCK):
        block = fast[start:start + _BLOCK] @ fast[start:].T
        rows, cols = np.nonzero(block >= at - 1e-4)
        upper = cols > rows  # the column offset is `start` too: pairs (i, j) with j > i
        rows, cols = rows[upper], cols[upper]
        edges.extend(zip((-block[rows, cols]).tolist(), (rows + start).tolist(), (cols + start).tolist()))
    edges.sort()  # most similar first; members are in age order, so ties take the older pair
    root = list(range(len(members)))
    groups: dict[int, list[int]] = {i: [i] for i in range(len(members))}
    for _, i, j in edges:
        a, b = root[i], root[j]
        if a == b or len(groups[a]) + len(groups[b]) > policy.max_cluster:
            continue
        if float((unit[groups[a]] @ unit[groups[b]].T).min()) < at:
            continue  # complete linkage: one dissimilar pair keeps the groups apart
        a, b = min(a, b), max(a, b)
        for k in groups[b]:
            root[k] = a
        groups[a] = sorted(groups[a] + groups.pop(b))
    return [[members[k] for k in group] for group in groups.values() if len(group) >= policy.min_cluster]


def _sentence_words(sentence: str) -> set[str]:
    words = content_words(sentence)
    if NEGATION.search(sentence):
        words.add("not")  # "I don't drink coffee" says more than, not the same as, "I drink coffee"
    return words


def extractive_summary(texts: Sequence[str], vectors: Sequence[Sequence[float]] | np.ndarray | None = None,
                       max_chars: int = 1_000, *, duplicate_at: float = 0.95) -> str:
    """One text saying what `texts` (oldest first) say, without repeating (see the module docstring)."""
    if vectors is not None and len(vectors) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    kept_units: list[np.ndarray] = []
    kept: list[tuple[str, set[str]]] = []
    for index, text in enumerate(texts):
        if vectors is not None:
            unit = _unit(vectors[index])
            if unit is not None:
                if any(unit.size == k.size and float(unit @ k) >= duplicate_at - _EPSILON for k in kept_units):
                    continue
                kept_units.append(unit)
        for sentence in split_sentences(text):
            words = _sentence_words(sentence)
            if not words:
                continue
            if sentence[-1] not in ".!?…\"'”’)":
                sentence += "."
            for position, (_, old) in enumerate(kept):
                if words <= old:
                    break  # nothing new
                if old < words:
                    kept[position] = (sentence, words)  # the fuller, newer statement replaces the older
                    break
                if len(words & old) / len(words | old) >= _SENTENCE_JACCARD:
                    break  # a near-duplicate
            else:
                kept.append((sentence, words))
    summary = ""
    for sentence, _ in kept:
        joined = f"{summary} {sentence}" if summary else sentence
        if len(joined) <= max_chars:
            summary = joined
    if not summary and kept:  # not even the first sentence fits: cut it at a word boundary
        cut = kept[0][0][:max_chars - 1]
        summary = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"
    return summary


def summary_id(source_ids: Iterable[str]) -> str:
    """The id of the summary of these memories, the same whatever their order (uuid5)."""
    ids = sorted({str(i) for i in source_ids})
    if not ids:
        raise ValueError("a summary needs at least one source memory")
    return str(uuid.uuid5(SUMMARY_NAMESPACE, "\n".join(ids)))


class OfflineSummarizer:
    """The Summarizer port without an LLM: `extractive_summary` capped at `max_chars`."""

    def __init__(self, max_chars: int = 1_000):
        self.max_chars = max_chars

    async def summarize(self, texts: Sequence[str]) -> str:
        return extractive_summary(texts, max_chars=self.max_chars)
