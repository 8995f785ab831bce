"""The web edge (gateway/app.py, behind the reverse proxy) serves the web UI (gateway/web_ui.py),
and the System page's numbers come from the services' /metrics (gateway/system_status.py)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.system_status import api_totals, applied_total, rates
from gateway.web_ui import WebUi


@pytest.fixture(scope="module")
def upstream():
    """A stand-in API on a free port: answers every GET /v1/... with the path it saw."""
    api = FastAPI()

    @api.get("/v1/{path:path}")
    async def echo(path: str):
        return {"upstream_saw": path}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the stand-in API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def dist(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><div id="root"></div><script src="/assets/app-1a2b.js"></script>')
    (tmp_path / "assets" / "app-1a2b.js").write_text("console.log('ui')")
    (tmp_path / "secret.txt").write_text("not an asset")
    return tmp_path


def test_root_and_deep_links_serve_index_html_and_nothing_else_is_answered(dist, upstream):
    with TestClient(create_app(upstream, upstream, ui_dist=dist)) as client:
        root = client.get("/")
        assert root.status_code == 200 and '<div id="root">' in root.text
        assert root.headers["cache-control"] == "no-cache"
        assert "script-src 'self'" in root.headers["content-security-policy"]
        for deep in ("/memories", "/memories/6f1c7c2e-8f59-4f5e-9a63-4c1b0a3c2d11", "/system", "/memories/nope"):
            answer = client.get(deep)
            assert answer.status_code == 200 and answer.text == root.text, deep
        for probe in ("/no/such/page", "/etc/passwd", "/.env"):  # not pages: no index.html for probes
            answer = client.get(probe)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", probe
        asset = client.get("/assets/app-1a2b.js")
        assert asset.status_code == 200 and asset.text == "console.log('ui')"
        assert "immutable" in asset.headers["cache-control"]
        assert client.get("/assets/missing.js").status_code == 404
        assert "not an asset" not in client.get("/assets/../secret.txt").text  # only files under assets/
        assert client.get("/assets/%2e%2e/secret.txt").status_code == 404
        # The API's paths are the proxy's to route (never here): no page, no forwarding.
        for path in ("/v1/memories", "/v1/graph"):
            answer = client.get(path, params={"user_id": "u"})
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", path
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/metrics").text.startswith("#")
        assert client.get("/ui/api/nothing").status_code == 404


def test_without_a_build_the_root_says_to_run_make_install(tmp_path, upstream):
    with TestClient(create_app(upstream, upstream, ui_dist=tmp_path / "dist")) as client:
        root = client.get("/")
        assert root.status_code == 503 and "make install" in root.text
        assert client.get("/memories").status_code == 503
        assert client.get("/readyz").json()["status"] == "not ready"  # the stand-in has no /readyz


def test_the_system_endpoint_needs_a_key_the_query_api_accepts(dist, upstream):
    # The stand-in answers /v1/me with 200 to anyone: the gateway asks it, then samples.
    with TestClient(create_app(upstream, upstream, ui_dist=dist, projector_metrics={},
                               kafka_bootstrap="127.0.0.1:9")) as client:
        answer = client.get("/ui/api/system", headers={"Authorization": "Bearer x"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["health"]["status"] == "not ready"  # the stand-in has no /readyz
        assert set(body) == {"health", "interval_s", "samples", "lag", "errors"}


@pytest.mark.parametrize("path, page", [
    ("", True), ("memories", True), ("memories/abc", True), ("search", True), ("graph", True),
    ("namespaces", True), ("system", True), ("transfer", True), ("assets-not", False), ("etc/passwd", False),
    ("v1/memories", False), ("mcp", False), ("mcp/", False), ("healthz", False), ("readyz", False),
    ("metrics", False), ("ui/api/system", False), ("memoriesx", False),
])
def test_which_paths_are_pages_of_the_ui(path, page):
    assert WebUi.is_page(path) is page


METRICS = """\
# HELP recallstack_http_request_seconds Time to answer
recallstack_http_request_seconds_count{method="GET",route="/v1/memories",service="query",status="200"} 10.0
recallstack_http_request_seconds_sum{method="GET",route="/v1/memories",service="query",status="200"} 0.5
recallstack_http_request_seconds_count{method="POST",route="/v1/memories/search",service="query",status="503"} 2.0
recallstack_http_request_seconds_sum{method="POST",route="/v1/memories/search",service="query",status="503"} 0.1
recallstack_http_request_seconds_count{method="GET",route="/metrics",service="query",status="200"} 99.0
recallstack_http_request_seconds_sum{method="GET",route="/metrics",service="query",status="200"} 9.0
recallstack_projector_applied_events_total{projection="postgres"} 40.0
recallstack_projector_applied_events_created{projection="postgres"} 1.7e9
"""


def test_totals_leave_the_ops_routes_out():
    assert api_totals(METRICS) == {"requests": 12, "5xx": 2, "seconds": pytest.approx(0.6)}
    assert applied_total(METRICS) == 40.0


def test_rates_between_two_samples():
    before = {"requests": 100, "5xx": 1, "seconds": 2.0, "applied": 50, "lag": 3}
    after = {"requests": 120, "5xx": 2, "seconds": 3.0, "applied": 70, "lag": 0}
    assert rates(before, after, 2.0) == {"requests_per_s": 10.0, "errors_5xx_per_s": 0.5, "latency_ms": 50.0,
                                         "applied_per_s": 10.0, "lag": 0}
    restarted = {"requests": 4, "5xx": 0, "seconds": 0.4, "applied": 5, "lag": None}  # counters reset
    assert rates(after, restarted, 1.0) == {"requests_per_s": 4.0, "errors_5xx_per_s": 0.0, "latency_ms": 100.0,
                                            "applied_per_s": 5.0, "lag": None}
    unknown = {"requests": None, "5xx": None, "seconds": None, "applied": None, "lag": None}
    assert rates(before, unknown, 1.0)["requests_per_s"] is None
