"""A real reverse proxy (httpx) in front of the two APIs, on port 8080 by default.

Each API stays its own process; the gateway forwards the request as is (method,
path, query, headers, body) and streams the answer back. When a service does not
answer, the gateway says which one, as a 503 with Retry-After.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from adapters.http_api import error_response
from gateway.routes import COMMAND, QUERY, route

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


def create_app(command_url: str, query_url: str) -> FastAPI:
    upstreams = {COMMAND: command_url, QUERY: query_url}
    state: dict = {}

    @asynccontextmanager
    async def lifespan(_app):
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        state["client"] = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0), limits=limits)
        yield
        await state["client"].aclose()

    app = FastAPI(title="recallstack gateway", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        checks, ready = {}, True
        for name, base in upstreams.items():
            try:
                answer = await state["client"].get(f"{base}/readyz", timeout=3)
                checks[name] = "ok" if answer.status_code == 200 else f"not ready: {answer.json()}"
                ready &= answer.status_code == 200
            except httpx.HTTPError as exc:
                checks[name] = f"down: {type(exc).__name__}"
                ready = False
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"])
    async def proxy(path: str, request: Request):
        service = route(request.method, "/" + path)
        if service is None:
            return error_response(404, "not_found", f"no route for {request.method} /{path}")
        url = httpx.URL(upstreams[service] + "/" + path, query=request.url.query.encode())
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        try:
            answer = await state["client"].request(request.method, url, headers=headers, content=await request.body())
        except httpx.HTTPError as exc:
            return error_response(503, "service_unavailable",
                                  f"the {service} API at {upstreams[service]} did not answer: {type(exc).__name__}",
                                  {"service": service}, retry_after=2)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP | {"content-encoding"}}
        return Response(answer.content, status_code=answer.status_code, headers=out_headers)

    return app
