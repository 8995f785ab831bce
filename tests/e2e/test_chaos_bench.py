"""The mixed-load and fault-injection benches (bench/mixed_load.py, bench/chaos.py) against
the real stack, briefly: the ladder measures and reports, and a kill -9 of the command API
under load is recovered from with every acknowledged add searchable exactly once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

pytestmark = pytest.mark.e2e


def test_a_short_ladder_step_is_measured_and_reported(services, tmp_path):
    import mixed_load

    base_url = f"http://{services.host}:{services.gateway_port}"
    result = mixed_load.run("quick", tmp_path, base_url=base_url, rates=[4.0], step_s=6, sustained_s=0, users=2,
                            seed_per_user=20)
    [step] = result["steps"]
    assert step["requests"] == 24
    assert step["search"]["count"] + step["search"]["errors"] == 20
    assert step["add"]["count"] + step["add"]["errors"] == 4
    assert step["search"]["p50_ms"] > 0 and step["passed"] == (result["highest_passing_rate"] == 4.0)
    assert json.loads((tmp_path / "mixed_load.json").read_text())["steps"][0]["requests"] == 24
    assert (tmp_path / "mixed_load.png").stat().st_size > 0
    assert "| 4.0 | 4.0 |" in mixed_load.report_markdown(result)


@pytest.mark.outage
def test_command_api_killed_under_load_every_acknowledged_add_is_there_once(services, tmp_path):
    import chaos
    from infra import stack

    processes = stack.table(services)
    before = processes.pid("command-api")
    assert before is not None
    base_url = f"http://{services.host}:{services.gateway_port}"
    result = chaos.run("quick", tmp_path, base_url=base_url, components=["command-api"], rate=6.0, outage_s=2.0,
                       settle_s=3.0, users=2)
    after = processes.pid("command-api")
    assert after is not None and after != before  # killed and started again
    [row] = result["recovery"]
    assert row["healthy_after_restart_s"] > 0 and row["write_visible_after_restart_s"] is not None
    assert sum(row["client_errors"].values()) > 0  # adds during the outage were refused, then retried
    verification = result["verification"]
    assert verification["ok"], verification
    assert verification["list"]["acknowledged"] > 3 and not verification["list"]["missing"]
    assert (tmp_path / "chaos.json").exists() and (tmp_path / "chaos.png").stat().st_size > 0
