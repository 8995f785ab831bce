"""Correlation ids, JSON log lines and trace context in Kafka headers (adapters/observability.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters import observability
from adapters.http_api import ApiError, install_error_handlers


@pytest.fixture
def logs():
    """configure_logging into a buffer; the root logger (pytest's capture) restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    observability.configure_logging("test-service", "json", "INFO", stream=buf)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    observability.configure_tracing("test-service", exporter=exporter)
    yield exporter
    observability.configure_tracing("test-service", mode="off")


@pytest.mark.parametrize("value, valid", [
    ("abc-123", True), ("a" * 128, True), ("0f8fad5b-d9cb-469f-a165-70867728950e", True), ("x:y/z=1", True),
    (None, False), ("", False), ("a" * 129, False), ("has space", False), ("tab\there", False),
    ("new\nline", False), ("caf\u00e9", False), ("\x7f", False),
])
def test_request_id_is_printable_ascii_up_to_128(value, valid):
    assert observability.valid_request_id(value) == (value if valid else None)


def test_log_lines_are_json_with_the_bound_correlation_id_and_extra_fields(logs):
    log = logging.getLogger("projectors.applied")
    with observability.bound(correlation_id="req-1", event_id="e-1"):
        log.info("events applied", extra={"partition": 3, "offset": 42})
    log.warning("no context %s", "here")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second, third = logs()
    assert {"timestamp", "level", "service", "logger", "message"} <= set(first)
    assert (first["message"], first["level"], first["service"], first["logger"]) == (
        "events applied", "info", "test-service", "projectors.applied")
    assert (first["correlation_id"], first["event_id"], first["partition"], first["offset"]) == ("req-1", "e-1", 3, 42)
    assert first["timestamp"].endswith("Z")
    assert second["message"] == "no context here" and "correlation_id" not in second
    assert third["level"] == "error" and "ValueError: boom" in third["exception"]


def test_log_level_format_and_tracing_come_from_the_settings(monkeypatch, tmp_path):
    from settings import Settings

    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    monkeypatch.setenv("RECALLSTACK_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="RECALLSTACK_LOG_FORMAT"):
        Settings.from_env()
    monkeypatch.setenv("RECALLSTACK_LOG_FORMAT", "Console")
    monkeypatch.setenv("RECALLSTACK_LOG_LEVEL", "debug")
    monkeypatch.setenv("RECALLSTACK_TRACING", "zipkin")
    with pytest.raises(ValueError, match="RECALLSTACK_TRACING"):
        Settings.from_env()
    monkeypatch.setenv("RECALLSTACK_TRACING", "console")
    monkeypatch.setenv("RECALLSTACK_OTLP_ENDPOINT", "http://collector:4318")
    cfg = Settings.from_env()
    assert (cfg.log_format, cfg.log_level, cfg.tracing, cfg.otlp_endpoint) == (
        "console", "DEBUG", "console", "http://collector:4318")
    for name in ("RECALLSTACK_LOG_FORMAT", "RECALLSTACK_LOG_LEVEL", "RECALLSTACK_TRACING", "RECALLSTACK_OTLP_ENDPOINT"):
        monkeypatch.delenv(name)
    cfg = Settings.from_env()
    assert (cfg.log_format, cfg.log_level, cfg.tracing, cfg.otlp_endpoint) == ("", "", "off", "http://127.0.0.1:4318")
    # "" leaves the format to the process: json unless stderr is a terminal (pytest's is not)
    assert observability.log_format(cfg.log_format or None) == "json"
    assert observability.log_format("console") == "console"
    with pytest.raises(ValueError, match="log format"):
        observability.log_format("yaml")
    with pytest.raises(ValueError, match="tracing"):
        observability.configure_tracing("x", mode="zipkin")


def test_configure_takes_the_settings_level_over_the_entry_points(monkeypatch, tmp_path):
    from settings import Settings

    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    # The e2e conftest turns console tracing on for the whole session (`make test` runs them first).
    for name in ("RECALLSTACK_TRACING", "RECALLSTACK_OTLP_ENDPOINT", "RECALLSTACK_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        observability.configure("x", Settings.from_env(), level="WARNING")
        assert root.level == logging.WARNING
        monkeypatch.setenv("RECALLSTACK_LOG_LEVEL", "debug")
        observability.configure("x", Settings.from_env(), level="WARNING")
        assert root.level == logging.DEBUG and not observability.tracing()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def app_with_routes() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    observability.install_request_context(app, "test-service")

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str):
        logging.getLogger("handler").info("looking up")
        return {"correlation_id": observability.correlation_id()}

    @app.get("/v1/missing")
    async def missing():
        raise ApiError(404, "not_found", "no such thing")

    @app.get("/v1/broken")
    async def broken():
        raise RuntimeError("a bug")
    return app


def test_request_id_is_taken_checked_or_created_and_returned_on_every_answer(logs):
    with TestClient(app_with_routes(), raise_server_exceptions=False) as client:
        given = client.get("/v1/things/1", headers={"X-Request-ID": "req-abc"})
        assert given.headers["X-Request-ID"] == "req-abc" and given.json() == {"correlation_id": "req-abc"}
        for bad in ("has space", "x" * 200):
            replaced = client.get("/v1/things/1", headers={"X-Request-ID": bad})
            assert replaced.headers["X-Request-ID"] != bad
            assert replaced.json()["correlation_id"] == replaced.headers["X-Request-ID"]
        created = client.get("/v1/things/2")
        assert observability.valid_request_id(created.headers["X-Request-ID"])
        assert client.get("/v1/missing", headers={"X-Request-ID": "req-404"}).headers["X-Request-ID"] == "req-404"
        unrouted = client.get("/nowhere", headers={"X-Request-ID": "req-no-route"})
        assert unrouted.headers["X-Request-ID"] == "req-no-route"
        crashed = client.get("/v1/broken", headers={"X-Request-ID": "req-500"})
        assert crashed.status_code == 500 and crashed.headers["X-Request-ID"] == "req-500"
    lines = [line for line in logs() if line["service"] == "test-service" and line["logger"] != "httpx"]
    handler = next(line for line in lines if line["message"] == "looking up")
    assert handler["correlation_id"] == "req-abc"
    access = [line for line in lines if line["logger"] == "recallstack.access"]
    given = [(a["correlation_id"], a["status"], a["route"]) for a in access if a["correlation_id"].startswith("req-")]
    assert given == [
        ("req-abc", 200, "/v1/things/{thing_id}"), ("req-404", 404, "/v1/missing"),
        ("req-no-route", 404, "unmatched"), ("req-500", 500, "/v1/broken")]
    assert all({"method", "route", "status", "duration_ms"} <= set(a) for a in access)
    error = next(line for line in lines if line["level"] == "error" and line["logger"] == "adapters.http_api")
    assert error["correlation_id"] == "req-500"


def test_server_span_continues_an_incoming_traceparent(spans):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with TestClient(app_with_routes()) as client:
        client.get("/v1/things/1", headers={"traceparent": parent, "X-Request-ID": "req-t"})
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /v1/things/{thing_id}" and span.kind == trace.SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.attributes["recallstack.correlation_id"] == "req-t"
    assert span.attributes["http.response.status_code"] == 200


def test_trace_context_round_trips_through_kafka_headers(spans):
    with observability.tracer().start_as_current_span("request") as span:
        headers = observability.trace_headers()
    assert [name for name, _ in headers] == ["traceparent"]
    with observability.consuming("apply MemoryCreated", [("rs-schema", b"x")] + headers, {}):
        pass
    applied = next(s for s in spans.get_finished_spans() if s.name == "apply MemoryCreated")
    assert applied.context.trace_id == span.get_span_context().trace_id
    assert applied.parent.span_id == span.get_span_context().span_id
    assert observability.context_from_headers([("rs-schema", b"x")]) is None


def test_tracing_off_adds_no_headers_and_makes_no_spans():
    observability.configure_tracing("test-service", mode="off")
    assert not observability.tracing()
    assert observability.trace_headers() == []
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert observability.context_from_headers([("traceparent", traceparent)]) is None
    with observability.consuming("apply", [], {}) as span:
        assert span is None


def test_access_events_carry_the_requests_correlation_id():
    from adapters.access_log import AccessRecorder

    recorder = AccessRecorder("127.0.0.1:1")  # never started: record() only buffers
    with observability.bound(correlation_id="req-search-1"):
        recorder.record("alice", ["0f8fad5b-d9cb-469f-a165-70867728950e"], "search", "coffee")
    recorder.record("alice", ["0f8fad5b-d9cb-469f-a165-70867728950e"], "get")
    with_id, without = (access.event() for access in recorder._buffer)
    assert with_id.correlation_id == "req-search-1"
    assert without.correlation_id and without.correlation_id != "req-search-1"  # a fresh one, as before


def test_otlp_sends_spans_over_http_to_the_configured_endpoint(monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = observability.configure_tracing("otlp-test", mode="otlp",
                                                   otlp_endpoint=f"http://127.0.0.1:{server.server_port}")
        with observability.tracer().start_as_current_span("a span for the collector"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        observability.configure_tracing("otlp-test", mode="off")
        server.shutdown()
    (path, content_type, body), = received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"a span for the collector" in body and b"otlp-test" in body


def test_a_workers_pass_span_is_the_parent_of_what_it_publishes(spans):
    with observability.span("consolidate pass", {"recallstack.dry_run": False}) as current:
        headers = observability.trace_headers()
    (finished,) = spans.get_finished_spans()
    assert current is not None and finished.name == "consolidate pass"
    parent = observability.context_from_headers(headers)
    assert observability.trace.get_current_span(parent).get_span_context().span_id == finished.context.span_id
    observability.configure_tracing("test-service", mode="off")
    with observability.span("forget pass") as off:
        assert off is None
