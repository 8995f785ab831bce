"""Pure pieces of the LoCoMo retrieval benchmark: session dates, memory texts, evidence,
hit@k / evidence recall@k, Okapi BM25 and reciprocal rank fusion. No I/O, no service.

Used by bench/locomo_bench.py and bench/extraction_bench.py, tested by tests/unit/test_locomo_metrics.py.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

import numpy as np

KS = (1, 5, 10, 20)

# ---------------------------------------------------------------------------------------------
# LoCoMo data

MONTHS = {name: i for i, name in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"), start=1)}
MONTHS.update({name[:3]: i for name, i in list(MONTHS.items())})
MONTHS["sept"] = 9

_SESSION_DATE = re.compile(
    r"^\s*(\d{1,2}):(\d{2})\s*([ap])\.?\s*m\.?\s+on\s+(\d{1,2})\s+([A-Za-z]+)\.?,?\s+(\d{4})\s*$", re.IGNORECASE)


def parse_session_date(text: str) -> datetime:
    """"1:56 pm on 8 May, 2023" -> 2023-05-08 13:56 UTC (aware). LoCoMo gives no zone: UTC.

    Raises ValueError naming the text when it does not have that shape."""
    m = _SESSION_DATE.match(text or "")
    if not m:
        raise ValueError(f"not a LoCoMo session date: {text!r}")
    hour, minute, half, day, month_name, year = m.groups()
    hour, minute = int(hour), int(minute)
    month = MONTHS.get(month_name.lower())
    if month is None or not 1 <= hour <= 12 or minute > 59:
        raise ValueError(f"not a LoCoMo session date: {text!r}")
    hour = hour % 12 + (12 if half.lower() == "p" else 0)  # 12 am -> 0, 12 pm -> 12
    try:
        return datetime(int(year), month, int(day), hour, minute, tzinfo=UTC)
    except ValueError as exc:  # 31 February
        raise ValueError(f"not a LoCoMo session date: {text!r} ({exc})") from None


def memory_text(turn: dict) -> str:
    """A dialog turn as one memory: "<speaker>: <text>" plus " [image: <caption>]" when it shares one."""
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [image: {turn['blip_caption']}]"
    return text


def sessions(conversation: dict) -> list[tuple[int, str, list[dict]]]:
    """(number, date text, turns) of every session that has turns, in session order.

    Some conversations list dates of sessions that hold no turns; those are left out."""
    found = []
    for key, value in conversation.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(value, list) and value:
            found.append((int(m.group(1)), conversation.get(f"{key}_date_time", ""), value))
    return sorted(found, key=lambda s: s[0])


def valid_evidence(evidence: Iterable[str], known: set[str]) -> list[str]:
    """The evidence dia_ids that name a turn of the conversation, deduplicated, in order.

    Malformed entries ("D8:6; D9:17", "D", "D:11:26") and ids of turns that do not exist are
    dropped, as the LoCoMo split's README prescribes."""
    out: list[str] = []
    for e in evidence or ():
        e = str(e).strip()
        if e in known and e not in out:
            out.append(e)
    return out


# ---------------------------------------------------------------------------------------------
# Metrics

Retrieved = Sequence[str | Collection[str] | None]  # per result: its dia_id, the dia_ids it stands for, or None


def covered(retrieved: Retrieved, k: int) -> set[str]:
    """The dia_ids the first k results stand for. A result is one dia_id (a stored turn), a
    collection of them (a memory extracted from several turns) or None (maps to no turn)."""
    out: set[str] = set()
    for item in retrieved[:k]:
        if item is None:
            continue
        if isinstance(item, str):
            out.add(item)
        else:
            out.update(item)
    return out


def hit_at_k(retrieved: Retrieved, evidence: Sequence[str], k: int) -> float:
    """1.0 when any evidence dia_id is among the dia_ids of the first k results, else 0.0."""
    return 1.0 if covered(retrieved, k) & set(evidence) else 0.0


def recall_at_k(retrieved: Retrieved, evidence: Sequence[str], k: int) -> float:
    """The fraction of the evidence dia_ids among the dia_ids of the first k results (duplicates count once)."""
    wanted = set(evidence)
    if not wanted:
        raise ValueError("recall of a question without evidence is undefined (skip the question)")
    return len(wanted & covered(retrieved, k)) / len(wanted)


