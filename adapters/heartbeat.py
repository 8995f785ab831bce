"""A consume loop's heartbeat on its process's /metrics, so that the supervisor can tell a
loop that stopped going round (a client stuck after an outage) from one that works or waits.

A projector or the extraction worker calls `beat(loop)` each time round its loop, and in the
loops that wait out a dependency's outage (waiting is working). `stale()` reads a /metrics
page: the loops whose last beat is older than a bound. The supervisor's liveness check of
those processes (infra/liveness.py) fails on a stale one, so a process whose loop stopped is
restarted like one that hangs. Its /metrics server runs on a thread of its own: it answers
while the loop is stuck, which is why the page alone proves nothing.
"""

from __future__ import annotations

import time

from prometheus_client import Gauge

from adapters.prometheus_text import series

METRIC = "recallstack_loop_heartbeat_timestamp_seconds"
HEARTBEAT = Gauge(METRIC, "When the process's consume loop last went round, or waited on a dependency that is down",
                  ["loop"])


def beat(loop: str) -> None:
    HEARTBEAT.labels(loop).set(time.time())


def stale(metrics_page: str, now: float, max_age_s: float) -> dict[str, float]:
    """{loop: seconds since its last beat} of the loops on `metrics_page` quieter than max_age_s
    (a loop that never beat is not on the page: a process still starting is not stale)."""
    quiet = {}
    for labels, value in series(metrics_page, METRIC):
        age = now - value
        if age > max_age_s:
            quiet[labels.get("loop", "?")] = round(age, 1)
    return quiet
