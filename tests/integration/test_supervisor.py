"""The supervisor on real processes (small HTTP servers standing in for the stack's): kill -9,
an exit code, a crash loop against the budget, a hung (SIGSTOPped) process. The stack's own
processes under `recallstack up --detach`: tests/e2e/test_cli_json.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from infra.process import ProcessSpec, ProcessTable, start, stop
from infra.supervisor import RestartPolicy, Supervisor

pytestmark = pytest.mark.integration

FAST = RestartPolicy(first_backoff_s=0.1, max_backoff_s=0.4, stable_after_s=60, budget=3, window_s=60,
                     check_every_s=0.2, unhealthy_after=2)

# Serves HTTP until a file named in argv appears, then exits with code 3.
SERVER = textwrap.dedent("""
    import http.server, os, sys, threading, time
    port, flag = int(sys.argv[1]), sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while not os.path.exists(flag):
        time.sleep(0.05)
    sys.exit(3)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_spec(tmp_path: Path, name: str) -> ProcessSpec:
    port = free_port()

    def answers() -> str:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).raise_for_status()
        return "ok"

    return ProcessSpec(name=name, argv=[sys.executable, "-c", SERVER, str(port), str(tmp_path / f"{name}.exit")],
                       log_file=tmp_path / f"{name}.log", port=port, probe=answers, ready_timeout=20, stop_timeout=1)


@pytest.fixture
def supervised(tmp_path):
    """(supervisor, table, specs) of two servers, started and watched on a thread; all stopped after."""
    table = ProcessTable(tmp_path / "run")
    specs = [server_spec(tmp_path, "alpha"), server_spec(tmp_path, "beta")]
    watch = Supervisor(specs, table, tmp_path / "supervisor" / "state.json", policy=FAST)
    for spec in specs:
        start(spec, table, on_spawn=watch.adopt)
    runner = threading.Thread(target=watch.run, kwargs={"tick_s": 0.05}, daemon=True)
    runner.start()
    wait_for(watch.state_path.exists, what="the supervisor's first state")
    yield watch, table, specs
    watch.stopping.set()
    runner.join(10)
    for spec in specs:
        stop(spec.name, table, timeout=1)


def wait_for(condition, timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)


def state(watch: Supervisor) -> dict:
    return json.loads(watch.state_path.read_text())["processes"]


def test_a_process_killed_with_sigkill_is_restarted_and_the_kill_is_recorded(supervised):
    watch, table, specs = supervised
    alpha, beta = specs
    old, other = table.pid("alpha"), table.pid("beta")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: state(watch)["alpha"]["restarts"] == 1 and state(watch)["alpha"]["state"] == "running",
             what="alpha restarted")
    assert table.pid("alpha") not in (None, old)
    assert alpha.probe() == "ok"
    assert state(watch)["alpha"]["last_exit"] == "killed by SIGKILL"
    assert state(watch)["alpha"]["last_reason"] == "exited"
    assert table.pid("beta") == other and state(watch)["beta"]["restarts"] == 0  # the others are left alone


def test_a_crash_loop_is_restarted_within_its_budget_then_left_down(supervised, tmp_path):
    watch, table, specs = supervised
    (tmp_path / "beta.exit").touch()  # beta exits with code 3 now, and at once after each restart
    wait_for(lambda: state(watch)["beta"]["state"] == "failed", what="beta given up")
    beta = state(watch)["beta"]
    assert beta["restarts"] == FAST.budget
    # The last failure is a restart that exited while starting (start() says so), the first an exit.
    assert beta["last_exit"] in ("exit code 3", "did not start")
    assert table.pid("beta") is None
    assert table.pid("alpha") is not None and state(watch)["alpha"]["restarts"] == 0


def test_the_exit_code_of_a_process_it_started_is_recorded(supervised, tmp_path):
    watch, table, specs = supervised
    (tmp_path / "alpha.exit").touch()
    wait_for(lambda: state(watch)["alpha"]["last_exit"] is not None, what="alpha's exit seen")
    assert state(watch)["alpha"]["last_exit"] == "exit code 3"


def test_a_hung_process_is_stopped_and_restarted(supervised):
    watch, table, specs = supervised
    hung = table.pid("alpha")
    os.kill(hung, signal.SIGSTOP)  # alive, answering nothing
    try:
        wait_for(lambda: state(watch)["alpha"]["restarts"] == 1 and state(watch)["alpha"]["state"] == "running",
                 what="alpha restarted after hanging")
    finally:
        try:
            os.kill(hung, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert state(watch)["alpha"]["last_exit"] == "hung"
    assert "liveness checks in a row" in state(watch)["alpha"]["last_reason"]
    assert table.pid("alpha") not in (None, hung)
    assert specs[0].probe() == "ok"


def test_a_check_that_raises_a_bug_restarts_nothing_and_says_so(tmp_path, caplog):
    table = ProcessTable(tmp_path / "run")
    spec = server_spec(tmp_path, "gamma")

    def broken() -> str:
        raise AttributeError("a bug in the check")

    spec.liveness = broken
    watch = Supervisor([spec], table, tmp_path / "state.json", policy=FAST)
    start(spec, table, on_spawn=watch.adopt)
    pid = table.pid("gamma")
    try:
        with caplog.at_level("ERROR", logger="recallstack.supervisor"):
            began = time.monotonic()
            while time.monotonic() - began < FAST.check_every_s * (FAST.unhealthy_after + 3):
                watch.tick(time.monotonic())
                time.sleep(0.05)
        assert table.pid("gamma") == pid and watch.watches["gamma"].restarts == 0
        assert caplog.text.count("a bug; gamma is not restarted") == 1, caplog.text
    finally:
        watch.stopping.set()
        stop("gamma", table, timeout=1)


# Serves /metrics whose consume-loop heartbeat stopped 10 minutes ago: the page answers, the loop does not.
QUIET_LOOP = textwrap.dedent("""
    import sys, time
    from prometheus_client import start_http_server
    from adapters import heartbeat
    heartbeat.HEARTBEAT.labels("projector-stuck").set(time.time() - 600)
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    while True:
        time.sleep(1)
""")


def test_a_process_whose_consume_loop_is_quiet_is_restarted(tmp_path):
    from functools import partial

    from infra import liveness

    port = free_port()
    table = ProcessTable(tmp_path / "run")
    spec = ProcessSpec(name="stuck", argv=[sys.executable, "-c", QUIET_LOOP, str(port)],
                       log_file=tmp_path / "stuck.log", port=port, ready_timeout=20, stop_timeout=1,
                       cwd=Path(__file__).resolve().parents[2],
                       probe=partial(liveness.http_get, "127.0.0.1", port, "/metrics"),
                       liveness=partial(liveness.loop_alive, "127.0.0.1", port))
    watch = Supervisor([spec], table, tmp_path / "state.json", policy=FAST)
    start(spec, table, on_spawn=watch.adopt)
    first = table.pid("stuck")
    with pytest.raises(ConnectionError, match=r"no progress for 6\d\d s \(projector-stuck\)"):
        spec.liveness()
    try:
        deadline = time.monotonic() + 30
        while watch.watches["stuck"].restarts == 0 or watch.watches["stuck"].state != "running":
            assert time.monotonic() < deadline, watch.watches["stuck"].row()
            watch.tick(time.monotonic())
            time.sleep(0.05)
        assert watch.watches["stuck"].last_exit == "hung"
        assert "no progress" in watch.watches["stuck"].last_reason
        assert table.pid("stuck") not in (None, first)
    finally:
        watch.stopping.set()
        stop("stuck", table, timeout=1)
