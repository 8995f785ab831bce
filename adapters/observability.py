"""Logs and traces of every recallstack process (docs/observability.md, "Logs and traces").

Logs: the code logs through stdlib `logging` (so do aiokafka, uvicorn and faust); one
structlog pipeline renders every record: a JSON object per line (RECALLSTACK_LOG_FORMAT=json,
the default when stderr is not a terminal, i.e. for every process `recallstack up` starts)
or a readable line (`console`, the default in a terminal). Each line has `timestamp`,
`level`, `logger`, `service`, `message`, the correlation id bound to the current request or
event (contextvars), `trace_id`/`span_id` while a span is current, and what the call passed
in `extra=`. Ids only: never memory text or metadata (content is sealed per user and must
vanish with an erasure, docs/security.md).

Traces: OpenTelemetry, RECALLSTACK_TRACING=off (default) | console | otlp. Off sets up nothing:
`tracing()` is False, the hot paths check it first, no span is made and no header is added.
The trace context travels in Kafka record headers (W3C `traceparent`/`tracestate`), so one
trace shows the HTTP request, the append and each projector's apply of its events.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from settings import Settings

MAX_REQUEST_ID = 128
TRACE_HEADERS = ("traceparent", "tracestate")
LOG_FORMATS = ("json", "console")
TRACING_MODES = ("off", "console", "otlp")
DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"
OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})  # scraped and probed: access lines at DEBUG

_propagator = TraceContextTextMapPropagator()
_state = {"service": "recallstack", "provider": None}
access_log = logging.getLogger("recallstack.access")
span_log = logging.getLogger("recallstack.trace")


# --- correlation ids ------------------------------------------------------------------


def valid_request_id(value: str | None) -> str | None:
    """The X-Request-ID a client sent when it is usable as a correlation id: 1 to 128
    visible ASCII characters (no spaces or control characters); else None."""
    if not value or len(value) > MAX_REQUEST_ID:
        return None
    if not all("!" <= c <= "~" for c in value):
        return None
    return value


def new_request_id() -> str:
    return str(uuid.uuid4())


def request_id(request) -> str:
    """The request's correlation id (a Starlette request): the one RequestContext validated
    (it rewrites the header), else a checked header or a new id."""
    return valid_request_id(request.headers.get("x-request-id")) or new_request_id()


def correlation_id() -> str | None:
    """The correlation id bound to the current context (request or event), if any."""
    return structlog.contextvars.get_contextvars().get("correlation_id")


bound = structlog.contextvars.bound_contextvars  # with bound(correlation_id=...): every line carries it


def event_fields(event, partition: int | None = None, offset: int | None = None) -> dict:
    """What a log line about an event says of it: ids and position, never content."""
    fields = {"correlation_id": getattr(event, "correlation_id", None), "event_id": getattr(event, "event_id", None),
              "event_type": getattr(event, "event_type", None), "user_id": getattr(event, "user_id", None)}
    if partition is not None:
        fields["partition"] = partition
    if offset is not None:
        fields["offset"] = offset
    return {k: v for k, v in fields.items() if v is not None}


# --- logging ----------------------------------------------------------------------------


def _service(_logger, _name, event_dict):
    event_dict.setdefault("service", _state["service"])
    return event_dict


def _trace_ids(_logger, _name, event_dict):
    if _state["provider"] is not None:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
            event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


_FIRST = ("timestamp", "level", "service", "logger", "message", "correlation_id")


def _ordered(_logger, _name, event_dict):
    """The fields every line has first, then the rest as given (easier to read)."""
    first = {k: event_dict.pop(k) for k in _FIRST if k in event_dict}
    first.update(event_dict)
    return first


def _formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    chain = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _service,
        _trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        final = [structlog.processors.format_exc_info, structlog.processors.EventRenamer("message"),
                 _ordered, structlog.processors.JSONRenderer(default=str)]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )


def log_format(chosen: str | None = None) -> str:
    """The format chosen, else json unless stderr is a terminal."""
    fmt = (chosen or ("console" if sys.stderr.isatty() else "json")).lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"the log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    return fmt


def configure_logging(service: str, fmt: str | None = None, level: str | None = None, stream=None
                      ) -> logging.Handler:
    """Route every stdlib log record of this process through the structlog pipeline, on
    stderr (or `stream`); returns the handler (faust's worker installs it itself)."""
    _state["service"] = service
    fmt = log_format(fmt)
    level = (level or "INFO").upper()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own handlers before it loads the app: send its lines through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    return handler


# --- tracing ----------------------------------------------------------------------------


def tracing() -> bool:
    return _state["provider"] is not None


def tracer() -> trace.Tracer:
    provider = _state["provider"]
    return provider.get_tracer("recallstack") if provider is not None else trace.NoOpTracer()


class LogSpanExporter:
    """RECALLSTACK_TRACING=console: each finished span as one log line (`message` "span"),
    so span lines are JSON lines of the process log like every other line."""

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        for span in spans:
            ctx, parent = span.context, span.parent
            span_log.info("span", extra={
                "span": {"name": span.name, "kind": span.kind.name, "trace_id": format(ctx.trace_id, "032x"),
                         "span_id": format(ctx.span_id, "016x"),
                         "parent_span_id": format(parent.span_id, "016x") if parent else None,
                         "duration_ms": round((span.end_time - span.start_time) / 1e6, 3),
                         "status": span.status.status_code.name, "attributes": dict(span.attributes or {}),
                         "links": [format(link.context.span_id, "016x") for link in span.links]}})
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def otlp_traces_url(base: str) -> str:
    return base if base.rstrip("/").endswith("/v1/traces") else base.rstrip("/") + "/v1/traces"


def configure_tracing(service: str, mode: str = "off", exporter=None, otlp_endpoint: str = DEFAULT_OTLP_ENDPOINT):
    """`mode` (RECALLSTACK_TRACING): off leaves tracing off; console logs each span; otlp sends
    batches to `otlp_endpoint` (OTLP over HTTP). `exporter` (tests: an InMemorySpanExporter)
    exports synchronously. Returns the provider, or None when off. The standard
    OTEL_TRACES_SAMPLER applies."""
    mode = mode.lower()
    if exporter is None and mode not in TRACING_MODES:
        raise ValueError(f"tracing must be one of {', '.join(TRACING_MODES)}, got {mode!r}")
    if exporter is None and mode == "off":
        _state["provider"] = None
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.namespace": "recallstack"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        provider.add_span_processor(SimpleSpanProcessor(LogSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url(otlp_endpoint))))
    _state["provider"] = provider
    return provider


def configure(service: str, cfg: Settings, *, level: str | None = None) -> None:
    """Logs and traces of a process, from its settings: called once by each entry point.
    A level set in the settings wins over the entry point's default `level`."""
    configure_logging(service, cfg.log_format or None, cfg.log_level or level)
    configure_tracing(service, cfg.tracing, otlp_endpoint=cfg.otlp_endpoint)


# --- trace context in Kafka headers -----------------------------------------------------


def trace_headers(ctx=None) -> list[tuple[str, bytes]]:
    """The current (or given) trace context as Kafka record headers; [] when there is none."""
    if _state["provider"] is None:
        return []
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=ctx)
    return [(k, v.encode()) for k, v in carrier.items()]


