"""The web edge: the small Python process behind the reverse proxy (port 8083 by default).

The proxy at the base URL (nginx, infra/proxy_config.py) sends the API's paths straight to the
command and query APIs (gateway/routes.py) and only these here:
- /mcp: the MCP server (mcp_server/) over streamable HTTP; its tools call the REST API at the
  base URL through the SDK, like any other client;
- /ui/api/system: the web UI's System page data (gateway/system_status.py);
- /readyz: both APIs' readiness in one answer; /metrics: this process's own metrics;
- the web UI (gateway/web_ui.py: ui/dist at /, its assets under /assets, its pages).
Anything else is a JSON 404 (the proxy does not send anything else here).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route

from adapters.http_api import error_response, install_http_metrics, install_request_guard
from adapters import observability
from gateway.routes import COMMAND, QUERY
from gateway.system_status import SystemSampler
from gateway.web_ui import DEFAULT_DIST, WebUi
from settings import KAFKA_PORT

SERVICE = "web-edge"  # its `service` label and log name


def create_app(command_url: str, query_url: str, mcp_base_url: str | None = None,
               bind_host: str = "127.0.0.1", ui_dist: Path = DEFAULT_DIST,
               projector_metrics: dict[str, str] | None = None, kafka_bootstrap: str = f"127.0.0.1:{KAFKA_PORT}") -> FastAPI:
    """`projector_metrics`: each projection's metrics URL (http://host:port), for /ui/api/system."""
    upstreams = {COMMAND: command_url, QUERY: query_url}  # the first process of each API
    state: dict = {}
    web_ui = WebUi(ui_dist)
    system = SystemSampler({"command-api": command_url, "query-api": query_url}, projector_metrics or {},
                           kafka_bootstrap)
    mcp = _mcp_routes(mcp_base_url, bind_host) if mcp_base_url else None

    @asynccontextmanager
    async def lifespan(_app):
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
        state["client"] = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0), limits=limits)
        try:
            if mcp is None:
                yield
            else:
                async with mcp[0].session_manager.run():  # the MCP sessions' task group and the SDK client
                    yield
        finally:
            await state["client"].aclose()

    app = FastAPI(title="recallstack web edge", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    observability.install_request_context(app, SERVICE)
    # Non-ASCII header bytes 400, unknown methods 405, bodies over 1 MiB 413 (adapters/request_guard.py)
    install_request_guard(app, {}, 1024 * 1024)
    install_http_metrics(app, "web-edge")  # SERVICE, written out: tests read the label values from the source
    if mcp is not None:
        app.router.routes.extend(mcp[1])  # before the catch-all page route below

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
            # The client's address goes along: the query API limits failed authentications per address.
            me = await state["client"].get(f"{query_url}/v1/me", timeout=5, headers={
                "Authorization": request.headers.get("authorization", ""),
                **({"X-Forwarded-For": request.client.host} if request.client else {})})
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

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def page(path: str):
        if web_ui.is_page(path):
            return web_ui.page()  # a page of the web UI: the app routes on the client
        return error_response(404, "not_found", "no route for this method and path")

    return app


def _mcp_routes(base_url: str, bind_host: str):
    """The MCP server and its streamable-HTTP route (/mcp). Stateless: every request stands
    alone, so nothing is lost when the web edge restarts. On loopback it keeps the SDK's
    DNS-rebinding protection (Host and Origin must be local; the proxy passes the client's Host)."""
    from mcp_server.server import McpConfig, build_server

    server = build_server(McpConfig.from_env(base_url=base_url))
    sub_app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, host=bind_host)
    routes = list(sub_app.routes)
    mcp_route = next(r for r in routes if getattr(r, "path", None) == "/mcp")
    return server, routes + [Route("/mcp/", endpoint=mcp_route.endpoint)]  # some clients add the slash
