"""GET /ui/api/system: what the web UI's System page draws (health, projector lag,
throughput, latency), from the /metrics pages of the APIs and the projectors.

Each call takes a sample (at most one a second, however many pages poll) and keeps the last
SAMPLES of them, so a page opened now shows the recent past at once. The request counts are
read as `recallstack status` reads them (adapters/http_error_rates.http_totals: the ops routes
/metrics, /healthz, /readyz left out); rates are the difference of two samples over their
interval. A service restart resets its counters: that interval counts from zero. The lag is
`recallstack status`'s too (projectors/lag.py: the log's end minus each projector group's
committed position, from Kafka, so a stopped projector shows its growing lag), read at most
every LAG_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import httpx

from adapters.http_error_rates import OPS_ROUTES, http_totals
from adapters.prometheus_text import series
from projectors.lag import projector_lag

SAMPLES = 90
MIN_INTERVAL_S = 1.0
LAG_INTERVAL_S = 5.0
LAG_TIMEOUT_S = 4.0


def api_totals(metrics_text: str) -> dict[str, float]:
    """{"requests", "5xx", "seconds"} of one API's /metrics page: its request count, server
    errors and the summed request time (recallstack_http_request_seconds), ops routes left out."""
    totals = http_totals(metrics_text)
    seconds = 0.0
    for labels, value in series(metrics_text, "recallstack_http_request_seconds_sum"):
        if labels.get("route") not in OPS_ROUTES:
            seconds += value
    return {"requests": totals["requests"], "5xx": totals["5xx"], "seconds": seconds}


def applied_total(metrics_text: str) -> float:
    """Events applied since start, of one projector's /metrics."""
    return sum(value for _, value in series(metrics_text, "recallstack_projector_applied_events_total"))


def rates(before: dict, after: dict, seconds: float) -> dict[str, float | None]:
    """The UI's point between two samples: requests and 5xx per second, mean latency (ms),
    events applied per second, and the projectors' summed lag now (pure)."""
    def delta(name: str) -> float | None:
        if before.get(name) is None or after.get(name) is None:
            return None
        change = after[name] - before[name]
        return after[name] if change < 0 else change  # a restart reset the counter

    requests, errors, busy, applied = delta("requests"), delta("5xx"), delta("seconds"), delta("applied")
    per_s = (lambda v: None if v is None or seconds <= 0 else round(v / seconds, 3))
    return {"requests_per_s": per_s(requests), "errors_5xx_per_s": per_s(errors),
            "latency_ms": round(busy / requests * 1000, 2) if requests and busy is not None else None,
            "applied_per_s": per_s(applied), "lag": after.get("lag")}


class SystemSampler:
    def __init__(self, apis: dict[str, str], projectors: dict[str, str], kafka_bootstrap: str):
        self.apis, self.projectors, self.kafka_bootstrap = apis, projectors, kafka_bootstrap
        self._lag_at = 0.0
        self.samples: deque[dict] = deque(maxlen=SAMPLES)
        self._last: tuple[float, dict] | None = None
        self._lock = asyncio.Lock()
        self.lag: dict[str, float | None] = {name: None for name in projectors}
        self.errors: dict[str, str] = {}
        self.lag_errors: dict[str, str] = {}

    async def sample(self, client: httpx.AsyncClient) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < MIN_INTERVAL_S:
                return
            names = (*self.apis, *(f"projector-{name}" for name in self.projectors))  # lag errors use the bare name
            lags = asyncio.ensure_future(self._lags()) if now - self._lag_at >= LAG_INTERVAL_S else None
            pages = await asyncio.gather(*(self._page(client, url) for url in (*self.apis.values(),
                                                                                 *self.projectors.values())))
            if lags is not None:
                self._lag_at = now
                self.lag, self.lag_errors = await lags
            named = {name: text for name, (text, _) in zip(names, pages) if text is not None}
            self.errors = {name: error for name, (_, error) in zip(names, pages) if error is not None}
            totals: dict[str, float | None] = {"requests": 0, "5xx": 0, "seconds": 0.0, "applied": 0, "lag": None}
            for name in self.apis:
                if name in self.errors:
                    totals["requests"] = totals["5xx"] = totals["seconds"] = None
                    break
                for key, value in api_totals(named[name]).items():
                    totals[key] += value
            for name in self.projectors:
                if f"projector-{name}" in self.errors:
                    totals["applied"] = None
                    break
                totals["applied"] += applied_total(named[f"projector-{name}"])
            known = [lag for lag in self.lag.values() if lag is not None]
            totals["lag"] = sum(known) if known else None
            if self._last is not None:
                self.samples.append({"at": time.time(), **rates(self._last[1], totals, now - self._last[0])})
            self._last = (now, totals)

    async def _lags(self) -> tuple[dict[str, int | None], dict[str, str]]:
        """Each projector's lag from Kafka, and why a lag is unknown (Kafka did not answer)."""
        async def one(name: str):
            try:
                lag = await asyncio.wait_for(projector_lag(self.kafka_bootstrap, name), LAG_TIMEOUT_S)
                return lag["behind"], None
            except Exception as exc:  # Kafka down: the page says so, the rest still answers
                return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:120] or type(exc).__name__

        answers = await asyncio.gather(*(one(name) for name in self.projectors))
        return ({name: lag for name, (lag, _) in zip(self.projectors, answers)},
                {name: error for name, (_, error) in zip(self.projectors, answers) if error})

    @staticmethod
    async def _page(client: httpx.AsyncClient, base: str) -> tuple[str | None, str | None]:
        """(the /metrics text, None) or (None, why it could not be read): the page says which."""
        try:
            answer = await client.get(f"{base}/metrics", timeout=2)
            answer.raise_for_status()
            return answer.text, None
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:120]

    def snapshot(self, health: dict) -> dict:
        return {"health": {k: health.get(k) for k in ("status", "checks", "degraded")},
                "interval_s": MIN_INTERVAL_S, "samples": list(self.samples), "lag": dict(self.lag),
                "errors": {**self.errors, **self.lag_errors}}
