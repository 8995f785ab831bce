"""A minimal HTTP/1.1 keep-alive client for closed-loop load (bench/search_bench.py).

The load generator runs on the same 2 cores as the stack it measures: httpx's async client
spends about 0.8 ms of CPU per request (this one 0.1 ms; 3,000 requests each to a local server),
which at 150 QPS is an eighth of a core taken from the stack. This one writes a request and reads the answer on a plain asyncio stream (one
connection per closed-loop client), parses JSON with orjson, and nothing else. http:// only.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson


class HttpError(Exception):
    """The connection failed or the answer was not HTTP/1.1 as expected (the type name is counted)."""


class Answer:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """'HTTP/1.1 200 OK\\r\\nA: b\\r\\n...' -> (200, {"a": "b"}) (names lower-cased, repeats joined by ', ')."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(parts[1]), headers


class Connection:
    """One keep-alive connection; post_json() reconnects once when the server had closed it."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout_s: float = 30.0):
        url = urlsplit(base_url)
        if url.scheme != "http":
            raise ValueError(f"http:// only, got {base_url}")
        self.host, self.port, self.timeout_s = url.hostname or "127.0.0.1", url.port or 80, timeout_s
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._fixed = f"Host: {url.netloc}\r\nContent-Type: application/json\r\n{extra}".encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None

    async def post_json(self, path: str, payload) -> Answer:
        body = orjson.dumps(payload)
        request = (f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n".encode("latin-1")
                   + self._fixed + b"\r\n" + body)
        for attempt in (1, 2):
            fresh = self._writer is None
            if fresh:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout_s)
            try:
                return await asyncio.wait_for(self._exchange(request), self.timeout_s)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                await self.close()
                if fresh or attempt == 2:  # a new connection that fails is a real failure
                    raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                await self.close()
                raise
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes) -> Answer:
        self._writer.write(request)
        await self._writer.drain()
        status, headers = parse_head((await self._reader.readuntil(b"\r\n\r\n"))[:-4])
        if "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                if size == 0:
                    await self._reader.readuntil(b"\r\n")  # no trailers are expected
                    break
                chunks.append(await self._reader.readexactly(size))
                await self._reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await self._reader.read()  # until the server closes
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, headers, body)
