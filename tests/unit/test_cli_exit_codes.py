"""Exit codes and --json output of the CLI, without the stack: a data folder of its own and
every dependency pointed at a closed port (nothing shared is touched)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import cli.main as cli
from cli import stack_commands
from cli.output import FAILED, INTERRUPTED, OK, UNREACHABLE, unreachable
from tests.conftest import REPO

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """A fresh RECALLSTACK_HOME and every dependency unreachable (configured as external)."""
    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECALLSTACK_KAFKA_BOOTSTRAP", CLOSED)
    monkeypatch.setenv("RECALLSTACK_PG_DSN", f"postgresql://nobody:nothing@{CLOSED}/none")
    monkeypatch.setenv("RECALLSTACK_NEO4J_URI", f"bolt://{CLOSED}")
    monkeypatch.setenv("RECALLSTACK_REDIS_URL", f"redis://{CLOSED}/0")
    return tmp_path / "home"


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def only_document(out: str):
    """stdout holds exactly one JSON document, on one line (stdout is not a terminal here)."""
    assert out.endswith("\n") and out.count("\n") == 1, out
    return json.loads(out)


@pytest.mark.parametrize("argv", [["dlq", "list"], ["dlq", "retry", "--projection", "pg"],
                                  ["replay", "--projection", "cache"]])
def test_an_unreachable_dependency_exits_3(capsys, nowhere, argv):
    code, out, err = run(capsys, argv)
    assert code == UNREACHABLE
    assert out == ""
    assert "unreachable" in err and "recallstack status" in err


def test_an_unreachable_dependency_with_json_prints_an_error_document(capsys, nowhere):
    code, out, err = run(capsys, ["dlq", "list", "--json"])
    assert code == UNREACHABLE
    doc = only_document(out)
    assert doc["error"]["code"] == "unreachable"
    assert "Kafka" in doc["error"]["message"] and CLOSED.split(":")[0] in doc["error"]["message"]


def test_status_reports_in_full_and_exits_3_when_not_everything_runs(capsys, nowhere):
    code, out, err = run(capsys, ["status", "--json"])
    assert code == UNREACHABLE
    doc = only_document(out)
    assert doc["ok"] is False and doc["home"] == str(nowhere)
    assert {row["name"] for row in doc["processes"]} >= {"command-api", "query-api", "web-edge", "proxy",
                                                       "projector-postgres"}
    assert all(row["state"] == "stopped" and row["ready"] is False for row in doc["processes"])
    assert [row["projection"] for row in doc["lag"]] == ["postgres", "redis", "neo4j", "sparse", "worker-extract"]
    assert all(row["behind"] is None and row["error"].startswith("KafkaConnectionError") for row in doc["lag"])
    assert [row["service"] for row in doc["http_errors"]] == ["web-edge", "command", "query"]
    assert all({"requests_total", "errors_4xx_total", "errors_5xx_total", "window_s", "window_requests",
                "window_5xx_ratio", "error"} <= set(row) for row in doc["http_errors"])
    assert "checking" in err  # the progress note went to stderr


def test_infra_status_with_every_server_external_is_ok(capsys, nowhere):
    code, out, _ = run(capsys, ["infra", "status", "--json"])
    assert code == OK
    assert only_document(out) == {"ok": True, "processes": []}


def test_down_with_nothing_running(capsys, nowhere):
    code, out, err = run(capsys, ["down", "--json"])
    assert code == OK and only_document(out) == {"stopped": []}


def test_a_start_failure_exits_1_with_an_error_document(capsys, nowhere, monkeypatch):
    from infra.process import StartError

    def failing(args):
        raise StartError("kafka did not become ready within 60s; log /x/kafka.log:\nboom")

    monkeypatch.setattr(stack_commands, "cmd_up", failing)
    code, out, err = run(capsys, ["up", "--detach", "--json"])
    assert code == FAILED
    assert only_document(out)["error"] == {"code": "failed",
                                           "message": "kafka did not become ready within 60s; log /x/kafka.log:\nboom"}
    assert "kafka did not become ready" in err


def test_ctrl_c_exits_130(capsys, nowhere, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(stack_commands, "cmd_status", interrupted)
    code, out, err = run(capsys, ["status", "--json"])
    assert code == INTERRUPTED
    assert only_document(out)["error"]["code"] == "interrupted"
    assert "interrupted" in err


def test_a_bug_is_not_disguised_as_an_outage(capsys, nowhere, monkeypatch):
    def buggy(args):
        raise KeyError("oops")

    monkeypatch.setattr(stack_commands, "cmd_status", buggy)
    with pytest.raises(KeyError):  # the traceback reaches the user; Python exits 1
        cli.main(["status"])


def test_which_errors_mean_unreachable():
    from aiokafka.errors import KafkaConnectionError

    assert unreachable(ConnectionRefusedError(111, "refused")) is not None
    assert unreachable(KafkaConnectionError("Unable to bootstrap")) is not None
    assert unreachable(socket.gaierror(-2, "Name or service not known")) is not None
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as exc:
            raise RuntimeError("apply failed") from exc
    except RuntimeError as wrapped:
        assert isinstance(unreachable(wrapped), ConnectionResetError)
    assert unreachable(ExceptionGroup("many", [ValueError("x"), ConnectionRefusedError()])) is not None
    assert unreachable(TimeoutError("the switch did not succeed in 120 s")) is None  # replay's own failure: 1
    assert unreachable(ValueError("bad")) is None


def test_progress_goes_to_stderr_as_plain_lines_when_not_a_terminal(capsys):
    from cli.output import Steps

    with Steps() as steps:
        steps.note("starting infrastructure: kafka")
        steps.begin("kafka", "starting")
        steps.end("kafka", "ready (warm start) after 1.0s")
        steps.end("redis", "failed", ok=False)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["starting infrastructure: kafka", "kafka: ready (warm start) after 1.0s",
                                "redis: failed"]


def test_up_reports_each_start_and_a_ctrl_c_ends_every_wait_at_once(tmp_path):
    """stack.up tells the progress display about each process, and an interrupt does not
    wait for the readiness timeouts of the others."""
    from infra.process import ProcessSpec, ProcessTable, stop
    from infra.stack import up

    processes = ProcessTable(tmp_path / "run")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marker = tmp_path / "ready"
    specs = [ProcessSpec(name="quick", argv=sleeper, log_file=tmp_path / "quick.log", ready_timeout=30,
                         probe=lambda: "ok"),
             ProcessSpec(name="slow", argv=sleeper, log_file=tmp_path / "slow.log", ready_timeout=30,
                         probe=lambda: marker.read_text())]
    events: list[tuple[str, str]] = []
    try:
        marker.write_text("ok")
        started = up(specs, processes, on_progress=lambda name, state, s: events.append((name, state)))
        assert [s.name for s in started] == ["quick", "slow"] and all(s.started for s in started)
        assert sorted(events) == [("quick", "ready"), ("quick", "starting"), ("slow", "ready"), ("slow", "starting")]
        for name in ("quick", "slow"):
            stop(name, processes, timeout=5)

        marker.unlink()  # "slow" now never answers
        # Python's own Ctrl-C handler, as in a terminal: a run started in the background by a
        # non-interactive shell (`cmd &`, as CI may) inherits SIGINT ignored, and Python keeps that.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # what Ctrl-C sends
        began = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                up(specs, processes)
        finally:
            signal.signal(signal.SIGINT, previous)
        assert time.monotonic() - began < 5  # not the 30 s readiness timeout
        assert processes.pid("slow") is not None  # spawned, recorded: `down` can stop it
    finally:
        for name in ("quick", "slow"):
            stop(name, processes, timeout=5)


def test_the_entry_point_keeps_stdout_for_the_document(nowhere):
    """As a subprocess (what scripts run): one JSON document on stdout, the rest on stderr."""
    done = subprocess.run([sys.executable, "-m", "cli.main", "dlq", "list", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == UNREACHABLE
    assert json.loads(done.stdout)["error"]["code"] == "unreachable"
    assert "reading recallstack.dlq" in done.stderr and "Traceback" not in done.stderr
