"""Ranking policies: RRF, boosts, MMR (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.ranking import boost, cosine, fuse_rrf, mmr, recency_factor


def test_rrf_sums_reciprocal_ranks_and_keeps_each_source_rank():
    fused = fuse_rrf({"dense": ["a", "b", "c"], "sparse": ["c", "a"]}, k=60)
    assert [f.memory_id for f in fused] == ["a", "c", "b"]
    a = fused[0]
    assert a.ranks == {"dense": 1, "sparse": 2}
    assert a.score == pytest.approx(1 / 61 + 1 / 62)


def test_rrf_weights_scale_a_source_and_a_missing_weight_is_one():
    fused = fuse_rrf({"dense": ["a", "b"], "graph": ["b"]}, k=0, weights={"dense": 0.5})
    assert {f.memory_id: f.score for f in fused} == {"a": 0.5, "b": pytest.approx(0.25 + 1.0)}
    assert fused[0].memory_id == "b"


def test_rrf_ties_break_by_best_rank_then_id_and_duplicates_keep_their_best_rank():
    fused = fuse_rrf({"x": ["b", "a", "b"], "y": ["a", "b"]}, k=60)
    assert [f.memory_id for f in fused] == ["a", "b"]  # equal scores; equal best rank; by id
    assert fused[1].ranks == {"x": 1, "y": 2}
    with pytest.raises(ValueError, match="k"):
        fuse_rrf({"x": ["a"]}, k=-1)


def test_boost_prefers_important_and_recent_memories_among_equals():
    now = datetime(2024, 1, 31, tzinfo=timezone.utc)
    fused = fuse_rrf({"dense": ["old", "new"], "sparse": ["new", "old"]})
    boosted = boost(fused, importance={"old": 0.0, "new": 0.0},
                    created={"old": now - timedelta(days=300), "new": now}, now=now)
    assert [b.memory_id for b in boosted] == ["new", "old"]
    boosted = boost(fused, importance={"old": 1.0, "new": None}, created={}, now=now)
    assert boosted[0].memory_id == "old"


def test_recency_halves_every_half_life_and_the_future_counts_as_now():
    now = datetime(2024, 1, 31, tzinfo=timezone.utc)
    assert recency_factor(now - timedelta(days=30), now, 30) == pytest.approx(0.5)
    assert recency_factor(now + timedelta(days=5), now, 30) == 1.0


def test_mmr_skips_a_near_duplicate_of_what_it_already_picked():
    vectors = {"a": (1.0, 0.0), "a2": (0.99, 0.01), "b": (0.0, 1.0)}
    fused = fuse_rrf({"dense": ["a", "a2", "b"]})
    picked = mmr(fused, lambda x, y: cosine(vectors[x], vectors[y]), limit=2, diversity=0.5)
    assert [p.memory_id for p in picked] == ["a", "b"]
    assert [p.memory_id for p in mmr(fused, lambda x, y: 0.0, limit=3, diversity=0.5)] == ["a", "a2", "b"]
    with pytest.raises(ValueError, match="diversity"):
        mmr(fused, lambda x, y: 0.0, limit=1, diversity=2)


def test_ties_share_a_rank_and_a_truncated_last_tie_group_is_dropped():
    from domain.ranking import ranks_with_ties

    scored = [("a", 3.0), ("b", 2.0), ("c", 2.0), ("d", 1.0), ("e", 1.0)]
    assert ranks_with_ties(scored, truncated=False) == [("a", 1), ("b", 2), ("c", 2), ("d", 4), ("e", 4)]
    assert ranks_with_ties(scored, truncated=True) == [("a", 1), ("b", 2), ("c", 2)]
    # Everything tied and cut at the limit: the source cannot say anything.
    assert ranks_with_ties([("x", 1.0), ("y", 1.0)], truncated=True) == []
    assert ranks_with_ties([], truncated=True) == []


def test_rrf_takes_explicit_ranks():
    fused = fuse_rrf({"graph": [("a", 1), ("b", 1)], "dense": ["b", "a"]}, k=0)
    assert {f.memory_id: f.score for f in fused} == {"a": 1.5, "b": 2.0}
    assert fused[0].ranks == {"graph": 1, "dense": 1}


def test_boost_favours_the_memories_it_is_told_to_by_their_weight():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    fused = fuse_rrf({"sparse": ["a", "b", "c"]}, k=5)
    plain = boost(fused, {}, {}, now, 0.0, 0.0)
    favoured = boost(fused, {}, {}, now, 0.0, 0.0, favoured={"b"}, favour_weight=0.25)
    assert [f.memory_id for f in plain] == ["a", "b", "c"]
    assert [f.memory_id for f in favoured] == ["b", "a", "c"]  # 1.25 / 7 > 1 / 6
    assert favoured[0].score == pytest.approx(1.25 / 7)
    far = boost(fuse_rrf({"sparse": ["a", "b", "c"]}, k=5), {}, {}, now, 0.0, 0.0, favoured={"c"}, favour_weight=0.25)
    assert [f.memory_id for f in far] == ["a", "c", "b"]  # 1.25 / 8 > 1 / 7, but not above 1 / 6: a gentle lift
