"""mem0's client sends its key as `Authorization: Token <key>`: an alias of Bearer (adapters/http_auth.py)."""

import pytest
from starlette.requests import Request

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
