"""gateway/routes.py: the one statement of which process answers a request at the base URL
(the nginx configuration applies it; tests/security/test_proxy.py checks they agree)."""

import pytest

from gateway.routes import COMMAND, NO_METHOD, PROXY, QUERY, WEB_EDGE, refused, route

UUID = "6f1c7c2e-8f59-4f5e-9a63-4c1b0a3c2d11"


@pytest.mark.parametrize("method, path, expected", [
    ("POST", "/v1/memories", COMMAND),
    ("POST", "/v1/memories/batch", COMMAND),
    ("PATCH", f"/v1/memories/{UUID}", COMMAND),
    ("DELETE", f"/v1/memories/{UUID}", COMMAND),
    ("DELETE", "/v1/memories", COMMAND),
    ("PUT", "/v1/memories/abc", COMMAND),
    ("POST", "/v1/memories/search", QUERY),
    ("POST", "/v1/memories/search/", QUERY),
    ("POST", "/v1/context", QUERY),
    ("POST", "/v1/context//", QUERY),
    ("POST", "/v1/memories/searchx", COMMAND),
    ("GET", "/v1/memories", QUERY),
    ("HEAD", "/v1/memories", QUERY),
    ("GET", f"/v1/memories/{UUID}/history", QUERY),
    ("GET", "/v1/graph", QUERY),
    ("GET", "/elsewhere", None),
    ("OPTIONS", "/v1/memories", NO_METHOD),  # 405 from the proxy, as the APIs would answer it
    ("PROPFIND", "/v1/memories/x", NO_METHOD),
    ("get", "/v1/memories", NO_METHOD),  # methods are case-sensitive
    ("GET", "/v1", None),
    ("GET", "/healthz", PROXY),
    ("POST", "/healthz", None),
    ("GET", "/readyz", WEB_EDGE),
    ("GET", "/metrics", WEB_EDGE),
    ("GET", "/ui/api/system", WEB_EDGE),
    ("POST", "/mcp", WEB_EDGE),
    ("DELETE", "/mcp/", WEB_EDGE),
    ("GET", "/mcp", WEB_EDGE),
    ("PUT", "/mcp", None),
    ("GET", "/mcpx", None),
    ("GET", "/", WEB_EDGE),
    ("GET", "/assets/app-1a2b.js", WEB_EDGE),
    ("POST", "/assets/app-1a2b.js", None),
    ("GET", f"/memories/{UUID}", WEB_EDGE),
    ("GET", "/system", WEB_EDGE),
    ("GET", "/memoriesx", None),
    ("GET", "/etc/passwd", None),
    ("GET", "/.env", None),
    ("GET", "/docs", None),
    # mem0's client (docs/mem0.md): its /v3 add is a write, its /v3 search and list (POST) are reads
    ("POST", "/v3/memories/add/", COMMAND),
    ("POST", "/v3/memories/search/", QUERY),
    ("POST", "/v3/memories/", QUERY),
    ("POST", "/v3/memories", QUERY),
    ("POST", "/v3/memoriesx", COMMAND),
    ("GET", "/v1/ping/", QUERY),
    ("PUT", f"/v1/memories/{UUID}/", COMMAND),
    ("PUT", "/v1/batch/", COMMAND),
    ("DELETE", "/v1/batch/", COMMAND),
    ("DELETE", "/v1/memories/", COMMAND),
    ("GET", f"/v1/memories/{UUID}/history/", QUERY),
    ("OPTIONS", "/v3/memories/", NO_METHOD),
    ("GET", "/v3", None),
    ("POST", "/v2/memories/", None),
])
def test_writes_go_to_the_command_api_reads_to_the_query_api_and_the_rest_to_the_web_edge(method, path, expected):
    assert route(method, path) == expected


@pytest.mark.parametrize("path", [
    f"/v1/memories/{UUID}/shares/..%2F..", "/v1/memories/..%2F..%2Fv1%2Fkeys", "/v1/..%2Fmetrics", "/v1/..%2fdocs",
    "/v1/memories/%2e%2e/keys", "/v1/memories/%252e%252e%252fkeys", "/v1/memories/..%5Ckeys", "/v1\\..\\keys",
    "/v1/memories/../keys", "/v1/./memories", "/v1/memories/..", "/v1/memories/.", "/..", "/v1/a b",
    "/v1/memories/\u00e9", "/v1/memories/\x00",
])
def test_paths_that_could_resolve_elsewhere_are_refused(path):
    assert refused(path)


@pytest.mark.parametrize("path", [
    f"/v1/memories/{UUID}", "/v1/memories/...", "/v1/memories/.hidden", "/v1/users/alice%40example.com",
    "/v1/memories", "/", "/assets/app.js", "/v1/memories/a..b",
])
def test_ordinary_paths_are_not_refused(path):
    assert not refused(path)
