"""Consolidation policies (pure, with a controllable clock): eligibility, clustering, extractive summary, ids."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from domain.consolidation import (ConsolidationPolicy, MemorySnapshot, OfflineSummarizer, clusters, eligible,
                                  extractive_summary, summary_id)

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
POLICY = ConsolidationPolicy(min_age_days=7, similarity_at=0.85, min_cluster=2, max_cluster=8, token_budget=1_000)


def mem(memory_id: str, days_old: float = 30, vector=(1.0, 0.0, 0.0), *, tokens: int = 10, pinned: bool = False,
        agent_id: str | None = None, text: str | None = None, model: str | None = "m") -> MemorySnapshot:
    return MemorySnapshot(memory_id=memory_id, text=text or f"memory {memory_id}", vector=np.asarray(vector, float),
                          created_at=NOW - timedelta(days=days_old), happened_at=None, importance=0.5, pinned=pinned,
                          tokens=tokens, user_id="u1", agent_id=agent_id, embedding_model=model)


def ids(memories) -> list[str]:
    return [m.memory_id for m in memories]


def unit_at(cosine: float, axis: int = 1, dims: int = 3) -> np.ndarray:
    """A unit vector with `cosine` to e0, the rest along `axis`."""
    v = np.zeros(dims)
    v[0], v[axis] = cosine, np.sqrt(1 - cosine ** 2)
    return v


# --- eligibility -------------------------------------------------------------------------


def test_eligible_by_age_at_the_boundary_and_pinned_never():
    memories = [mem("old", 30), mem("edge", 7), mem("young", 6.9), mem("pinned", 400, pinned=True)]
    assert ids(eligible(memories, NOW, POLICY)) == ["old", "edge"]


def test_eligible_by_token_budget_takes_the_oldest_until_the_excess_is_covered():
    memories = [mem("a", 3, tokens=400), mem("b", 2, tokens=400), mem("c", 1, tokens=400),
                mem("p", 5, tokens=100, pinned=True)]  # 1,300 tokens: 300 over the budget
    assert ids(eligible(memories, NOW, POLICY)) == ["a"]  # the oldest unpinned covers it; pinned counts, never taken
    heavier = memories + [mem("d", 0.5, tokens=500)]  # 1,800: 800 over
    assert ids(eligible(heavier, NOW, POLICY)) == ["a", "b"]
    assert ids(eligible(memories[:3], NOW, ConsolidationPolicy(token_budget=1_200))) == []  # within budget, young


def test_eligible_age_or_budget_and_per_scope():
    memories = [mem("old", 10, tokens=10), mem("a", 3, tokens=600), mem("b", 2, tokens=600),
                mem("other", 2, tokens=600, agent_id="bot")]  # scope (u1, None): 1,210 tokens; (u1, bot): 600
    assert ids(eligible(memories, NOW, POLICY)) == ["old", "a"]


def test_token_estimate_when_not_counted():
    assert MemorySnapshot("x", "a" * 41).token_count == 11
    assert MemorySnapshot("x", "").token_count == 1


def test_policy_validation():
    for bad in [dict(min_age_days=-1), dict(similarity_at=1.5), dict(min_cluster=1), dict(min_cluster=5, max_cluster=4),
                dict(token_budget=0), dict(summary_max_chars=0)]:
        with pytest.raises(ValueError):
            ConsolidationPolicy(**bad)


# --- clusters ------------------------------------------------------------------------------


def test_clusters_group_near_duplicates_in_age_order():
    memories = [mem("b", 20, unit_at(0.95)), mem("a", 30, (1, 0, 0)), mem("x", 25, (0, 0, 1)),
                mem("c", 10, unit_at(0.9))]
    assert [ids(c) for c in clusters(memories, POLICY)] == [["a", "b", "c"]]


def test_clusters_do_not_chain():
    # a~b (0.92) and b~c (0.92), but a and c only 0.69: complete linkage never puts a and c together.
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.4), np.sin(0.4)])
    c = np.array([np.cos(0.8), np.sin(0.8)])
    assert a @ b > 0.85 and b @ c > 0.85 and a @ c < 0.85
    memories = [mem("a", 30, a), mem("b", 20, b), mem("c", 10, c)]
    assert [ids(cl) for cl in clusters(memories, POLICY)] == [["a", "b"]]  # tie: the older pair first


def test_clusters_respect_scope_and_embedding_model():
    memories = [mem("a", 30), mem("b", 20, agent_id="bot"), mem("c", 10, model="other"), mem("d", 5, agent_id="bot"),
                mem("e", 4, vector=(1.0, 0.0))]  # another vector size: never compared
    assert [ids(c) for c in clusters(memories, POLICY)] == [["b", "d"]]


def test_clusters_threshold_sizes_and_unusable_vectors():
    assert clusters([mem("a"), mem("b", 20, unit_at(0.85))], POLICY) != []  # at the threshold
    assert clusters([mem("a"), mem("b", 20, unit_at(0.8499))], POLICY) == []
    assert clusters([mem("a"), mem("z", 20, (0, 0, 0)), mem("n", 20, ())], POLICY) == []
    many = [mem(f"m{i:02d}", 100 - i) for i in range(11)]
    assert [ids(c) for c in clusters(many, POLICY)] == [ids(many[:8]), ids(many[8:])]
    assert [len(c) for c in clusters(many, ConsolidationPolicy(min_cluster=4, max_cluster=8))] == [8]


def test_clusters_are_deterministic_whatever_the_input_order():
    rng = np.random.default_rng(7)
    base = rng.normal(size=(4, 16))
    memories = [mem(f"m{i:02d}", 50 - i, base[i % 4] + rng.normal(scale=0.2, size=16)) for i in range(24)]
    expected = [ids(c) for c in clusters(memories, POLICY)]
    assert expected and all(2 <= len(c) <= 8 for c in expected)
    assert [ids(c) for c in clusters(list(reversed(memories)), POLICY)] == expected


# --- summary -------------------------------------------------------------------------------


def test_summary_keeps_new_information_oldest_first_and_drops_repeats():
    texts = ["I drink coffee every morning. I live in Lisbon.",
             "I live in Lisbon!  Ana lives in Porto.",
             "I don't drink coffee every morning."]
    assert extractive_summary(texts) == "I don't drink coffee every morning. I live in Lisbon. Ana lives in Porto."


def test_summary_drops_near_duplicates_by_overlap_and_by_vector():
    first = "We deploy the billing API with Helm charts to the Kubernetes cluster on Fridays at noon."
    texts = [first, "We deploy the billing API with Helm charts to the Kubernetes cluster on Fridays at lunch.",
             "The staging cluster runs in Frankfurt."]  # 8 of 10 content words shared: Jaccard 0.8
    assert extractive_summary(texts) == f"{first} The staging cluster runs in Frankfurt."
    texts = ["Ana lives in Porto.", "Ana's home is in Porto, Portugal.", "Bob likes jazz."]
    assert extractive_summary(texts) == " ".join(texts)
    vectors = np.array([[1.0, 0.0], [0.99, np.sqrt(1 - 0.99 ** 2)], [0.0, 1.0]])
    assert extractive_summary(texts, vectors) == "Ana lives in Porto. Bob likes jazz."
    assert extractive_summary(texts, vectors, duplicate_at=0.995) == " ".join(texts)
    with pytest.raises(ValueError):
        extractive_summary(texts, vectors[:2])


def test_summary_caps_on_a_sentence_boundary():
    texts = ["Alpha likes green tea.", "Bravo works at the harbour office since spring.", "Carol owns three cats."]
    full = extractive_summary(texts)
    assert full == "Alpha likes green tea. Bravo works at the harbour office since spring. Carol owns three cats."
    capped = extractive_summary(texts, max_chars=50)
    assert capped == "Alpha likes green tea. Carol owns three cats." and len(capped) <= 50
    cut = extractive_summary(["Alpha likes green tea with honey and lemon every evening."], max_chars=25)
    assert cut == "Alpha likes green tea…" and len(cut) <= 25
    assert extractive_summary([]) == ""


def test_summary_id_is_deterministic_and_order_independent():
    first = summary_id(["b", "a", "c"])
    assert first == summary_id(["c", "b", "a"]) == summary_id(("a", "b", "c", "a"))
    assert uuid.UUID(first).version == 5
    assert summary_id(["a", "b"]) != first
    with pytest.raises(ValueError):
        summary_id([])


async def test_offline_summarizer_port():
    summary = await OfflineSummarizer(max_chars=40).summarize(["I like tea.", "I like tea!", "My cat is Luna."])
    assert summary == "I like tea. My cat is Luna."
