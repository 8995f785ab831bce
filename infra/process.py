"""Child processes recorded by PID, so `down` stops exactly what `up` started.

A PID file holds the PID and the process's start time from /proc, so a PID reused by
an unrelated process after a crash or reboot is never signalled.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive lock on `path` (released when the process dies, however it dies);
    BlockingIOError when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StartError(RuntimeError):
    """A server did not come up; the message names it and its log file."""


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 22 (starttime), counted after the parenthesised command name.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return int(fields[19])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text[-lines:])


@dataclass
class ProcessSpec:
    """What to run and how to know it is ready."""

    name: str
    argv: list[str]
    log_file: Path
    port: int | None = None
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    # Run as this system user and group (Postgres refuses root), with no supplementary groups:
    # dropping only the uid would keep root's group (gid 0) and its group permissions.
    user: str | int | None = None
    group: str | int | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    ready_timeout: float = 60.0
    probe: Callable[[], str] | None = None  # real protocol call; returns a detail, raises when not ready
    # "The process answers" for the supervisor (infra/supervisor.py); None: the probe. An API's
    # probe is /readyz, which fails while a dependency is down: no reason to restart the API.
    liveness: Callable[[], str] | None = None
    first_start: bool = False  # its data folder was created by this start (a cold start)


class ProcessTable:
    """PID files under <home>/run, one per started process."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def _file(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def record(self, name: str, pid: int, argv: list[str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._file(name).write_text(json.dumps({"pid": pid, "start": _start_ticks(pid), "argv": argv}))

    def pid(self, name: str) -> int | None:
        """The PID if the recorded process still runs; stale records are removed."""
        path = self._file(name)
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        ticks = _start_ticks(info["pid"])
        if ticks is None or ticks != info["start"]:
            path.unlink(missing_ok=True)
            return None
        return info["pid"]

    def forget(self, name: str) -> None:
        self._file(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("*.json")) if self.run_dir.exists() else []


def start(spec: ProcessSpec, table: ProcessTable, on_wait: Callable[[str], None] | None = None,
          on_spawn: Callable[[str, subprocess.Popen], None] | None = None) -> tuple[int, bool, float]:
    """Start `spec` unless it runs already; wait for its probe. Returns (pid, started, seconds).
    `on_spawn(name, popen)` hears of the process as soon as it is spawned (the supervisor)."""
    began = time.monotonic()
    pid = table.pid(spec.name)
    if pid is None:
        # A process that just died may hold its port for a moment: give it a little time.
        waited = time.monotonic() + 2.0
        while spec.port is not None and port_open(spec.host, spec.port) and time.monotonic() < waited:
            time.sleep(0.1)
        if spec.port is not None and port_open(spec.host, spec.port):
            raise StartError(
                f"{spec.name}: port {spec.host}:{spec.port} is already in use by a process recallstack did not start; "
                "stop it or configure another port"
            )
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(spec.log_file, "ab")
        env = {**os.environ, **spec.env}
        proc = subprocess.Popen(
            spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=spec.cwd, env=env, start_new_session=True,
            **({"user": spec.user, "group": spec.group, "extra_groups": []} if spec.user is not None else {}),
        )
        log.close()
        table.record(spec.name, proc.pid, spec.argv)
        if on_spawn is not None:
            on_spawn(spec.name, proc)
        pid, started = proc.pid, True
    else:
        proc, started = None, False
    deadline = time.monotonic() + spec.ready_timeout
    last_error = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            table.forget(spec.name)
            raise StartError(
                f"{spec.name} exited with code {proc.returncode} while starting; log {spec.log_file}:\n{log_tail(spec.log_file)}"
            )
        try:
            if spec.probe is not None:
                spec.probe()
            break
        except Exception as exc:  # any failure of the probe means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise StartError(
                f"{spec.name} did not become ready within {spec.ready_timeout:.0f}s ({last_error}); "
                f"log {spec.log_file}:\n{log_tail(spec.log_file)}"
            )
        if on_wait:
            on_wait(spec.name)
        time.sleep(0.25)
    return pid, started, time.monotonic() - began


def stop(name: str, table: ProcessTable, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Stop the recorded process and its process group; SIGKILL after `timeout`. True if it ran."""
    pid = table.pid(name)
    if pid is None:
        table.forget(name)
        return False
    try:
        os.kill(pid, sig)  # the leader shuts its own children down in order
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _start_ticks(pid) is not None:
        time.sleep(0.1)
    # Whatever is left of the group (a hung leader, orphaned helpers) is killed.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    while _start_ticks(pid) is not None:
        time.sleep(0.05)
    # Reap it if it is our own child (foreground `recallstack up`).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    table.forget(name)
    return True
