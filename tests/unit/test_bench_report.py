"""The benchmark report's pure parts (bench/report.py): figures from a run's JSON, the claim
verdicts, the markdown; the percentile the benches share (bench/percentiles.pct); the process-memory
summary (bench/process_memory.summarise). No stack."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

import report  # noqa: E402
from percentiles import pct  # noqa: E402
from process_memory import summarise  # noqa: E402


def level(clients, p50, p99, qps, size_mode="uncached", endpoint="gateway", errors=None, requests=100):
    return {"clients": clients, "p50_ms": p50, "p90_ms": p99, "p99_ms": p99, "qps": qps, "mode": size_mode,
            "endpoint": endpoint, "errors": errors or {}, "requests": requests,
            "error_pct": round(100 * sum((errors or {}).values()) / (requests + sum((errors or {}).values())), 1)}


def fixture_run(one_user_million: bool = False) -> dict:
    big = {"size": 1_000_000, "users": 1 if one_user_million else 100,
           "levels": [level(1, 70, 140, 14), level(20, 600, 900, 30)]}
    return {
        "suite": {"mode": "quick", "stack": "running", "started_at": "2026-11-29T00:00:00+00:00", "seconds": 600,
                  "machine": {"cores": 2, "ram_gib": 23.5, "cpu": "AMD EPYC", "loadavg_1m_at_start": 1.0},
                  "versions": {"recallstack_commit": "abc123", "kafka": "4.1.1"},
                  "steps": [{"name": "write", "status": "ok", "seconds": 60, "argv": ["bench/write_bench.py", "--json"]},
                            {"name": "replay", "status": "failed", "seconds": 3, "argv": ["x"], "error": "exit 1: boom"}],
                  "rss": {"idle": {"kafka": {"rss_mb_peak": 700.0, "rss_mb_mean": 690.0, "pss_mb_peak": 650.0, "samples": 5}}}},
        "write": {"single_add": [{"clients": 1, "requests": 100, "median_ms": 30.0, "p99_ms": 80.0, "throughput_per_s": 30.0},
                                 {"clients": 10, "requests": 100, "median_ms": 200.0, "p99_ms": 400.0, "throughput_per_s": 45.0}],
                  "batch_ingest": {"memories": 2000, "batch_size": 500, "memories_per_s": 400.0}},
        "search": {"sizes": [{"size": 10_000, "users": 1,
                              "levels": [level(1, 40, 90, 22), level(20, 500, 800, 35), level(50, 1200, 2500, 36),
                                         level(10, 20, 60, 400, size_mode="repeated")]},
                             big]},
        "peer": {"ratios_recallstack_over_mem0": {"add_per_s": 0.6, "search_p50_ms": 0.7, "hit@10": 1.4}},
    }


def verdicts(run: dict) -> dict[str, dict]:
    return {c["claim"]: c for c in report.claims(report.figures(run))}


def test_figures_take_the_largest_corpus_and_one_client():
    f = report.figures(fixture_run())
    assert (f["add_p50_ms"], f["add_p99_ms"]) == (30.0, 80.0)
    assert f["search_size"] == 1_000_000 and f["search_p99_ms"] == 140
    assert f["search_qps_max"] == 36 and f["search_qps_max_repeated"] == 400
    assert (f["agents_clients"], f["agents_p99_ms"]) == (20, 900)
    assert f["per_user_max"] == 10_000  # 1M over 100 users is 10k per user
    assert f["peer_ratios"]["hit@10"] == 1.4


def test_claim_verdicts():
    v = verdicts(fixture_run())
    assert v["sub-100 ms memory operations"]["verdict"] == report.NOT_MET  # search p99 140 ms at 1M
    assert v["1000 QPS"]["verdict"] == report.NOT_MET
    assert v["20 concurrent agents"]["verdict"] == report.MET  # no errors, p99 900 ms < 1 s
    assert v["1M memories per user"]["verdict"] == report.NOT_MEASURED
    assert v["99.9% availability"]["verdict"] == report.MET  # every search answered, no fault injected
    assert "no fault injected" in v["99.9% availability"]["measured"]


def test_million_in_one_user_is_judged_and_errors_fail_the_agents_claim():
    run = fixture_run(one_user_million=True)
    run["search"]["sizes"][1]["levels"][1] = level(20, 600, 900, 30, errors={"503": 5})
    v = verdicts(run)
    assert v["1M memories per user"]["verdict"] == report.NOT_MET  # p99 140 ms
    assert v["20 concurrent agents"]["verdict"] == report.NOT_MET
    assert v["99.9% availability"]["verdict"] == report.NOT_MET  # 5 of 505 searches failed


def test_chaos_availability_wins_over_the_success_rate():
    run = fixture_run()
    run["chaos"] = {"summary": {"availability_pct": 99.95}}
    v = verdicts(run)["99.9% availability"]
    assert v["verdict"] == report.MET and "killed" in v["measured"]


def test_the_mixed_loads_success_rate_is_not_called_availability_under_faults():
    run = fixture_run()
    run["mixed_load"] = {"availability": 1.0}
    v = verdicts(run)["99.9% availability"]
    assert "no fault injected" in v["measured"] and "100.000" in v["measured"]


def test_nothing_run_is_not_measured():
    assert {c["verdict"] for c in report.claims(report.figures({}))} == {report.NOT_MEASURED}


def test_render_has_the_headline_first_failed_steps_and_helper_sections():
    run = fixture_run()
    f = report.figures(run)
    md = report.render(run, f, report.claims(f), {"report_ingest.png"})
    assert md.index("## Claims of the seeds") < md.index("## Ingest")
    assert "**replay failed**: `exit 1: boom`" in md
    assert "![ingest](report_ingest.png)" in md and "report_rss.png" not in md  # only plots that exist
    assert "| kafka | 700.0 (650.0) |" in md
    assert "## Mixed load\n\nnot run" in md and "## Fault injection\n\nnot run" in md
    assert "hit@10 1.4" in md and "adds/s 0.6" in md
    assert "| corpus: search | 10,000 memories in 1 user(s), 1,000,000 memories in 100 user(s) |" in md


def test_helper_section_without_the_module_says_not_run(monkeypatch):
    monkeypatch.setattr(report.importlib, "import_module", lambda name: (_ for _ in ()).throw(ImportError("no module")))
    assert report.helper_section("chaos", {"x": 1}).startswith("not run")
    assert report.helper_section("chaos", None) == "not run"


def test_write_regenerates_from_json(tmp_path):
    for name, data in fixture_run().items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    path = report.write(tmp_path)
    assert path.read_text().startswith("# recallstack benchmark report (quick mode)")
    written = json.loads((tmp_path / "report.json").read_text())
    assert {c["claim"] for c in written["claims"]} >= {"1000 QPS"}
    assert any(t["target"].startswith("beside mem0: hit@10") for t in written["targets"])
    assert "## Issue 20: search targets" in path.read_text()
    assert (tmp_path / "report_search_clients.png").exists() and (tmp_path / "report_rss.png").exists()


@pytest.mark.parametrize("values, p, expected", [([5, 1, 3, 2, 4], 50, 3), ([5, 1, 3, 2, 4], 0, 1),
                                                 ([5, 1, 3, 2, 4], 100, 5), (list(range(1, 101)), 99, 99), ([7], 99, 7)])
def test_pct_is_nearest_rank_on_the_sorted_values(values, p, expected):
    assert pct(values, p) == expected


def test_rss_summary_peaks_and_means():
    s = summarise([{"a": {"rss_mb": 10.0, "pss_mb": 8.0}}, {"a": {"rss_mb": 30.0, "pss_mb": 20.0}, "b": {"rss_mb": 5.0, "pss_mb": 5.0}}])
    assert s["a"] == {"rss_mb_peak": 30.0, "rss_mb_mean": 20.0, "pss_mb_peak": 20.0, "samples": 2}
    assert s["b"]["samples"] == 1


def test_a_busy_machine_is_said_in_the_header():
    run = fixture_run()
    run["suite"]["machine"]["loadavg_1m_at_start"] = 4.4
    f = report.figures(run)
    assert "load average 4.4 on 2 cores" in report.render(run, f, report.claims(f), set())
    run["suite"]["machine"]["loadavg_1m_at_start"] = 0.5
    assert "pessimistic" not in report.render(run, f, report.claims(f), set())


def test_suite_steps_follow_the_mode_and_the_overrides(tmp_path):
    import argparse

    import suite

    def argv(mode, **over):
        args = argparse.Namespace(**({"mode": mode, "out": tmp_path, "peer_venv": tmp_path / "venv",
                                      "search_sizes": None, "clients": None, "replay_events": None} | over))
        return {s.name: s.argv for s in suite.steps_for(args, suite.MODES[mode], "py")}

    quick, full = argv("quick"), argv("full")
    assert list(quick) == ["embedder", "slice", "write", "visibility", "replay", "search", "locomo", "peer",
                           "mixed_load"]
    assert quick["mixed_load"][quick["mixed_load"].index("--mode") + 1] == "quick"
    assert full["mixed_load"][full["mixed_load"].index("--mode") + 1] == "full"  # with the 10-minute sustained run
    assert quick["search"][quick["search"].index("--sizes") + 1] == "10000,100000"  # issue 20's two tiers
    assert quick["search"][quick["search"].index("--clients") + 1] == "1,2,4,10"
    assert full["search"][full["search"].index("--clients") + 1] == "1,2,4,10,20"
    assert quick["search"][quick["search"].index("--repeated-clients") + 1] == "1,10"
    assert "--one-user" not in full["search"] and "--one-user" not in quick["search"]  # 1M over 100 users
    assert "--one-user" in argv("full", search_one_user=True)["search"]
    assert full["search"][full["search"].index("--sizes") + 1] == "10000,100000,1000000"
    assert argv("quick", search_duration=2.0)["search"][quick["search"].index("--duration") + 1] == "2.0"
    assert "--rounds" in quick["peer"]
    over = argv("quick", search_sizes="10000,100000", clients="1,50", replay_events="100000")
    assert over["search"][over["search"].index("--sizes") + 1] == "10000,100000"
    assert over["search"][over["search"].index("--clients") + 1] == "1,50"
    assert over["replay"][-1] == "100000"
    assert over["peer"][over["peer"].index("--peer-python") + 1] == str(tmp_path / "venv" / "bin" / "python")
