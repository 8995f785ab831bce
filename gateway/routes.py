"""Which process answers a request at the base URL (pure: method and raw path in, target out).

This is the one statement of the routing rule. The reverse proxy (nginx, infra/proxy_config.py)
applies it with its own regular expressions, and tests/security/test_proxy.py checks, against a
running nginx, that both agree over a table of method/path pairs.

`path` is the path exactly as the client sent it (still percent-encoded, without the query).
The proxy never decodes and re-resolves it, and refuses paths that could route one way here and
resolve another way upstream: encoded slashes, backslashes, dots or percent signs, raw
backslashes, dot segments, and bytes that are not printable ASCII (which a URL never holds
raw). No id the APIs use ever contains those.
"""

from __future__ import annotations

COMMAND, QUERY = "command", "query"  # the two APIs (their processes: infra/stack.py)
WEB_EDGE = "web_edge"  # the Python web edge (gateway/app.py): /mcp, /readyz, /metrics, the web UI
PROXY = "proxy"  # answered by the proxy itself (liveness of the base URL)
NO_METHOD = "no_method"  # answered by the proxy itself: 405, a method no API route takes

# The web UI's pages (ui/src/App.tsx's `Page`): index.html answers these and their subpaths
# (/memories/<id>); any other path stays a 404, so a probe of /etc/passwd or /.env is answered
# "no route", not with a page.
PAGES = ("memories", "search", "graph", "core-memory", "profile", "namespaces", "system", "transfer")

# Reads that use POST because they carry a body (mem0's /v3 search and list among them: docs/mem0.md).
_QUERY_POSTS = ("/v1/memories/search", "/v1/context", "/v3/memories/search", "/v3/memories")
# The APIs' prefixes: recallstack's /v1, and mem0's /v3 (its client's add, search and list).
_API_PREFIXES = ("/v1/", "/v3/")
_WRITES = ("POST", "PATCH", "PUT", "DELETE")
_READS = ("GET", "HEAD")
# %2F %5C %2E %25: an encoded slash, backslash, dot or percent sign (double encoding).
_ENCODED_TRICKS = ("%2f", "%5c", "%2e", "%25")


def refused(path: str) -> bool:
    """The raw path could mean another path once decoded or normalized: answer 400, route nothing."""
    lowered = path.lower()
    if any(code in lowered for code in _ENCODED_TRICKS) or "\\" in path:
        return True
    if any(not 0x21 <= ord(char) <= 0x7E for char in path):  # a space, a control or a non-ASCII byte
        return True
    return any(segment in (".", "..") for segment in path.split("/"))


def route(method: str, path: str) -> str | None:
    """The target of an accepted request (COMMAND, QUERY, WEB_EDGE, PROXY, NO_METHOD), or None: no
    route (404). Methods are case-sensitive (RFC 9110); `path` has passed `refused`."""
    if path.startswith(_API_PREFIXES):
        if method in _READS:
            return QUERY
        if method == "POST" and path.rstrip("/") in _QUERY_POSTS:
            return QUERY
        if method in _WRITES:
            return COMMAND
        return NO_METHOD  # OPTIONS, PROPFIND, BREW, ...: as the APIs would answer it

    if path in ("/mcp", "/mcp/"):  # the streamable HTTP transport's methods
        return WEB_EDGE if method in ("POST", "GET", "DELETE") else None
    if method not in _READS:
        return None
    if path == "/healthz":
        return PROXY
    if path in ("/readyz", "/metrics", "/ui/api/system"):
        return WEB_EDGE
    if path == "/" or path.startswith("/assets/"):
        return WEB_EDGE
    return WEB_EDGE if path[1:].split("/", 1)[0] in PAGES else None
