"""Which service answers a request (pure: method and path in, service name out)."""

from __future__ import annotations

COMMAND, QUERY = "command", "query"

# Reads that use POST because they carry a body.
_QUERY_POSTS = ("/v1/memories/search", "/v1/context")


def route(method: str, path: str) -> str | None:
    """The service for a request, or None when no service serves the path."""
    if not path.startswith("/v1/"):
        return None
    method = method.upper()
    if method in ("GET", "HEAD"):
        return QUERY
    if method == "POST" and path.rstrip("/") in _QUERY_POSTS:
        return QUERY
    if method in ("POST", "PATCH", "PUT", "DELETE"):
        return COMMAND
    return None
