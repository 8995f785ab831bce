"""`recallstack up`'s supervisor as a process of the CLI (infra/supervisor.py is the
supervisor itself): in the foreground, `up` supervises; with `--detach`, the process that
starts the stack stays behind as its supervisor.

`up --detach` forks first (before any thread exists): the child starts everything on the
caller's terminal, then tells the parent how it went through a pipe, leaves the terminal and
supervises; the parent exits with what it was told. So the supervisor is the parent of what
it starts, and knows their exit codes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from cli.output import OK

_DETACH_PIPE: list[int] = []


def fork_detached() -> int | None:
    """In the parent: the exit code to return (after the child has started everything or
    failed). In the child: None (carry on)."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _DETACH_PIPE.append(write_end)
        return None
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            try:
                word = pipe.read(1)
                break
            except KeyboardInterrupt:  # the child hears Ctrl-C too, and says what it left running
                continue
    if word:
        return word[0]
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # it failed: its own error went to the terminal
    return code if code >= 0 else 128 - code


def report_detached(code: int) -> None:
    """The child tells the waiting parent its exit code (once)."""
    while _DETACH_PIPE:
        fd = _DETACH_PIPE.pop()
        os.write(fd, bytes([code]))
        os.close(fd)


def become_detached(watch, processes, log_file: Path, cfg) -> None:
    """Leave the terminal (its own session; output to `log_file`), release the parent, and
    supervise until SIGTERM (`down`); the processes keep running when it stops."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.setsid()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: watch.stopping.set())
    # Recorded before the parent returns (so `down` finds it); then the caller's shell, or a
    # pipe to jq, has its answer and EOF.
    supervise(watch, processes, None, cfg, recorded=lambda: report_detached(OK))
    os._exit(0)  # nothing of the CLI's exit path (it printed already, to a terminal it left)


def supervise(watch, processes, log_file: Path | None, cfg, recorded=lambda: None) -> None:
    """Watch until told to stop (watch.stopping), recorded as the stack's supervisor meanwhile;
    `recorded()` is called once the record is there."""
    from infra import supervisor

    log_to(log_file, cfg, console_too=log_file is not None)
    processes.record(supervisor.NAME, os.getpid(), sys.argv)
    recorded()
    try:
        watch.run()
    finally:
        processes.forget(supervisor.NAME)


def log_to(log_file: Path | None, cfg, console_too: bool = False) -> None:
    """The supervisor's lines: JSON on stderr (the detached one's stderr is its log file);
    in the foreground, plain lines on the terminal and JSON in `log_file`."""
    from adapters import observability

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per liveness check is noise
    if log_file is None:
        observability.configure_logging("supervisor", cfg.log_format or None, cfg.log_level or None)
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    observability.configure_logging("supervisor", cfg.log_format or None, cfg.log_level or None,
                                    stream=open(log_file, "a", buffering=1))
    if console_too:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setFormatter(logging.Formatter("supervisor: %(message)s"))
        logging.getLogger("recallstack.supervisor").addHandler(terminal)
