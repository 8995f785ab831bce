"""What every HTTP service of recallstack shares: the error shape, health and metrics.

Errors are `{"error": {"code", "message", "details"}}` with the right status; FastAPI's
own validation errors are reshaped to name the offending field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.request_guard import method_label
from domain.consistency import InvalidConsistencyToken, NotYetApplied, wait_until_applied
from domain.text import escaped

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None,
                 retry_after: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.retry_after = retry_after
        self.headers = headers


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   retry_after: int | None = None, headers: dict[str, str] | None = None,
                   mem0: bool = False) -> JSONResponse:
    """The error shape; `mem0`: also mem0's `detail` (the message), which mem0's client shows."""
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    content = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(_encodable({**content, "detail": message} if mem0 else content), status_code=status,
                        headers=headers or None)


def mem0_client(request: Request) -> bool:
    """The request is mem0's client's: it authenticates with `Authorization: Token` (docs/mem0.md)."""
    return request.headers.get("authorization", "")[:6].lower() == "token "


def json_answer(content: dict, headers_from: Response) -> Response:
    """`content` as JSON bytes (orjson), with the headers a route set on its injected
    response: for large answers (search results), which FastAPI would otherwise walk with
    jsonable_encoder before encoding them again. `content` holds only JSON types."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
                    media_type="application/json", headers=dict(headers_from.headers))


def _encodable(value):
    """An error that quotes input may quote a lone surrogate (JSON can escape one); the answer
    is UTF-8, so such a character is shown escaped (`\\ud800`) instead of failing the answer."""
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encodable(v) for v in value]
    return value


def _field(loc: tuple) -> str:
    """`("body", "query")` -> "query": only the first item says where (body, query string, path)."""
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    from adapters.json_body import install_strict_json  # it raises ApiError: imported here, not above

    install_strict_json(app)  # JSON bodies: no NaN/Infinity, no overflow, no NUL, depth limit (422 naming where)
    document_errors(app)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.retry_after, exc.headers,
                              mem0=mem0_client(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        problems = [{"field": _field(e["loc"]) or "body", "problem": e["msg"], "type": e["type"]} for e in errors]
        first = problems[0] if problems else {"field": "body", "problem": "invalid", "type": "invalid"}
        message = f"{first['field']}: {first['problem']}"
        if any(e["type"] == "json_invalid" for e in errors):
            return error_response(400, "invalid_json", f"the body is not valid JSON (UTF-8): {first['problem']}",
                                  {"errors": problems}, mem0=mem0_client(request))
        if any(e["type"] == "too_large" for e in errors):
            big = next(p for p in problems if p["type"] == "too_large")
            return error_response(413, "too_large", f"{big['field']}: {big['problem']}", {"errors": problems},
                                  mem0=mem0_client(request))
        return error_response(422, "invalid_request", message, {"errors": problems}, mem0=mem0_client(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # FastAPI: undecodable body
            return error_response(400, "invalid_json", f"the body is not valid JSON (UTF-8): {exc.detail}",
                                  {"field": "body"})
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # The detail stays here (the log line carries the request's correlation id); the client
        # learns only the type: a database's text never reaches it.
        log.exception("unhandled error in %s %s", method_label(request.method), request.url.path)
        return error_response(500, "internal", f"internal error: {type(exc).__name__}")


ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string", "description": "machine-readable, e.g. invalid_request"},
                       "message": {"type": "string", "description": "what went wrong, naming the field"},
                       "details": {"type": "object", "description": "e.g. the field, the limit, Retry-After"}},
    }},
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}}
_ERRORS = {  # status: (when, response headers)
    400: ("the body is not valid JSON, a consistency token cannot exist, an Idempotency-Key is malformed, or a "
          "header holds a byte that is not ASCII", {}),
    401: ("no API key, or one that is unknown, revoked or expired",
          {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}),
    403: ("the API key lacks the scope, or acts for another user", {}),
    404: ("not found (or another user's: existence never leaks)", {}),
    409: ("conflict: the same Idempotency-Key is in progress, or the state does not allow it", _RETRY_AFTER),
    413: ("the body or one of its fields is over its limit", {}),
    422: ("a field is invalid (named in the message and details)", {}),
    429: ("the API key is over its rate limit", _RETRY_AFTER),
    503: ("a dependency is unavailable or a read model is not yet consistent; retry", _RETRY_AFTER),
}
_TOKEN_PARAMETERS = {"consistency_token", "x-consistency-token", "idempotency-key"}


