"""What every read checks before it answers: that Postgres can answer, and that the read models
it uses have applied the request's consistency token (read-your-writes).

Postgres is required: a token it has not applied within the bound is NotYetApplied, a token
that cannot exist InvalidConsistencyToken, an unreachable Postgres (or its circuit open)
PostgresUnavailable. The other read models only degrade an answer: `lag` says why one has not
applied a token, and the caller leaves it out. The ports (positions callables, the breaker,
the errors that mean "unreachable") are injected by bootstrap.py; the query API's routes map
the errors to HTTP (query_api/routes/errors.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from domain.consistency import InvalidConsistencyToken, Notices, NotYetApplied, wait_until_applied

log = logging.getLogger(__name__)
T = TypeVar("T")
Positions = Callable[[], Awaitable[dict[int, int]]]  # partition -> the offset a read model applied


class PostgresUnavailable(Exception):
    """Postgres cannot answer: unreachable, or its circuit is open (503 with Retry-After)."""

    def __init__(self, cause: BaseException, breaker: CircuitBreaker):
        super().__init__(f"Postgres is unreachable ({type(cause).__name__})")
        self.cause, self.breaker = cause, breaker


@dataclass
class PostgresGuard:
    """Reads of the Postgres read model through its circuit breaker: refused at once while the
    circuit is open (no request waits for a dead server); `failures` (the driver's connection
    errors) count on it."""
    breaker: CircuitBreaker
    failures: tuple[type[BaseException], ...] = (OSError, ConnectionError)

    def refuse_if_open(self) -> None:
        if self.breaker.state == "open":
            raise self.down(CircuitOpen(self.breaker.name, self.breaker.retry_after_s()))

    def down(self, exc: BaseException) -> PostgresUnavailable:
        if not isinstance(exc, CircuitOpen):
            self.breaker.record_failure()
        log.warning("Postgres is unreachable: %s", exc)
        return PostgresUnavailable(exc, self.breaker)

    async def read(self, read: Awaitable[T]) -> T:
        """The result of a Postgres read; PostgresUnavailable when Postgres cannot answer."""
        try:
            self.refuse_if_open()
        except PostgresUnavailable:
            if hasattr(read, "close"):
                read.close()  # the coroutine never runs: no "never awaited" warning
            raise
        try:
            result = await read
        except self.failures as exc:
            raise self.down(exc) from exc
        self.breaker.record_success()
        return result


@dataclass
class Consistency:
    """Where the read models stand against a consistency token (`topic`'s offsets). `postgres`
    is waited for up to `wait_ms`; `graph`, `redis` and `sparse` (None: not configured) only
    degrade an answer. `partitions` and `log_ends` refuse a token that cannot exist; `notices`
    wake a Postgres wait as soon as its projector commits."""
    topic: str
    postgres: Positions
    wait_ms: int
    partitions: int | None = None
    log_ends: Positions | None = None
    notices: Notices | None = None
    graph: Positions | None = None
    redis: Positions | None = None
    sparse: Positions | None = None
    grace_ms: int = 250  # how long the graph may lag Postgres on a token before it is left out

    async def postgres_applied(self, token: str | None, guard: PostgresGuard, needed: bool = True) -> None:
        """Postgres has applied `token`. Its circuit open: PostgresUnavailable at once, unless the
        read can do without Postgres (`needed` False) and waits for no token."""
        try:
            if needed or token:
                guard.refuse_if_open()
            if token:
                await wait_until_applied(token, self.topic, "postgres", self.postgres, self.wait_ms, self.partitions,
                                         self.log_ends, self.notices)
        except guard.failures as exc:
            raise guard.down(exc) from exc

    async def graph_applied(self, token: str | None) -> None:
        """The graph read model has applied `token` (NotYetApplied past the bound)."""
        if token and self.graph is not None:
            await wait_until_applied(token, self.topic, "neo4j", self.graph, self.wait_ms, self.partitions,
                                     self.log_ends)

    async def lag(self, token: str | None, name: str, wait_ms: int | None = None) -> str | None:
        """None when read model `name` applied the token within `wait_ms` (default the bound;
        0: one look), or has no positions to ask; else why not."""
        positions = {"neo4j": self.graph, "redis": self.redis, "sparse": self.sparse}[name]
        if not token or positions is None:
            return None
        try:
            await wait_until_applied(token, self.topic, name, positions, self.wait_ms if wait_ms is None else wait_ms)
        except NotYetApplied as exc:
            return f"not yet consistent: {exc}"
        except InvalidConsistencyToken:
            return None  # the Postgres wait reports it
        except Exception as exc:  # its store is down: the detail goes to the log, not to the client
            log.warning("read model %s: cannot read its positions", name, exc_info=True)
            return f"unavailable ({type(exc).__name__})"
        return None

    async def within_grace(self, wait: asyncio.Task, name: str) -> str | None:
        """What `wait` (a `lag`) says within the grace the graph gets beyond Postgres."""
        try:
            return await asyncio.wait_for(wait, self.grace_ms / 1000)
        except asyncio.TimeoutError:
            return f"not yet consistent: read model {name} had not applied the token {self.grace_ms} ms after Postgres"