def question_metrics(retrieved: Retrieved, evidence: Sequence[str], ks: Sequence[int] = KS) -> dict:
    """{"hit@k": ..., "recall@k": ...} for each k."""
    out = {}
    for k in ks:
        out[f"hit@{k}"] = hit_at_k(retrieved, evidence, k)
        out[f"recall@{k}"] = recall_at_k(retrieved, evidence, k)
    return out


def aggregate(rows: Iterable[tuple[int, dict]], overall_categories: Iterable[int] = (1, 2, 3, 4)) -> dict:
    """Mean of each metric per category and "overall" (the questions of `overall_categories`,
    each question weighing the same), from (category, question_metrics) rows; with n per group."""
    groups: dict[str, list[dict]] = defaultdict(list)
    overall = set(overall_categories)
    for category, metrics in rows:
        groups[str(category)].append(metrics)
        if category in overall:
            groups["overall"].append(metrics)
    out = {}
    for name in sorted(groups, key=lambda g: (g == "overall", g)):
        members = groups[name]
        out[name] = {"n": len(members)}
        for key in members[0]:
            out[name][key] = sum(m[key] for m in members) / len(members)
    return out


# ---------------------------------------------------------------------------------------------
# Okapi BM25

STOPWORDS = frozenset("""
a about above after again against ain all am an and any are aren aren't as at be because been before
being below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don
don't down during each few for from further had hadn hadn't has hasn hasn't have haven haven't having
he her here hers herself him himself his how i if in into is isn isn't it it's its itself just ll m ma
me mightn mightn't more most mustn mustn't my myself needn needn't no nor not now o of off on once only
or other our ours ourselves out over own re s same shan shan't she she's should should've shouldn
shouldn't so some such t than that that'll the their theirs them themselves then there these they this
those through to too under until up ve very was wasn wasn't we were weren weren't what when where which
while who whom why will with won won't wouldn wouldn't y you you'd you'll you're you've your yours
yourself yourselves
""".split())

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lowercase words of two or more word characters, English stopwords removed."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in stopwords]


class BM25:
    """Okapi BM25 over a fixed list of documents (k1=1.5, b=0.75, Lucene's non-negative idf
    ln(1 + (N - df + 0.5) / (df + 0.5))). Term weights are precomputed per posting, so a query
    costs one pass over the postings of its terms."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        docs = [tokenize(d) for d in documents]
        self.n_docs = len(docs)
        lengths = np.array([len(d) for d in docs], dtype=np.float64)
        self.avgdl = float(lengths.mean()) if len(docs) and lengths.mean() > 0 else 1.0
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, doc in enumerate(docs):
            for term, tf in Counter(doc).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        self.idf: dict[str, float] = {}
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        norm = k1 * (1 - b + b * lengths / self.avgdl)
        for term, (ids, tfs) in postings.items():
            ids_a, tf_a = np.array(ids, dtype=np.int64), np.array(tfs, dtype=np.float64)
            idf = math.log(1 + (self.n_docs - len(ids) + 0.5) / (len(ids) + 0.5))
            self.idf[term] = idf
            self.postings[term] = (ids_a, idf * tf_a * (k1 + 1) / (tf_a + norm[ids_a]))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for the query (a repeated query term counts again)."""
        out = np.zeros(self.n_docs, dtype=np.float64)
        for term in tokenize(query):
            if term in self.postings:
                ids, weights = self.postings[term]
                out[ids] += weights
        return out


def top_k(scores: np.ndarray, k: int, positive_only: bool = False) -> list[int]:
    """Indices of the k highest scores, best first; ties keep document order. With
    positive_only, documents scoring 0 or less are not retrieved (BM25: no query term)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")[:k]
    if positive_only:
        order = order[scores[order] > 0]
    return [int(i) for i in order]


def rrf(rankings: Sequence[Sequence[int]], k: int = 60, limit: int | None = None) -> list[int]:
    """Reciprocal rank fusion of ranked id lists: sum of 1 / (k + rank), rank from 1; ties by
    first appearance."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            score[item] = score.get(item, 0.0) + 1.0 / (k + rank)
    fused = sorted(score, key=lambda item: -score[item])  # sorted() is stable: ties by first appearance
    return fused[:limit] if limit is not None else fused