def context_from_headers(headers: Iterable[tuple[str, bytes]] | None):
    """The trace context a Kafka record carries, or None (tracing off, or no traceparent)."""
    if _state["provider"] is None:
        return None
    carrier = {k: v.decode("latin-1") for k, v in headers or () if k in TRACE_HEADERS}
    if "traceparent" not in carrier:
        return None
    ctx = _propagator.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


async def traced_publish(publish, topic: str, events: list):
    """`publish(events, trace_headers)` inside a producer span when the caller is traced
    (a request, a worker's event); an untraced caller (the access log's background flush)
    appends without a span or headers."""
    if not trace.get_current_span().get_span_context().is_valid:
        return await publish(events, ())
    with tracer().start_as_current_span(f"publish {topic}", kind=trace.SpanKind.PRODUCER, attributes={
            "messaging.system": "kafka", "messaging.destination.name": topic,
            "messaging.batch.message_count": len(events)}):
        return await publish(events, trace_headers())


@contextmanager
def span(name: str, attributes: dict | None = None):
    """An internal span, current inside the block (a worker's pass); None when tracing is off."""
    if _state["provider"] is None:
        yield None
        return
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


@contextmanager
def consuming(name: str, headers, attributes: dict):
    """A consumer span, child of the record's producer (when it carries a trace context)."""
    if _state["provider"] is None:
        yield None
        return
    with tracer().start_as_current_span(name, context=context_from_headers(headers), kind=trace.SpanKind.CONSUMER,
                                        attributes=attributes) as span:
        yield span


# --- HTTP: correlation id, server span, one access line per request ----------------------


class RequestContext:
    """Outermost ASGI middleware of every API: validates or creates the request's
    correlation id (X-Request-ID), rewrites the header to it (handlers and the gateway's
    forwarding see that one), binds it to every log line of the request, answers it in
    every response (errors included), traces the request (a server span, child of an
    incoming `traceparent`) and logs one access line: method, route, status, duration."""

    def __init__(self, app, service: str):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        # A sent id that is not ASCII stays in the scope: the request guard refuses it (400 naming
        # the header, adapters/request_guard.py), as any header holding such a byte.
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id" or not v.isascii()]
        sent = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = valid_request_id(sent.decode("latin-1") if sent is not None else None) or new_request_id()
        raw = rid.encode()
        scope["headers"] = headers + [(b"x-request-id", raw)]
        status = [500]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [(k, v) for k, v in message.get("headers", ())
                                      if k.lower() != b"x-request-id"] + [(b"x-request-id", raw)]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(correlation_id=rid)
        span = token = None
        if _state["provider"] is not None and scope["path"] not in OPS_PATHS:
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers
                       if k in (b"traceparent", b"tracestate")}
            span = tracer().start_span(
                scope["method"], context=_propagator.extract(carrier), kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": scope["method"], "url.path": scope["path"],
                            "recallstack.correlation_id": rid})
            token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            duration_ms = round((time.perf_counter() - began) * 1000, 3)
            access_log.log(logging.DEBUG if scope["path"] in OPS_PATHS else logging.INFO, "request", extra={
                "method": scope["method"], "route": route, "path": scope["path"], "status": status[0],
                "duration_ms": duration_ms})
            if span is not None:
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
                span.end()
                otel_context.detach(token)
            structlog.contextvars.reset_contextvars(**tokens)


def install_request_context(app, service: str) -> None:
    """Wrap the app's whole middleware stack (outside Starlette's ServerErrorMiddleware, so
    its 500 answers carry X-Request-ID too) in RequestContext."""
    build = app.build_middleware_stack

    def build_middleware_stack():
        return RequestContext(build(), service)

    app.build_middleware_stack = build_middleware_stack
