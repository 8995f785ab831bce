"""The supervisor: `recallstack up` restarts what it started when it exits or stops answering.

`up` in the foreground supervises in its own process; `up --detach` leaves a supervisor
process behind (recorded as `supervisor` in the process table, logging to
logs/supervisor.log) that is the parent of everything it started, so it knows each exit
code. `down` stops the supervisor first, then the rest.

A process is restarted when it exits (whatever its code: nothing of the stack exits on
purpose while the stack is up) or when its liveness check fails `unhealthy_after` times in
a row (a hung process: it is stopped first, SIGKILL after its stop timeout). Liveness is
"the process answers", never "its dependencies answer": an API whose Kafka is down is
not ready, and restarting it would not bring Kafka back.

Restarts back off (1 s, doubling to 30 s; from 1 s again once a process has run for a
minute) and have a budget: a process restarted `budget` times within `window_s` is left
down, logged as an error and shown as `failed` by `status` (a crash loop would otherwise
hide its cause in a log that keeps growing). What the supervisor knows is in
<home>/supervisor/state.json: restarts, the last exit and its reason, per process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

from infra.process import ProcessSpec, ProcessTable, StartError, start, stop

log = logging.getLogger("recallstack.supervisor")

NAME = "supervisor"  # its record in the process table
STOP_TIMEOUT_S = 180.0  # a foreground `up` stops the whole stack when told to stop


# What a check raises when the process does not answer (refused, timed out, closed, not 200);
# anything else is a bug in the check.
UNANSWERED = (OSError, StartError, httpx.HTTPError)


def state_file(home: Path) -> Path:
    return home / "supervisor" / "state.json"


@dataclass(frozen=True)
class RestartPolicy:
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    stable_after_s: float = 60.0  # ran this long: the next failure backs off from the start again
    budget: int = 5  # restarts within window_s; one more failure and the process is left down
    window_s: float = 600.0
    check_every_s: float = 10.0  # liveness
    unhealthy_after: int = 3  # liveness checks failed in a row: hung


@dataclass
class Watch:
    """What the supervisor knows of one process. Pure bookkeeping: no I/O, times passed in."""

    name: str
    running_since: float = 0.0
    state: str = "running"  # running | waiting (to restart) | restarting | failed (left down)
    restarts: int = 0
    recent: list[float] = field(default_factory=list)  # restart times within the window
    streak: int = 0  # restarts since the process last ran stable_after_s
    next_restart_at: float | None = None
    failed_checks: int = 0
    last_exit: str | None = None  # "exit code 1", "killed by SIGKILL", "hung", ...
    last_reason: str | None = None
    last_failure_at: str | None = None

    def failure(self, now: float, exit_: str, reason: str, policy: RestartPolicy, wall: str = "") -> float | None:
        """It exited or hung at `now`: seconds until its restart, or None when its budget is
        spent (it stays down: state `failed`)."""
        self.last_exit, self.last_reason, self.last_failure_at = exit_, reason, wall or None
        self.failed_checks = 0
        self.recent = [t for t in self.recent if now - t < policy.window_s]
        if len(self.recent) >= policy.budget:
            self.state, self.next_restart_at = "failed", None
            return None
        if now - self.running_since >= policy.stable_after_s:
            self.streak = 0
        delay = min(policy.max_backoff_s, policy.first_backoff_s * 2 ** self.streak)
        self.state, self.next_restart_at = "waiting", now + delay
        return delay

    def attempted(self, now: float) -> None:
        """A restart was tried at `now` (it counts against the budget whether it started or not)."""
        self.restarts += 1
        self.streak += 1
        self.recent.append(now)

    def restarted(self, now: float) -> None:
        self.attempted(now)
        self.state, self.next_restart_at, self.running_since = "running", None, now

    def check(self, ok: bool, policy: RestartPolicy) -> bool:
        """A liveness check's outcome; True when the process counts as hung."""
        self.failed_checks = 0 if ok else self.failed_checks + 1
        return self.failed_checks >= policy.unhealthy_after

    def row(self) -> dict:
        return {"state": self.state, "restarts": self.restarts, "last_exit": self.last_exit,
                "last_reason": self.last_reason, "last_failure_at": self.last_failure_at}


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown (not started by this supervisor)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Watches `specs` (recorded in `table`), restarting them by `policy`. `tick()` is one
    pass; `run()` ticks until `stopping` is set. Restarts and liveness checks run on a small
    pool so that one slow start never holds the others' watch."""

    def __init__(self, specs: list[ProcessSpec], table: ProcessTable, state_path: Path,
                 policy: RestartPolicy = RestartPolicy(), children: dict[str, subprocess.Popen] | None = None):
        self.specs = {spec.name: spec for spec in specs}
        self.table = table
        self.state_path = state_path
        self.policy = policy
        self.children: dict[str, subprocess.Popen] = dict(children or {})
        now = time.monotonic()
        self.watches = {name: Watch(name, running_since=now) for name in self.specs}
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="supervisor")
        self._restarts: dict[str, Future] = {}
        self._checks: dict[str, Future] = {}
        self._checked_at: dict[str, float] = {}
        self._broken_checks: set[str] = set()

    def adopt(self, name: str, proc: subprocess.Popen) -> None:
        """A process started for `name` (start()'s on_spawn): its exit code will be known."""
        self.children[name] = proc

    def run(self, tick_s: float = 0.5) -> None:
        self.save()
        log.info("supervising %d processes (pid %d)", len(self.specs), os.getpid())
        try:
            while not self.stopping.wait(tick_s):
                try:
                    self.tick(time.monotonic())
                except Exception:  # the supervisor outlives its own faults (a full disk under save())
                    log.exception("supervisor: a watch pass failed; the next one goes on")
        finally:  # a restart under way finishes (and is recorded), so that whoever stops the stack sees it
            self._pool.shutdown(wait=True, cancel_futures=True)

    def tick(self, now: float) -> None:
        changed = False
        for name, spec in self.specs.items():
            watch = self.watches[name]
            if name in self._restarts:
                changed |= self._restart_done(name, now)
            elif watch.state == "waiting" and now >= watch.next_restart_at:
                watch.state = "restarting"
                self._restarts[name] = self._pool.submit(self._restart, spec)
            elif watch.state == "running":
                if self.table.pid(name) is None:
                    self._failed(name, now, describe_exit(self._exit_code(name)), "exited")
                    changed = True
                else:
                    changed |= self._watch_liveness(name, spec, now)
        if changed:
            self.save()

    def _restart(self, spec: ProcessSpec) -> None:
        stop(spec.name, self.table, sig=spec.stop_signal, timeout=spec.stop_timeout)  # a hung one is still there
        self.children.pop(spec.name, None)
        start(spec, self.table, on_spawn=self.adopt)

    def _restart_done(self, name: str, now: float) -> bool:
        future = self._restarts[name]
        if not future.done():
            return False
        del self._restarts[name]
        watch = self.watches[name]
        try:
            future.result()
        except Exception as exc:  # StartError mostly; anything else is counted the same way
            watch.attempted(now)
            self._failed(name, now, "did not start", str(exc).splitlines()[0][:300])
            return True
        watch.restarted(now)
        log.warning("%s restarted (restart %d; it had %s: %s)", name, watch.restarts, watch.last_reason,
                    watch.last_exit)
        return True

    def _watch_liveness(self, name: str, spec: ProcessSpec, now: float) -> bool:
        check = spec.liveness or spec.probe
        if check is None:
            return False
        future = self._checks.get(name)
        if future is None:
            if now - self._checked_at.setdefault(name, now) >= self.policy.check_every_s:  # one interval after start
                self._checked_at[name] = now
                self._checks[name] = self._pool.submit(check)
            return False
        if not future.done():
            return False
        del self._checks[name]
        error = future.exception()
        if error is not None and not isinstance(error, UNANSWERED):
            # A bug in the check is not the process hanging: restarting would hide it (and
            # restart everything at once). Said once per process and check.
            if name not in self._broken_checks:
                self._broken_checks.add(name)
                log.error("the liveness check of %s failed with %r: a bug; %s is not restarted for it", name, error, name)
            return False
        if not self.watches[name].check(error is None, self.policy):
            return False
        self._failed(name, now, "hung", f"did not answer {self.policy.unhealthy_after} liveness checks in a row "
                                        f"({type(error).__name__}: {str(error)[:200]})")
        return True

    def _exit_code(self, name: str) -> int | None:
        proc = self.children.pop(name, None)
        if proc is None:
            return None
        try:
            return proc.wait(timeout=1)  # reaps it: the table saw it gone or a zombie
        except subprocess.TimeoutExpired:
            return None

    def _failed(self, name: str, now: float, exit_: str, reason: str) -> None:
        watch = self.watches[name]
        self._checks.pop(name, None)  # a check of the process that is gone says nothing of the next
        wall = datetime.now(timezone.utc).isoformat(timespec="seconds")
        delay = watch.failure(now, exit_, reason, self.policy, wall)
        log_file = self.specs[name].log_file
        if delay is None:
            log.error("%s %s (%s); %d restarts within %.0f s: left down until `recallstack up`. Its log: %s",
                      name, reason, exit_, self.policy.budget, self.policy.window_s, log_file)
        else:
            log.warning("%s %s (%s); restarting in %.0f s. Its log: %s", name, reason, exit_, delay, log_file)

    def save(self) -> None:
        """The state `status` shows, written whole (a reader never sees half of it)."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"pid": os.getpid(), "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "processes": {name: watch.row() for name, watch in self.watches.items()}}
        partial = self.state_path.with_suffix(".tmp")
        partial.write_text(json.dumps(doc, indent=1))
        partial.replace(self.state_path)


def read_state(home: Path, table: ProcessTable) -> dict:
    """What `status` shows of the supervisor: whether it runs, and its per-process rows."""
    try:
        doc = json.loads(state_file(home).read_text())
    except (OSError, ValueError):
        doc = {}
    return {"pid": table.pid(NAME), "processes": doc.get("processes", {}), "updated_at": doc.get("updated_at")}
