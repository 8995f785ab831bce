"""`recallstack status`'s HTTP error rates (adapters/http_error_rates.py): the request counters read from
a real exposition page, and the sampled window (no server needed)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from adapters.http_error_rates import ErrorRateSampler, http_totals


def page(requests: dict[tuple[str, str, str], int]) -> str:
    """/metrics text with recallstack_http_request_seconds as adapters/http_api.py defines it."""
    registry = CollectorRegistry()
    seconds = Histogram("recallstack_http_request_seconds", "h", ["service", "method", "route", "status"],
                        registry=registry)
    for (method, route, status), count in requests.items():
        for _ in range(count):
            seconds.labels("query", method, route, status).observe(0.01)
    return generate_latest(registry).decode()


def test_totals_count_4xx_and_5xx_and_leave_out_the_ops_routes():
    text = page({("POST", "/v1/memories/search", "200"): 7, ("GET", "/v1/memories/{memory_id}", "404"): 2,
                 ("POST", "/v1/memories/search", "503"): 1, ("GET", "/readyz", "503"): 5,
                 ("GET", "/metrics", "200"): 9, ("GET", "/healthz", "200"): 3})
    assert http_totals(text) == {"requests": 10, "4xx": 2, "5xx": 1}
    assert http_totals("") == {"requests": 0, "4xx": 0, "5xx": 0}


def test_a_row_has_the_totals_and_the_window_delta():
    first = {"requests": 100, "4xx": 10, "5xx": 1}
    second = {"requests": 120, "4xx": 12, "5xx": 6}
    row = ErrorRateSampler._row("query", first, second, 1.234)
    assert row == {"service": "query", "requests_total": 120, "errors_4xx_total": 12, "errors_5xx_total": 6,
                   "window_s": 1.23, "window_requests": 20, "window_errors_4xx": 2, "window_errors_5xx": 5,
                   "window_5xx_ratio": 0.25, "error": None}


def test_a_quiet_window_has_no_ratio_and_a_restart_counts_from_zero():
    same = {"requests": 5, "4xx": 0, "5xx": 0}
    assert ErrorRateSampler._row("command", same, same, 1.0)["window_5xx_ratio"] is None
    restarted = ErrorRateSampler._row("command", {"requests": 500, "4xx": 3, "5xx": 3},
                                      {"requests": 4, "4xx": 0, "5xx": 1}, 1.0)
    assert restarted["window_requests"] == 4 and restarted["window_5xx_ratio"] == 0.25


def test_a_service_that_does_not_answer_is_a_row_with_the_reason():
    sampler = ErrorRateSampler({"gateway": "http://127.0.0.1:1"}, timeout_s=0.5)
    sampler.sample()
    [row] = sampler.rows()
    assert row["service"] == "gateway" and row["requests_total"] is None and row["window_requests"] is None
    assert row["error"].startswith("ConnectError") and row["window_s"] >= 1.0
