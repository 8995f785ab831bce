"""The process table with real child processes (sleep, a tiny HTTP server): `down`
stops exactly what `up` started, and a stale record never signals a reused PID."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.process import ProcessSpec, ProcessTable, StartError, start, stop


def spec(tmp_path, name="sleeper", argv=None, probe=None, **kw):
    return ProcessSpec(name=name, argv=argv or ["sleep", "30"], log_file=tmp_path / f"{name}.log",
                       probe=probe, **kw)


def test_start_is_idempotent_and_stop_ends_the_process(tmp_path):
    table = ProcessTable(tmp_path / "run")
    pid, started, _ = start(spec(tmp_path), table)
    assert started and table.pid("sleeper") == pid
    again, started_again, _ = start(spec(tmp_path), table)
    assert (again, started_again) == (pid, False)
    assert stop("sleeper", table, timeout=5)
    assert table.pid("sleeper") is None
    assert not stop("sleeper", table)  # nothing left to stop


def test_a_record_whose_pid_was_reused_is_stale_and_nothing_is_signalled(tmp_path):
    table = ProcessTable(tmp_path / "run")
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        table.run_dir.mkdir(parents=True)
        # A record naming the bystander's PID but another start time: a crash left it, the PID got reused.
        (table.run_dir / "ghost.json").write_text(json.dumps({"pid": bystander.pid, "start": 1, "argv": []}))
        assert table.pid("ghost") is None
        assert not stop("ghost", table)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_process_that_exits_while_starting_is_reported_with_its_log(tmp_path):
    table = ProcessTable(tmp_path / "run")
    failing = spec(tmp_path, "broken", argv=[sys.executable, "-c", "print('bad config: port'); raise SystemExit(3)"],
                   probe=lambda: (_ for _ in ()).throw(ConnectionError("not yet")))
    with pytest.raises(StartError, match=r"(?s)broken exited with code 3.*bad config: port"):
        start(failing, table)
    assert table.pid("broken") is None


def test_a_server_that_never_answers_times_out_naming_it_and_its_log(tmp_path):
    table = ProcessTable(tmp_path / "run")
    silent = spec(tmp_path, "silent", probe=lambda: (_ for _ in ()).throw(ConnectionError("refused")),
                  ready_timeout=0.5)
    try:
        with pytest.raises(StartError, match=r"silent did not become ready within 0s \(ConnectionError: refused\); log"):
            start(silent, table)
    finally:
        stop("silent", table, timeout=2)
