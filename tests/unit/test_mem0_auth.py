"""mem0's client sends its key as `Authorization: Token <key>`: an alias of Bearer (adapters/http_auth.py)."""

import pytest
from starlette.requests import Request

from adapters.http_api import error_response, mem0_client
from adapters.http_auth import mem0_token


def request_with(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "GET", "path": "/v1/ping", "headers": headers, "query_string": b""})


@pytest.mark.parametrize("header, key", [
    ("Token rsk_abc", "rsk_abc"),
    ("token rsk_abc", "rsk_abc"),  # schemes are case-insensitive (RFC 9110)
    ("TOKEN  rsk_abc ", "rsk_abc"),
    ("Token ", None),
    ("Token", None),
    ("Bearer rsk_abc", None),  # HTTPBearer reads that one
    ("Basic dXNlcjpwYXNz", None),
    (None, None),
])
def test_the_token_scheme_carries_the_key(header, key):
    assert mem0_token(request_with(header)) == key


def test_mem0s_client_gets_the_message_as_its_detail_too():
    """mem0's client shows an error's `detail` (its key check shows nothing else)."""
    assert mem0_client(request_with("Token rsk_abc")) and not mem0_client(request_with("Bearer rsk_abc"))
    plain = error_response(401, "invalid_api_key", "unknown key").body
    mem0 = error_response(401, "invalid_api_key", "unknown key", mem0=True).body
    assert b'"detail"' not in plain and b'"detail":"unknown key"' in mem0 and b'"code":"invalid_api_key"' in mem0
