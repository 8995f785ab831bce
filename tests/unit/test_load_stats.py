"""The pure pieces of the mixed-load and fault-injection benchmarks (bench/load_stats.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

from load_stats import (MARKER, arrival_offsets, errors_between, highest_passing_rate, markers_by_memory,  # noqa: E402
                        operation_for, percentile, reconcile, step_passes, step_summary, windows)


def test_five_searches_then_one_add():
    ops = [operation_for(i) for i in range(12)]
    assert ops == ["search"] * 5 + ["add"] + ["search"] * 5 + ["add"]
    assert [operation_for(i, reads_per_write=2) for i in range(3)] == ["search", "search", "add"]


def test_arrivals_are_on_a_fixed_schedule():
    assert arrival_offsets(4, 1) == [0, 0.25, 0.5, 0.75]
    assert len(arrival_offsets(10, 30)) == 300


def test_percentile_is_nearest_rank_and_none_when_empty():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 51  # round(0.5 * 99) = 50 -> the 51st value
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) is None


def sample(op: str, status, latency_ms: float, at: float = 0.0) -> dict:
    return {"op": op, "status": status, "latency_ms": latency_ms, "scheduled_s": at}


def test_step_summary_counts_errors_by_status_and_keeps_them_out_of_latency():
    samples = ([sample("search", 200, 10.0)] * 98 + [sample("search", 503, 1.0), sample("search", "timeout", 10000.0)]
               + [sample("add", 202, 50.0)] * 19 + [sample("add", 503, 2.0)])
    summary = step_summary(samples, offered_rate=12, duration_s=10)
    assert summary["requests"] == 120 and summary["achieved_rate"] == 12.0
    assert summary["errors"] == {"add 503": 1, "search 503": 1, "search timeout": 1}
    assert summary["error_ratio"] == pytest.approx(3 / 120, abs=1e-5)
    assert summary["ok_rate"] == 11.7
    assert summary["search"]["count"] == 98 and summary["search"]["p99_ms"] == 10.0 and summary["search"]["errors"] == 2
    assert summary["add"]["count"] == 19 and summary["add"]["max_ms"] == 50.0


def test_a_step_passes_on_search_p99_under_the_limit_with_few_errors():
    fast = step_summary([sample("search", 200, 40.0)] * 99 + [sample("search", 200, 99.0)], 10, 10)
    assert step_passes(fast, p99_limit_ms=100)
    slow = step_summary([sample("search", 200, 40.0)] * 98 + [sample("search", 200, 150.0)] * 2, 10, 10)
    assert not step_passes(slow, p99_limit_ms=100)
    # A slow add does not fail the verdict (the SLO is the search's); errors do.
    slow_adds = step_summary([sample("search", 200, 40.0)] * 100 + [sample("add", 202, 900.0)] * 20, 12, 10)
    assert step_passes(slow_adds)
    erring = step_summary([sample("search", 200, 40.0)] * 999 + [sample("search", 503, 1.0)], 100, 10)
    assert not step_passes(erring, max_error_ratio=0.001)  # 0.1 % is not under 0.1 %
    assert not step_passes(step_summary([], 10, 10))


def test_the_highest_passing_rate_need_not_be_the_last():
    steps = [{"offered_rate": 5, "passed": True}, {"offered_rate": 10, "passed": False},
             {"offered_rate": 20, "passed": True}, {"offered_rate": 40, "passed": False}]
    assert highest_passing_rate(steps) == 20
    assert highest_passing_rate([{"offered_rate": 5, "passed": False}]) is None


def test_reconcile_finds_missing_duplicated_and_other_ids():
    acked = [{"marker": "zx0000000000000001", "memory_id": "m1"}, {"marker": "zx0000000000000002", "memory_id": "m2"},
             {"marker": "zx0000000000000003", "memory_id": "m3"}, {"marker": "zx0000000000000004", "memory_id": "m4"}]
    found = {"zx0000000000000001": ["m1", "m1"],  # the same memory seen twice is once
             "zx0000000000000002": ["m2", "m9"], "zx0000000000000004": ["m8"], "zx00000000000000ff": ["m7"]}
    result = reconcile(acked, found)
    assert result["missing"] == ["zx0000000000000003"]
    assert result["duplicated"] == ["zx0000000000000002"]
    assert result["wrong_id"] == ["zx0000000000000004"]
    assert result["acknowledged"] == 4 and result["exactly_once"] == 1


def test_reconcile_all_exactly_once():
    acked = [{"marker": f"zx{i:016x}", "memory_id": f"m{i}"} for i in range(50)]
    result = reconcile(acked, {w["marker"]: [w["memory_id"]] for w in acked})
    assert result["exactly_once"] == 50 and not result["missing"] and not result["duplicated"]


def test_markers_are_found_whole_in_texts():
    texts = [("m1", "Caroline: I went to the support group (ref zx0123456789abcdef)"),
             ("m2", "no marker here, nor a short zx0123 one"), ("m3", "two: zxaaaaaaaaaaaaaaaa zxbbbbbbbbbbbbbbbb"),
             ("m4", "glued zx0123456789abcdefff is not a marker")]
    assert markers_by_memory(texts) == {"zx0123456789abcdef": ["m1"], "zxaaaaaaaaaaaaaaaa": ["m3"],
                                        "zxbbbbbbbbbbbbbbbb": ["m3"]}
    assert MARKER.fullmatch("zx" + "0" * 16)


def test_errors_between_counts_only_failed_attempts_in_the_window():
    attempts = [{"op": "add", "sent_s": 1.0, "status": 202}, {"op": "add", "sent_s": 2.0, "status": 503},
                {"op": "search", "sent_s": 2.5, "status": 503}, {"op": "add", "sent_s": 3.0, "status": "ConnectError"},
                {"op": "add", "sent_s": 9.0, "status": 503}]
    assert errors_between(attempts, 1.5, 5.0) == {"add 503": 1, "add ConnectError": 1, "search 503": 1}


def test_windows_group_by_scheduled_time():
    samples = [sample("search", 200, 10.0, 0.5), sample("search", 200, 30.0, 4.0), sample("add", 202, 80.0, 4.5),
               sample("search", 503, 1.0, 5.5), sample("search", 200, 20.0, 6.0)]
    rows = windows(samples, 5.0)
    assert [r["t_s"] for r in rows] == [0.0, 5.0]
    assert rows[0]["requests"] == 3 and rows[0]["search_p99_ms"] == 30.0 and rows[0]["add_p99_ms"] == 80.0
    assert rows[1]["errors"] == 1 and rows[1]["search_p50_ms"] == 20.0 and rows[1]["add_p99_ms"] is None