def document_errors(app: FastAPI) -> None:
    """Declare in the app's OpenAPI the error answers every route may give, with the shape
    the handlers above give them (the Error schema), so clients and schemathesis can rely on
    the spec. Derived from each operation: its authentication (401/403/429), its body
    (400 JSON, 413), its path parameters (404), tokens (400) and writes (409); every /v1
    operation may answer 400 (a header that is not ASCII), 422 and 503. FastAPI's own 422
    schema (`detail`) is replaced."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = _with_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_errors(spec: dict) -> dict:
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "422" in responses:
                responses.pop("422")
                statuses = {422}
            else:
                statuses = set()
            if path.startswith(("/v1/", "/v3/")):  # /v3: mem0's client (docs/mem0.md)
                parameters = {p["name"].lower() for p in operation.get("parameters", [])}
                statuses |= {400, 422, 503}  # 400: any header may hold a non-ASCII byte (request_guard)
                if operation.get("security"):
                    statuses |= {401, 403, 429}
                if "requestBody" in operation:
                    statuses |= {400, 413}
                if parameters & _TOKEN_PARAMETERS:
                    statuses.add(400)
                if "{" in path:
                    statuses.add(404)
                if method != "get" and ("idempotency-key" in parameters or "{" in path):
                    statuses.add(409)
            for status in sorted(statuses):
                when, headers = _ERRORS[status]
                responses.setdefault(str(status), {
                    "description": when, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    **({"headers": headers} if headers else {}),
                })
    return spec


def install_request_guard(app: FastAPI, body_limits: dict[str, int], default_body_limit: int) -> None:
    """Refuse before routing what no route should see (adapters/request_guard.py): non-ASCII
    header bytes (400), unknown methods (405), bodies over the limit of their path (413, also
    chunked ones, while they stream in); a trailing slash is stripped and never redirected.
    Install it before install_http_metrics, so that its answers are counted too."""
    from adapters.request_guard import RequestGuard

    app.router.redirect_slashes = False
    app.add_middleware(RequestGuard, body_limits=body_limits, default_body_limit=default_body_limit,
                       respond=error_response, routes=lambda: app.router.routes)


async def wait_for_token(token: str | None, topic: str, projection: str, positions, wait_ms: int,
                         log_ends=None, field: str = "consistency_token", notices=None) -> None:
    """Read-your-writes for an endpoint: wait for the token, or answer 400 (a token that cannot
    exist: malformed, another topic, a partition the log does not have, an offset it has not
    reached, per `log_ends`) or 503 (not yet applied) saying why."""
    from settings import EVENTS_PARTITIONS

    if not token:
        return
    try:
        await wait_until_applied(token, topic, projection, positions, wait_ms, EVENTS_PARTITIONS, log_ends, notices)
    except (InvalidConsistencyToken, NotYetApplied) as exc:
        raise token_error(exc, field) from exc


def token_error(exc: Exception, field: str = "consistency_token") -> ApiError:
    """The answer to a token that cannot exist (400, InvalidConsistencyToken) or that a read
    model has not applied within the bound (503, NotYetApplied)."""
    if not isinstance(exc, NotYetApplied):
        return ApiError(400, "invalid_request", f"{field}: {exc}", {"field": field})
    return ApiError(503, "not_yet_consistent", f"{exc}; retry shortly", {
        "projection": exc.projection, "missing": [{"partition": p, "offset": o} for p, o in exc.missing],
    }, retry_after=1)


HTTP_SECONDS = Histogram(
    "recallstack_http_request_seconds", "HTTP requests by route and status (count = rate, sum = time)",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def install_http_metrics(app: FastAPI, service: str) -> None:
    """Rate, errors and duration per route: the route's template (`/v1/memories/{memory_id}`),
    never the raw path, so ids do not explode the label set; the method is one of a fixed set
    or `other` (a client may send any token as a method)."""
    app.add_middleware(HttpMetrics, service=service)


class HttpMetrics:
    """Plain ASGI (not BaseHTTPMiddleware, which runs each request's app in a task of its own
    behind memory streams: a fraction of a millisecond per request on a hot path)."""

    def __init__(self, app, service: str):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            HTTP_SECONDS.labels(self.service, method_label(scope.get("method", "")),
                                getattr(route, "path", "unmatched"), str(status)).observe(time.perf_counter() - began)


def install_health(app: FastAPI, checks: dict[str, Callable[[], Awaitable[object]]] | list) -> None:
    """/healthz (the process answers), /readyz (each dependency answers), /metrics.

    `checks`: name -> check (each required), or a list of adapters.resilience.Dependency
    (required or not, with what an outage costs): /readyz is 200 "ready", 200 "degraded"
    (an optional dependency is down; `degraded` says what that costs) or 503 "not ready"."""
    from adapters.resilience import Dependency, readiness

    deps = checks if isinstance(checks, list) else [Dependency(name, check) for name, check in checks.items()]

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz():
        status, body = await readiness(deps)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", tags=["ops"])
    async def metrics():
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
