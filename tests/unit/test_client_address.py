"""Whose failures a request counts against (issue 19): forwarding headers are believed only
from a trusted proxy, never from a client."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from adapters.client_address import ClientAddress


def request(peer: str | None, **headers: str) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
             "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
             "client": (peer, 50000) if peer is not None else None}
    return Request(scope)


@pytest.mark.parametrize("peer, headers, seen", [
    ("203.0.113.7", {}, "203.0.113.7"),
    # a client's own forwarding headers are ignored
    ("203.0.113.7", {"x_real_ip": "198.51.100.1"}, "203.0.113.7"),
    ("203.0.113.7", {"x_forwarded_for": "198.51.100.1"}, "203.0.113.7"),
    # from the local proxy: its X-Real-IP, else the nearest untrusted X-Forwarded-For hop
    ("127.0.0.1", {"x_real_ip": "198.51.100.1"}, "198.51.100.1"),
    ("127.0.0.1", {"x_real_ip": "198.51.100.1", "x_forwarded_for": "192.0.2.9"}, "198.51.100.1"),
    ("127.0.0.1", {"x_forwarded_for": "192.0.2.66, 198.51.100.1, 127.0.0.1"}, "198.51.100.1"),
    ("127.0.0.1", {"x_forwarded_for": "192.0.2.66, not-an-address, 127.0.0.1"}, "127.0.0.1"),
    ("127.0.0.1", {"x_real_ip": "garbage"}, "127.0.0.1"),
    ("127.0.0.1", {}, "127.0.0.1"),
    ("::1", {"x_real_ip": "2001:db8::5"}, "2001:db8::5"),
    ("::ffff:203.0.113.7", {}, "203.0.113.7"),                   # one client, however written
    ("127.0.0.1", {"x_real_ip": "::ffff:198.51.100.1"}, "198.51.100.1"),
    (None, {}, "unknown"),
])
def test_the_client_address(peer, headers, seen):
    assert ClientAddress().of(request(peer, **headers)) == seen


def test_a_configured_proxy_is_trusted_and_loopback_no_longer():
    addresses = ClientAddress(["10.0.0.2/32"])
    assert addresses.of(request("10.0.0.2", x_real_ip="198.51.100.1")) == "198.51.100.1"
    assert addresses.of(request("127.0.0.1", x_real_ip="198.51.100.1")) == "127.0.0.1"
    assert ClientAddress([]).of(request("127.0.0.1", x_real_ip="198.51.100.1")) == "127.0.0.1"
