"""Cheap liveness checks of the infrastructure servers, for the supervisor: the smallest
request each protocol answers without logging in.

The readiness probes (a client that connects, authenticates and queries) cost 0.1-0.6 s of
CPU each, mostly SCRAM and driver set-up: run for four servers every 10 s, they made the
supervisor take ~4 % of a core. A bare TCP connect would be cheap but proves nothing (the
kernel accepts for a hung process); these need the server's own loop to answer.
"""

from __future__ import annotations

import http.client
import socket
import struct
import time
from typing import Callable

from adapters import heartbeat

TIMEOUT_S = 2.0
# A consume loop beats each time round and while it waits out an outage: two minutes without
# a beat is a loop that stopped (a batch of 500 events or one LLM call takes far less).
LOOP_QUIET_S = 120.0


def _exchange(host: str, port: int, request: bytes, answer_bytes: int) -> bytes:
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        answer = b""
        while len(answer) < answer_bytes:
            chunk = sock.recv(answer_bytes - len(answer))
            if not chunk:
                raise ConnectionError(f"{host}:{port} closed the connection after {len(answer)} bytes")
            answer += chunk
        return answer


def postgres(host: str, port: int) -> str:
    """SSLRequest: the postmaster itself answers S or N."""
    answer = _exchange(host, port, struct.pack("!ii", 8, 80877103), 1)
    if answer not in (b"S", b"N"):
        raise ConnectionError(f"postgres answered {answer!r} to an SSLRequest")
    return "answers"


def redis(host: str, port: int) -> str:
    """PING: +PONG, or -NOAUTH when a password is set; either is the server answering."""
    answer = _exchange(host, port, b"PING\r\n", 1)
    if answer not in (b"+", b"-"):
        raise ConnectionError(f"redis answered {answer!r} to PING")
    return "answers"


def kafka(host: str, port: int) -> str:
    """ApiVersions v0: a response carrying our correlation id."""
    client = b"recallstack-liveness"
    body = struct.pack("!hhih", 18, 0, 7, len(client)) + client
    size, correlation = struct.unpack("!ii", _exchange(host, port, struct.pack("!i", len(body)) + body, 8))
    if correlation != 7 or size < 4:
        raise ConnectionError(f"kafka answered ApiVersions with correlation id {correlation}, size {size}")
    return "answers"


def neo4j(host: str, port: int) -> str:
    """The Bolt handshake: the server names the protocol version it picked (4 bytes)."""
    versions = struct.pack("!IIII", 0x00000805, 0x00000404, 0x00000004, 0x00000003)
    answer = _exchange(host, port, b"\x60\x60\xb0\x17" + versions, 4)
    return f"answers (bolt {answer[3]}.{answer[2]})"


def http_get(host: str, port: int, path: str) -> str:
    """GET `path` answers 200. http.client, not httpx: an httpx client per check loads the CA
    bundle each time (~25 ms of CPU, a third of the supervisor's cost)."""
    _get(host, port, path)
    return "answers"


def loop_alive(host: str, port: int, max_age_s: float = LOOP_QUIET_S) -> str:
    """A projector's or worker's /metrics answers and none of its consume loops has been
    quiet for more than max_age_s (adapters/heartbeat.py)."""
    quiet = heartbeat.stale(_get(host, port, "/metrics"), time.time(), max_age_s)
    if quiet:
        raise ConnectionError("its loop made no progress for " + ", ".join(f"{s:.0f} s ({loop})"
                                                                            for loop, s in quiet.items()))
    return "answers"


def _get(host: str, port: int, path: str) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S * 2.5)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise ConnectionError(f"GET http://{host}:{port}{path} answered {answer.status}")
    return body.decode("utf-8", "replace")


CHECKS: dict[str, Callable[[str, int], str]] = {"postgres": postgres, "redis": redis, "kafka": kafka, "neo4j": neo4j}
