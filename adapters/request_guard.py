"""What both APIs refuse before routing, as JSON errors (pure ASGI, so a body is counted
while it streams in):

- a header value (or name) with a byte outside ASCII: 400 `invalid_header` naming the header
  (HTTP field values are ASCII; h11 passes bytes 0x80-0xFF through, which used to end in a
  500 further on);
- a method outside GET HEAD POST PUT PATCH DELETE OPTIONS: 405 `method_not_allowed` (with
  Allow: the path's methods), before it can become a metric label;
- a body over the limit of its path: 413 `too_large`, at once from Content-Length, or, for a
  chunked body (no Content-Length), as soon as the bytes read pass the limit (it is read
  no further);
- a trailing slash: `/v1/memories/search/` is `/v1/memories/search` (mem0's client adds one).
  One slash is stripped before routing, and the router never redirects (a redirect would
  name the API's own address, which is not the client's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def method_label(method: str) -> str:
    """A request's method as a metric label: a fixed set, whatever a client sends."""
    return method if method in METHODS else "other"


def header_name(raw: bytes) -> str:
    """`x-consistency-token` -> `X-Consistency-Token` (how the docs name headers)."""
    return "-".join(part.capitalize() for part in raw.decode("latin-1").split("-"))


class RequestGuard:
    def __init__(self, app: ASGIApp, body_limits: dict[str, int], default_body_limit: int,
                 respond: Callable[..., ASGIApp], routes: Callable[[], list]):
        self.app, self.limits, self.default_limit = app, body_limits, default_body_limit
        self.respond = respond  # (status, code, message, details, headers=) -> an ASGI response
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if not (name.isascii() and value.isascii()):
                field = header_name(name) if name.isascii() else "headers"
                return await self.respond(400, "invalid_header", f"{field}: a header must be ASCII (it holds a "
                                          "byte above 0x7F)", {"field": field})(scope, receive, send)
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            raw = scope.get("raw_path")
            scope = {**scope, "path": path[:-1],
                     "raw_path": raw[:-1] if raw is not None and raw.endswith(b"/") else raw}
        if scope["method"] not in METHODS:
            allowed = self._allowed(scope)
            return await self.respond(405, "method_not_allowed", f"method {scope['method'][:32]!r}: use one of "
                                      f"{', '.join(allowed or METHODS)}", {"allowed": allowed},
                                      headers={"Allow": ", ".join(allowed)} if allowed else None)(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default_limit)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            if length.isdigit() and int(length) > limit:
                return await self._too_large(scope, receive, send, limit, int(length))
            return await self.app(scope, receive, send)
        if not any(k == b"transfer-encoding" for k, _ in scope["headers"]):
            return await self.app(scope, receive, send)  # no body
        body, more, read = [], True, 0
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body.append(message.get("body", b""))
            read += len(body[-1])
            more = message.get("more_body", False)
            if read > limit:
                return await self._too_large(scope, receive, send, limit, None)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()
        await self.app(scope, replay, send)

    def _allowed(self, scope: Scope) -> list[str]:
        methods: set[str] = set()
        for route in self.routes():
            candidates = getattr(route, "effective_candidates", None)
            if candidates is not None:  # an included APIRouter: FastAPI keeps it whole, its routes inside
                methods |= {m for c in candidates() if c.path_regex.match(scope["path"]) for m in c.methods or ()}
                continue
            match, _ = route.matches({**scope, "method": "GET"})
            if match != Match.NONE:
                methods |= set(getattr(route, "methods", None) or ())
        return sorted(methods)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int, length: int | None) -> None:
        said = f"{length} bytes" if length is not None else f"more than {limit} bytes (chunked)"
        await self.respond(413, "too_large", f"body: {said}, at most {limit} for {scope['path']}",
                           {"field": "body", "limit": limit}, headers={"Connection": "close"})(scope, receive, send)


def every_route(routes: Iterable) -> Iterator:
    """Each route of an app, those of its included routers too: FastAPI keeps an included
    APIRouter whole in `app.router.routes`, its routes inside."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is None:
            yield route
        else:
            yield from (candidate.original_route for candidate in candidates())
