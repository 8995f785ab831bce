"""Recent HTTP error rates of the web edge and the two APIs, for `recallstack status`.

Each process counts its requests in recallstack_http_request_seconds (labels service,
method, route, status). `status` reads that histogram's `_count` series from each /metrics
twice, about a second apart (the health and lag checks run in between), and reports per
service: the totals since the process started (requests, 4xx, 5xx) and the requests, 4xx and
5xx of the sampled window with the 5xx share. An API that runs as several processes is the
sum of their pages (the proxy in front of them keeps no Prometheus counters of its own). Like the alert rules, /metrics, /healthz and
/readyz are left out (status's own probes and scrapes land there). For rates over minutes,
use Prometheus (`recallstack up --with-monitoring`, rule service:recallstack_http_errors:ratio_rate5m).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from adapters.prometheus_text import series

OPS_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})
MIN_WINDOW_S = 1.0


def http_totals(metrics_text: str) -> dict[str, int]:
    """{"requests", "4xx", "5xx"}: the cumulative request counts of one /metrics page, ops routes
    left out. Reads only the histogram's _count lines (a full parse of the page is slower)."""
    totals = {"requests": 0, "4xx": 0, "5xx": 0}
    for labels, value in series(metrics_text, "recallstack_http_request_seconds_count"):
        if labels.get("route") in OPS_ROUTES:
            continue
        count = int(value)
        totals["requests"] += count
        status = labels.get("status", "")
        if status[:1] in ("4", "5"):
            totals[f"{status[0]}xx"] += count
    return totals


def _scrape(client: httpx.Client, urls: str | list[str]) -> dict[str, int] | str:
    """The totals of one service (summed over its processes), or why they could not be read."""
    totals = {"requests": 0, "4xx": 0, "5xx": 0}
    for url in [urls] if isinstance(urls, str) else urls:
        try:
            answer = client.get(f"{url}/metrics")
            answer.raise_for_status()
        except Exception as exc:  # status must answer with a service down
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        for key, count in http_totals(answer.text).items():
            totals[key] += count
    return totals


class ErrorRateSampler:
    """sample() now, do other work, then rows() samples again (at least MIN_WINDOW_S later)."""

    def __init__(self, services: dict[str, str | list[str]], timeout_s: float = 1.0):
        self.services = services
        self._client = httpx.Client(timeout=timeout_s)  # one client: each new one loads the TLS settings
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(services)))
        self._first: dict[str, dict | str] = {}
        self._began = 0.0

    def _sample_all(self) -> dict[str, dict | str]:
        futures = {name: self._pool.submit(_scrape, self._client, url) for name, url in self.services.items()}
        return {name: future.result() for name, future in futures.items()}

    def sample(self) -> None:
        self._began = time.monotonic()
        self._first = self._sample_all()

    def rows(self) -> list[dict]:
        wait = MIN_WINDOW_S - (time.monotonic() - self._began)
        if wait > 0:
            time.sleep(wait)
        second = self._sample_all()
        window = time.monotonic() - self._began
        self._pool.shutdown(wait=False)
        self._client.close()
        return [self._row(name, self._first.get(name), second[name], window) for name in self.services]

    @staticmethod
    def _row(service: str, first, second, window: float) -> dict:
        row = {"service": service, "requests_total": None, "errors_4xx_total": None, "errors_5xx_total": None,
               "window_s": round(window, 2), "window_requests": None, "window_errors_4xx": None,
               "window_errors_5xx": None, "window_5xx_ratio": None, "error": None}
        if isinstance(second, str):
            row["error"] = second
            return row
        row.update(requests_total=second["requests"], errors_4xx_total=second["4xx"], errors_5xx_total=second["5xx"])
        if isinstance(first, dict):
            # A restart in between resets the counters: then the window is the new process's totals.
            delta = {k: second[k] - first[k] for k in second}
            if delta["requests"] < 0:
                delta = dict(second)
            row.update(window_requests=delta["requests"], window_errors_4xx=delta["4xx"],
                       window_errors_5xx=delta["5xx"],
                       window_5xx_ratio=round(delta["5xx"] / delta["requests"], 4) if delta["requests"] else None)
        return row
