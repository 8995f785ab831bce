"""What the CLI prints, where, and with which exit code.

stdout carries results only: a table for people or, with --json, exactly one JSON
document (indented on a terminal, one line when piped), so `recallstack status --json | jq`
works. Progress, messages and errors go to stderr: animated (rich) when stderr is a
terminal, one plain line per step otherwise (CI logs), whether or not --json is given.
"""

from __future__ import annotations

import json
import socket
import sys
import threading

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

OK = 0
FAILED = 1  # the operation ran and did not succeed (a server would not start, a dead letter still fails)
USAGE = 2  # bad arguments (argparse's own code)
UNREACHABLE = 3  # a dependency (Kafka, Postgres, Neo4j, Redis, a service) did not answer
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, what shells report)

EXIT_CODES_HELP = """\
Exit codes:
  0    ok
  1    failed: the operation ran and did not succeed (a server would not start,
       a replay could not switch, a dead letter still fails); the message says why
  2    usage error: unknown command, bad or missing arguments, or a RECALLSTACK_*
       setting that does not fit (named)
  3    a dependency is unreachable (Kafka, Postgres, Neo4j, Redis); for `status`
       and `infra status`: something is stopped or not ready (the report is
       printed in full either way)
  130  interrupted (Ctrl-C)
  With --json, a command that fails before it has a result (1, 3, 130) prints
  {"error": {"code": "failed"|"unreachable"|"interrupted", "message": ...}} on stdout."""

console = Console(stderr=True)


def emit_json(doc) -> None:
    """The one JSON document of a --json run, on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2 if sys.stdout.isatty() else None, default=str) + "\n")
    sys.stdout.flush()


def print_table(rows: list[dict], title: str) -> None:
    """Rows as a table on stdout (the human form of a result)."""
    table = Table(title=title)
    for column in rows[0].keys() if rows else ["name"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*[escape(str(v)) if v is not None else "-" for v in row.values()])
    Console(width=max(Console().width, 140)).print(table)


def error(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def describe(exc: BaseException) -> str:
    """`Type: message`, without the type twice (some libraries put it in the message)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def unreachable(exc: BaseException) -> BaseException | None:
    """The exception in `exc`'s chain that says a dependency could not be reached, if any."""
    kinds: list[type] = [ConnectionError, socket.gaierror]
    try:
        from aiokafka import errors as kafka

        kinds += [kafka.KafkaConnectionError, kafka.NoBrokersAvailable, kafka.KafkaTimeoutError]
    except ImportError:
        pass
    try:
        from asyncpg import exceptions as pg

        kinds += [pg.PostgresConnectionError, pg.CannotConnectNowError, pg.ConnectionDoesNotExistError]
    except ImportError:
        pass
    try:
        from neo4j import exceptions as neo4j

        kinds += [neo4j.ServiceUnavailable, neo4j.SessionExpired]
    except ImportError:
        pass
    try:
        from redis import exceptions as redis

        kinds += [redis.ConnectionError, redis.TimeoutError]
    except ImportError:
        pass
    try:
        import httpx

        kinds += [httpx.ConnectError, httpx.ConnectTimeout]
    except ImportError:
        pass
    seen, pending = set(), [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, tuple(kinds)):
            return current
        pending += [current.__cause__, current.__context__, *getattr(current, "exceptions", ())]
    return None


class Activity:
    """One line of feedback while something takes a while: a spinner on a terminal,
    a plain line per update otherwise."""

    def __init__(self, text: str):
        self.text = text
        self._status = console.status(escape(text)) if console.is_terminal else None

    def __enter__(self) -> "Activity":
        if self._status is not None:
            self._status.__enter__()
        else:
            console.print(self.text, highlight=False, soft_wrap=True)
        return self

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(escape(text))
        else:
            console.print(text, highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)


class Steps:
    """Named steps that run at the same time (servers starting): on a terminal, one live
    row each with a spinner, its state and the time it took (cleared at the end: the
    result follows on stdout); otherwise a plain line per finished step. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tasks: dict[str, int] = {}
        self._progress = Progress(
            SpinnerColumn(finished_text=" "), TextColumn("{task.description:<20}"),
            TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=console, transient=True,
        ) if console.is_terminal else None

    def __enter__(self) -> "Steps":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def note(self, text: str) -> None:
        """A heading for what follows (only without the live display, which shows it all)."""
        if self._progress is None:
            console.print(text, highlight=False, soft_wrap=True)

    def begin(self, name: str, state: str) -> None:
        if self._progress is None:
            return
        with self._lock:
            if name in self._tasks:
                self._progress.reset(self._tasks[name], state=escape(state))
            else:
                self._tasks[name] = self._progress.add_task(name, total=1, state=escape(state))

    def end(self, name: str, state: str, ok: bool = True) -> None:
        shown = escape(state) if ok else f"[red]{escape(state)}[/red]"
        if self._progress is None:
            console.print(f"{name}: {shown}", highlight=False, soft_wrap=True)
            return
        with self._lock:
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=1, state="")
            self._progress.update(self._tasks[name], completed=1, state=("[green]✓[/green] " if ok else "[red]✗[/red] ")
                                  + shown)
