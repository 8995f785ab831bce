"""A real reverse proxy (httpx) in front of the two APIs, on port 8080 by default.

Each API stays its own process; the gateway forwards the request as is (method,
path, query, headers, body) and streams the answer back. When a service does not
answer, the gateway says which one, as a 503 with Retry-After.

With `mcp_base_url`, the gateway also serves the MCP server (mcp_server/) over
streamable HTTP at /mcp; its tools call the REST API at that base URL through the SDK,
like any other client (the gateway's own URL in the local stack).

It also serves the web UI (gateway/web_ui.py: ui/dist at /, its assets under /assets) and
the UI's System page data at /ui/api/system (gateway/system_status.py).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.routing import Route

from adapters.http_api import error_response, install_http_metrics
from adapters import observability
from gateway.routes import COMMAND, QUERY, route
from gateway.system_status import SystemSampler
from gateway.web_ui import DEFAULT_DIST, WebUi

# The APIs measure each route (recallstack_http_request_seconds); the gateway measures its own requests
# (service="gateway") and counts what only it sees: an upstream that did not answer (its 503s).
UPSTREAM_ERRORS = Counter("recallstack_gateway_upstream_errors_total",
                          "Requests the gateway answered 503 because an API did not answer", ["upstream"])

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


def create_app(command_url: str, query_url: str, mcp_base_url: str | None = None,
               bind_host: str = "127.0.0.1", ui_dist: Path = DEFAULT_DIST,
               projector_metrics: dict[str, str] | None = None, kafka_bootstrap: str = "127.0.0.1:9092") -> FastAPI:
    """`projector_metrics`: each projection's metrics URL (http://host:port), for /ui/api/system."""
    upstreams = {COMMAND: command_url, QUERY: query_url}
    state: dict = {}
    web_ui = WebUi(ui_dist)
    system = SystemSampler({"command-api": command_url, "query-api": query_url}, projector_metrics or {},
                           kafka_bootstrap)
    mcp = _mcp_routes(mcp_base_url, bind_host) if mcp_base_url else None

    @asynccontextmanager
    async def lifespan(_app):
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        state["client"] = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0), limits=limits)
        try:
            if mcp is None:
                yield
            else:
                async with mcp[0].session_manager.run():  # the MCP sessions' task group and the SDK client
                    yield
        finally:
            await state["client"].aclose()

    app = FastAPI(title="recallstack gateway", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    observability.install_request_context(app, "gateway")  # forwards the checked X-Request-ID upstream
    # What clients see, the hop included: proxied requests share the route `/{path:path}` (the
    # APIs' own series have the route templates).
    install_http_metrics(app, "gateway")
    if mcp is not None:
        app.router.routes.extend(mcp[1])  # before the catch-all proxy route below

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        """Both APIs' readiness in one answer: `checks` per API (ok / degraded: ... / not
        ready: ...), each API's `dependencies` and what is `degraded` (docs/observability.md,
        "Degradation modes"). 503 when either API is not ready (its required dependency is down)."""
        async def ask(name: str, base: str):
            try:
                answer = await state["client"].get(f"{base}/readyz", timeout=5)
                body = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                return name, False, f"down: {type(exc).__name__}", {}
            down = [n for n, d in body.get("dependencies", {}).items() if d.get("state") != "ok"]
            if answer.status_code != 200:
                return name, False, f"not ready: {', '.join(down) or body}", body
            return name, True, f"degraded: {', '.join(down)}" if down else "ok", body

        answers = await asyncio.gather(*(ask(name, base) for name, base in upstreams.items()))
        ready = all(ok for _, ok, _, _ in answers)
        degraded = [{"service": name, **d} for name, _, _, body in answers for d in body.get("degraded", [])]
        status = "not ready" if not ready else "degraded" if degraded else "ready"
        return JSONResponse({"status": status, "checks": {name: check for name, _, check, _ in answers},
                             "dependencies": {name: body.get("dependencies", {}) for name, _, _, body in answers},
                             "degraded": degraded}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/ui/api/system", include_in_schema=False)
    async def system_status(request: Request):
        """The web UI's System page: health, projector lag, throughput and latency samples.
        Any valid key may read it (the query API's /v1/me decides); it names no user's data."""
        try:
            me = await state["client"].get(f"{query_url}/v1/me", timeout=5,
                                           headers={"Authorization": request.headers.get("authorization", "")})
        except httpx.HTTPError as exc:
            return error_response(503, "service_unavailable", f"the query API did not answer: {type(exc).__name__}",
                                  {"service": QUERY}, retry_after=2)
        if me.status_code != 200:
            return Response(me.content, status_code=me.status_code, media_type="application/json")
        await system.sample(state["client"])
        health = json.loads((await readyz()).body)
        return system.snapshot(health)

    @app.get("/assets/{name:path}", include_in_schema=False)
    async def ui_asset(name: str):
        return web_ui.asset(name) or error_response(404, "not_found", f"no asset {name}")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"])
    async def proxy(path: str, request: Request):
        if request.method in ("GET", "HEAD") and web_ui.is_page(path):
            return web_ui.page()  # a page of the web UI: the app routes on the client
        service = route(request.method, "/" + path)
        if service is None:
            return error_response(404, "not_found", f"no route for {request.method} /{path}")
        try:
            url = httpx.URL(upstreams[service] + "/" + path, query=request.url.query.encode())
        except httpx.InvalidURL as exc:  # a URL component over httpx's 64 KiB: the client's error
            return error_response(414, "uri_too_long", f"the URL is too long to forward: {exc}", {"field": "query"})
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        if observability.tracing():  # the API's span is a child of the gateway's
            headers = [(k, v) for k, v in headers if k.lower() not in observability.TRACE_HEADERS]
            headers += [(k, v.decode()) for k, v in observability.trace_headers()]
        try:
            answer = await state["client"].request(request.method, url, headers=headers, content=await request.body())
        except httpx.HTTPError as exc:
            UPSTREAM_ERRORS.labels(service).inc()
            return error_response(503, "service_unavailable",
                                  f"the {service} API at {upstreams[service]} did not answer: {type(exc).__name__}",
                                  {"service": service}, retry_after=2)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP | {"content-encoding"}}
        return Response(answer.content, status_code=answer.status_code, headers=out_headers)

    return app


def _mcp_routes(base_url: str, bind_host: str):
    """The MCP server and its streamable-HTTP route (/mcp). Stateless: every request stands
    alone, so nothing is lost when the gateway restarts. Loopback gateways keep the SDK's
    DNS-rebinding protection (Host and Origin must be local)."""
    from mcp_server.server import McpConfig, build_server

    server = build_server(McpConfig.from_env(base_url=base_url))
    sub_app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, host=bind_host)
    routes = list(sub_app.routes)
    mcp_route = next(r for r in routes if getattr(r, "path", None) == "/mcp")
    return server, routes + [Route("/mcp/", endpoint=mcp_route.endpoint)]  # some clients add the slash
