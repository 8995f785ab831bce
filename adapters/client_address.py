"""The address a request came from, for limits per client (failed authentications).

The APIs sit behind the reverse proxy at the base URL, so the peer of a connection is the
proxy. Its forwarding headers are believed only when the peer is a trusted proxy
(`RECALLSTACK_TRUSTED_PROXIES`, default loopback: the local proxy, and anything else on
this machine, which could reach the APIs directly anyway): then `X-Real-IP`, else the
nearest `X-Forwarded-For` hop that is not itself a trusted proxy. From any other peer the
headers are ignored: a client cannot pick the address its failures are counted against.
The proxy must overwrite both headers with the connection's address (infra/proxy_config.py
does), never pass a client's own through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import Request

DEFAULT_TRUSTED = ("127.0.0.0/8", "::1/128")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # ::ffff:10.0.0.1 and 10.0.0.1 are one client
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


class ClientAddress:
    def __init__(self, trusted: Iterable[str] = DEFAULT_TRUSTED):
        self.trusted = tuple(ipaddress.ip_network(net.strip(), strict=False) for net in trusted if net.strip())

    def _is_trusted(self, address) -> bool:
        return address is not None and any(address in net for net in self.trusted if net.version == address.version)

    def of(self, request: Request) -> str:
        """The client's address as text (the peer's when nothing better is believable)."""
        raw_peer = request.client.host if request.client else ""
        peer = _ip(raw_peer)
        if not self._is_trusted(peer):
            return str(peer) if peer is not None else raw_peer or "unknown"
        real = _ip(request.headers.get("x-real-ip", ""))
        if real is not None:
            return str(real)
        for hop in reversed(request.headers.get("x-forwarded-for", "").split(",")):
            address = _ip(hop)
            if address is None:
                break  # garbage in the chain: nothing before it is believable
            if not self._is_trusted(address):
                return str(address)
        return str(peer)
