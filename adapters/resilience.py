"""Per-dependency circuit breakers, time budgets and retries for the services' outbound
calls, and what /readyz says about each dependency (docs/observability.md, "Degradation
modes").

One breaker per dependency per process (`breaker("postgres")`, `"neo4j"`, `"redis"`,
`"llm"`): every guarded call to it counts, so once it failed `failure_threshold` times in
a row the callers stop paying its timeout and fail (or degrade) at once until it is tried
again after `reset_after_s`. Each breaker's state is the gauge
recallstack_circuit_breaker_state{breaker}.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Gauge

from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from domain.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

BREAKER_STATE = Gauge("recallstack_circuit_breaker_state",
                      "State of a circuit breaker, read at scrape time: 0 closed, 1 half-open (one trial call), 2 open",
                      ["breaker"])
STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}

# A dependency that is down fails fast after this many failures in a row, and is tried
# again this long after: short, because these outages are usually a restart (Postgres is
# back ~1 s after a kill under the supervisor). At 5 s, searches were refused for ~3 s
# after Postgres was back, and a client that honours Retry-After waited past its 5 s. A
# trial a second costs a dead dependency one refused connection per process.
FAILURE_THRESHOLD = 3
RESET_AFTER_S = 1.0

_breakers: dict[str, CircuitBreaker] = {}


def watch(breaker: CircuitBreaker) -> CircuitBreaker:
    """Export the breaker's state on /metrics (read at scrape time)."""
    BREAKER_STATE.labels(breaker.name).set_function(lambda b=breaker: STATE_VALUE[b.state])
    return breaker


def breaker(name: str, failure_threshold: int = FAILURE_THRESHOLD, reset_after_s: float = RESET_AFTER_S
            ) -> CircuitBreaker:
    """This process's breaker of dependency `name` (made on first use, then shared)."""
    found = _breakers.get(name)
    if found is None:
        found = _breakers[name] = watch(CircuitBreaker(name, failure_threshold, reset_after_s))
    return found


def retry_after(b: CircuitBreaker, at_least: int = 1) -> int:
    """Whole seconds for a Retry-After header while `b` refuses calls."""
    return max(at_least, math.ceil(b.retry_after_s()))


def refuse_if_open(b: CircuitBreaker) -> None:
    """Raise CircuitOpen while `b` is open (a half-open breaker lets calls through, so the
    dependency's return is noticed by the next call that reports)."""
    if b.state == "open":
        raise CircuitOpen(b.name, b.retry_after_s())


async def call(b: CircuitBreaker, make: Callable[[], Awaitable[T]], *, timeout_s: float,
               failures: tuple[type[BaseException], ...] = (OSError, ConnectionError),
               retry: RetryPolicy | None = None) -> T:
    """One guarded call to a dependency: refused at once while `b` is open (CircuitOpen);
    else `make()` within `timeout_s` (the whole budget, retries included). An exception in
    `failures`, or the budget running out, counts on the breaker and is retried per
    `retry` (only for calls safe to repeat) while the budget allows; any other exception
    means the dependency answered (a success for the breaker) and is raised as is."""
    began = time.monotonic()
    attempt = 0
    while True:
        if not b.allow():
            raise CircuitOpen(b.name, b.retry_after_s())
        remaining = timeout_s - (time.monotonic() - began)
        try:
            result = await asyncio.wait_for(make(), max(0.001, remaining))
        except (asyncio.TimeoutError, *failures):
            b.record_failure()
            wait = (retry or RetryPolicy.none()).may_retry(attempt, time.monotonic() - began, timeout_s)
            if wait is None:
                raise
            attempt += 1
            await asyncio.sleep(wait)
            continue
        except asyncio.CancelledError:
            raise
        except BaseException:
            b.record_success()
            raise
        b.record_success()
        return result


async def tcp_check(bootstrap: str) -> None:
    """The first server of a `host:port[,...]` list accepts a connection (raises OSError if not)."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.close()
    await writer.wait_closed()


@dataclass
class Dependency:
    """One dependency of a service, as /readyz reports it.

    required: the service cannot do its job without it (/readyz 503 while it is down);
    otherwise the service degrades, and `impact` says how."""
    name: str
    check: Callable[[], Awaitable[object]]
    required: bool = True
    impact: str = ""
    breaker: CircuitBreaker | None = None
    timeout_s: float = 2.0


async def probe(dep: Dependency) -> dict:
    """{state: ok | down, required, breaker, detail?, impact?}. A real round trip, not the
    breaker's opinion; its outcome is reported to the breaker, so the first probe after a
    dependency returns closes it."""
    began = time.monotonic()
    try:
        await asyncio.wait_for(dep.check(), dep.timeout_s)
    except Exception as exc:
        if dep.breaker is not None:
            dep.breaker.record_failure()
        # /readyz may be reached through the base URL: the client learns what failed, the log
        # (not the answer) holds the dependency's own text (addresses, server messages).
        log.warning("readiness: %s is down: %s: %s", dep.name, type(exc).__name__, exc)
        timeout = "no answer within %.1f s" % dep.timeout_s if isinstance(exc, asyncio.TimeoutError) else ""
        report = {"state": "down", "required": dep.required,
                  "detail": f"{type(exc).__name__}: {timeout}" if timeout else type(exc).__name__}
        if dep.impact:
            report["impact"] = dep.impact
    else:
        if dep.breaker is not None:
            dep.breaker.record_success()
        report = {"state": "ok", "required": dep.required, "ms": round((time.monotonic() - began) * 1000, 1)}
    if dep.breaker is not None:
        report["breaker"] = dep.breaker.state
    return report


async def readiness(deps: list[Dependency]) -> tuple[int, dict]:
    """(HTTP status, body) of /readyz: 200 "ready" when every dependency answers, 200
    "degraded" when only optional ones are down (named in `degraded`, with what they cost),
    503 "not ready" when a required one is down."""
    reports = await asyncio.gather(*(probe(d) for d in deps))
    by_name = dict(zip((d.name for d in deps), reports))
    down_required = [n for n, r in by_name.items() if r["state"] != "ok" and r["required"]]
    degraded = [{"dependency": n, "impact": r.get("impact", "")} for n, r in by_name.items()
                if r["state"] != "ok" and not r["required"]]
    status = "not ready" if down_required else "degraded" if degraded else "ready"
    checks = {n: "ok" if r["state"] == "ok" else f"down: {r.get('detail', '')}" for n, r in by_name.items()}
    body = {"status": status, "checks": checks, "dependencies": by_name, "degraded": degraded}
    return (503 if down_required else 200), body
