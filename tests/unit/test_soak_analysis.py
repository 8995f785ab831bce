"""The pure pieces of the soak benchmark (bench/soak.py): disk per 1,000 memories, the
memory-growth verdict, a window's latency and errors; and process memory that does not
count the supervisor's children twice (bench/process_memory.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

from process_memory import tree_memory_mb  # noqa: E402
from soak import disk_per_thousand, memory_growth, slope, window_stats  # noqa: E402


def sample(t: float, acked: int, pss: dict, disk: dict) -> dict:
    return {"t_s": t, "acked": acked, "rss_mb": {n: 2 * mb for n, mb in pss.items()}, "pss_mb": pss,
            "disk_mb": {"kafka": None, "postgres": None, "neo4j": None, "redis": None, **disk}}


def test_slope_is_least_squares_and_undefined_without_spread():
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2)
    assert slope([0, 1, 2], [0, 2, 1]) == pytest.approx(0.5)
    assert slope([5], [1]) is None and slope([2, 2], [1, 9]) is None


def test_disk_per_thousand_memories_is_the_slope_against_acknowledged_adds():
    samples = [sample(t, 500 * t, {}, {"kafka": 100 + 2.5 * t, "postgres": 50 + 0.5 * t}) for t in range(6)]
    per = disk_per_thousand(samples)
    assert per["kafka"] == pytest.approx(5.0) and per["postgres"] == pytest.approx(1.0)  # first to last
    assert per["neo4j"] is None and per["redis"] is None  # not measured (external, or absent)


def test_memory_that_levels_off_is_bounded_and_memory_that_climbs_is_not():
    hour = 3600
    samples = []
    for k in range(13):  # every 5 minutes for an hour
        t = k * 300
        samples.append(sample(t, k, {
            "query-api": 300 + min(k, 4) * 10,  # warms up, then flat
            "leaky": 200 + 50 * t / hour * 2,  # +100 MB an hour, steadily
            "noisy": 1000 + (5 if k % 2 else -5),  # wobbles
        }, {}))
    growth = memory_growth(samples)
    assert growth["query-api"]["keeps_growing"] is False and growth["noisy"]["keeps_growing"] is False
    assert growth["leaky"]["keeps_growing"] is True
    assert growth["leaky"]["mb_per_hour_second_half"] == pytest.approx(100, abs=0.5)
    assert growth["leaky"]["first_mb"] == 200 and growth["leaky"]["measure"] == "pss_mb"
    assert memory_growth(samples, "rss_mb")["leaky"]["mb_per_hour_second_half"] == pytest.approx(200, abs=1)


def test_a_window_counts_errors_and_search_percentiles():
    window = [{"op": "search", "status": 200, "latency_ms": float(ms)} for ms in range(1, 101)]
    window += [{"op": "add", "status": 202, "latency_ms": 9.0}, {"op": "add", "status": "503 log_unavailable",
                                                                 "latency_ms": 3.0},
               {"op": "search", "status": "timeout", "latency_ms": 10000.0}]
    stats = window_stats(window)
    assert stats == {"requests": 103, "errors": 2, "search_p50_ms": 51.0, "search_p99_ms": 100.0}
    assert window_stats([])["search_p99_ms"] is None


def test_a_process_tree_leaves_out_processes_counted_under_their_own_names():
    import os

    me = os.getpid()
    children = {me: [1]}  # pid 1 stands for a recorded process the supervisor restarted
    alone = tree_memory_mb(me, children, frozenset({1}))
    with_child = tree_memory_mb(me, children)
    assert alone["processes"] == 1 and with_child["processes"] == 2
    assert with_child["rss_mb"] > alone["rss_mb"]
