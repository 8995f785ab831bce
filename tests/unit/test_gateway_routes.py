import pytest

from gateway.routes import COMMAND, QUERY, route


@pytest.mark.parametrize("method, path, expected", [
    ("POST", "/v1/memories", COMMAND),
    ("POST", "/v1/memories/batch", COMMAND),
    ("PATCH", "/v1/memories/abc", COMMAND),
    ("DELETE", "/v1/memories/abc", COMMAND),
    ("DELETE", "/v1/memories", COMMAND),
    ("POST", "/v1/memories/search", QUERY),
    ("POST", "/v1/context", QUERY),
    ("GET", "/v1/memories", QUERY),
    ("GET", "/v1/memories/abc/history", QUERY),
    ("GET", "/v1/graph", QUERY),
    ("GET", "/elsewhere", None),
    ("OPTIONS", "/v1/memories", None),
])
def test_writes_go_to_the_command_api_and_reads_to_the_query_api(method, path, expected):
    assert route(method, path) == expected
