"""The pure pieces of the LoCoMo retrieval benchmark (bench/retrieval_metrics.py)."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

from retrieval_metrics import (BM25, aggregate, hit_at_k, memory_text, parse_session_date,  # noqa: E402
                               question_metrics, recall_at_k, rrf, sessions, tokenize, top_k, valid_evidence)


@pytest.mark.parametrize("text, expected", [
    ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
    ("10:04 am on 19 December, 2023", datetime(2023, 12, 19, 10, 4, tzinfo=UTC)),
    ("12:28 am on 8 November, 2023", datetime(2023, 11, 8, 0, 28, tzinfo=UTC)),
    ("12:05 pm on 1 Jan, 2024", datetime(2024, 1, 1, 12, 5, tzinfo=UTC)),
    ("  7:00 PM on 29 February 2024 ", datetime(2024, 2, 29, 19, 0, tzinfo=UTC)),
])
def test_session_dates_parse_to_aware_utc(text, expected):
    parsed = parse_session_date(text)
    assert parsed == expected
    assert parsed.utcoffset().total_seconds() == 0
    assert parsed.isoformat().endswith("+00:00")


@pytest.mark.parametrize("text", ["", "8 May, 2023", "13:56 pm on 8 May, 2023", "1:56 pm on 8 Mai, 2023",
                                  "1:56 pm on 31 February, 2023"])
def test_bad_session_dates_are_refused(text):
    with pytest.raises(ValueError):
        parse_session_date(text)


def test_memory_text_and_sessions():
    assert memory_text({"speaker": "Mel", "text": "Look!", "blip_caption": "a photo of a dog"}) == \
        "Mel: Look! [image: a photo of a dog]"
    assert memory_text({"speaker": "Mel", "text": "Hi", "blip_caption": ""}) == "Mel: Hi"
    conv = {"speaker_a": "A", "session_2": [{"dia_id": "D2:1"}], "session_2_date_time": "1:00 pm on 2 May, 2023",
            "session_10": [{"dia_id": "D10:1"}], "session_10_date_time": "1:00 pm on 9 May, 2023",
            "session_11_date_time": "1:00 pm on 10 May, 2023", "session_1": [], "session_1_date_time": "x"}
    # Sessions ordered numerically (10 after 2), dated sessions without turns left out.
    assert [(n, d) for n, d, _ in sessions(conv)] == [(2, "1:00 pm on 2 May, 2023"), (10, "1:00 pm on 9 May, 2023")]


def test_valid_evidence_drops_malformed_and_unknown_ids():
    known = {"D1:3", "D8:6", "D9:17"}
    assert valid_evidence(["D1:3", "D8:6; D9:17", "D", "D:11:26", "D10:19", " D1:3", "D8:6"], known) == ["D1:3", "D8:6"]
    assert valid_evidence([], known) == []


def test_hit_and_recall_at_k():
    retrieved = ["D1:1", None, "D1:3", "D1:3", "D2:5", "D3:1"]
    evidence = ["D1:3", "D3:1", "D9:9"]
    assert hit_at_k(retrieved, evidence, 1) == 0.0
    assert hit_at_k(retrieved, evidence, 3) == 1.0
    assert recall_at_k(retrieved, evidence, 2) == 0.0
    assert recall_at_k(retrieved, evidence, 4) == pytest.approx(1 / 3)  # a duplicate counts once
    assert recall_at_k(retrieved, evidence, 20) == pytest.approx(2 / 3)
    assert hit_at_k([], evidence, 5) == 0.0 and recall_at_k([], evidence, 5) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(retrieved, [], 5)
    m = question_metrics(retrieved, evidence)
    assert set(m) == {f"{kind}@{k}" for kind in ("hit", "recall") for k in (1, 5, 10, 20)}


def test_a_result_may_stand_for_several_turns():
    # An extracted memory maps back to every turn it came from; None maps to none.
    retrieved = [("D1:1", "D1:2"), None, ["D3:1"], "D1:3"]
    evidence = ["D1:2", "D3:1", "D1:3"]
    assert hit_at_k(retrieved, evidence, 1) == 1.0
    assert recall_at_k(retrieved, evidence, 1) == pytest.approx(1 / 3)
    assert recall_at_k(retrieved, evidence, 3) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, evidence, 4) == 1.0
    assert hit_at_k([(), None], evidence, 2) == 0.0


def test_aggregate_per_category_and_overall():
    rows = [(1, {"hit@5": 1.0}), (1, {"hit@5": 0.0}), (4, {"hit@5": 1.0}), (5, {"hit@5": 0.0})]
    out = aggregate(rows)
    assert out["1"] == {"n": 2, "hit@5": 0.5}
    assert out["4"] == {"n": 1, "hit@5": 1.0}
    assert out["5"] == {"n": 1, "hit@5": 0.0}
    assert out["overall"] == {"n": 3, "hit@5": pytest.approx(2 / 3)}  # category 5 stays out of overall
    assert list(out)[-1] == "overall"


def test_tokenize_lowercases_and_drops_stopwords():
    assert tokenize("Caroline: I'm going to the LGBTQ support group, on 7 May!") == \
        ["caroline", "going", "lgbtq", "support", "group", "may"]


def test_bm25_matches_hand_computed_okapi():
    docs = ["apple banana", "apple apple cherry", "durian"]
    bm = BM25(docs, k1=1.5, b=0.75)
    scores = bm.scores("apple")
    n, df, avgdl = 3, 2, (2 + 3 + 1) / 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))

    def term(tf, dl):
        return idf * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))

    assert scores == pytest.approx([term(1, 2), term(2, 3), 0.0])
    assert scores[1] > scores[0]  # more occurrences win despite the longer document
    assert bm.scores("the of and").tolist() == [0.0, 0.0, 0.0]  # stopwords only
    assert bm.scores("Durian!")[2] > 0
    assert BM25([]).scores("anything").shape == (0,)


def test_top_k_orders_with_stable_ties_and_can_drop_zero_scores():
    scores = np.array([0.5, 2.0, 0.0, 2.0, 1.0])
    assert top_k(scores, 3) == [1, 3, 4]
    assert top_k(scores, 10, positive_only=True) == [1, 3, 4, 0]
    assert top_k(np.zeros(3), 2, positive_only=True) == []


def test_rrf_sums_reciprocal_ranks():
    fused = rrf([[1, 2, 3], [3, 1, 4]], k=60)
    assert fused[:2] == [1, 3]  # 1: 1/61 + 1/62 ; 3: 1/63 + 1/61
    assert set(fused) == {1, 2, 3, 4}
    assert rrf([[7, 8], [8, 7]], k=60) == [7, 8]  # a tie keeps first appearance
    assert rrf([[1, 2, 3]], limit=2) == [1, 2]
