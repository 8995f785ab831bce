"""The report sections of the mixed-load and fault-injection benchmarks render from their results."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

import chaos  # noqa: E402
import mixed_load  # noqa: E402
from load_stats import reconcile, step_summary  # noqa: E402

MACHINE = {"cpu": "AMD EPYC", "cores": 2, "ram_gib": 23.5, "loadavg_1m_at_start": 1.0}


def step(rate: float, search_ms: float, passed: bool) -> dict:
    samples = [{"op": "search", "status": 200, "latency_ms": search_ms, "scheduled_s": 0.0}] * 10 + \
              [{"op": "add", "status": 202, "latency_ms": 60.0, "scheduled_s": 0.0},
               {"op": "add", "status": 503, "latency_ms": 3.0, "scheduled_s": 0.0}]
    return {**step_summary(samples, rate, 1.0), "passed": passed}


def test_mixed_load_section():
    result = {"machine": MACHINE, "users": 8, "seed_per_user": 200, "mode": "quick", "p99_limit_ms": 100.0,
              "max_error_ratio": 0.001, "steps": [step(5, 40.0, True), step(10, 250.0, False)],
              "highest_passing_rate": 5, "sustained": {**step(5, 45.0, True), "timeline": []}}
    text = mixed_load.report_markdown(result)
    assert "| 5 | 12.0 | 11.0 | 40 |" in text and "| fail |" in text and "add 503: 1" in text
    assert "search p99 < 100 ms and < 0.1 % errors: 5 req/s" in text
    assert "Sustained 1 s at 5 req/s" in text
    assert "![mixed load: latency vs offered rate](mixed_load.png)" in text


def test_chaos_section_and_verdict():
    acked = [{"marker": "zx0000000000000001", "memory_id": "m1"}]
    verification = {"projectors_lag_zero": True, "counts_match": True, "abandoned_adds": 0, "ok": True,
                    "list": reconcile(acked, {"zx0000000000000001": ["m1"]}),
                    "search": reconcile(acked, {})}
    result = {"machine": MACHINE, "params": {"rate": 6.0, "outage_s": 5.0, "settle_s": 10.0}, "write_retry_s": 120.0,
              "recovery": [{"component": "kafka", "healthy_after_restart_s": 8.25, "write_visible_after_restart_s": 9.5,
                            "projectors_caught_up_after_restart_s": None, "write_visible_after_kill_s": 15.0,
                            "client_errors": {"add 503": 4}},
                           {"component": "neo4j", "error": "did not become ready"}],
              "verification": verification}
    text = chaos.report_markdown(result)
    assert "| kafka | 8.2 s | 9.5 s | - | 15.0 s | add 503: 4 |" in text
    assert "| neo4j | restart failed: did not become ready | | | | |" in text
    assert "| search (BM25, by marker) | 0 | 1 | 0 | 0 |" in text
    assert "![fault injection timeline](chaos.png)" in text
