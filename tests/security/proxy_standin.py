"""The real nginx of the stack (infra/proxy_config.py) in front of stand-in upstreams: small
ASGI apps under uvicorn (the server the APIs run on) that answer with what they received, so a
test sees which upstream got a request and the raw path it was given. No infrastructure needed:
everything listens on free loopback ports, the proxy's files live in a temporary folder."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from gateway.routes import COMMAND, QUERY, WEB_EDGE
from infra.proxy_config import ProxyConfig, render
from infra.stack import MAX_REQUEST_HEAD
from infra.proxy_server import nginx_binary, worker_user


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def standin_app(name: str):
    """Answers every request with {service, method, raw_path, query, headers, body_bytes};
    /v1/boom raises (uvicorn answers 500), /v1/redirect answers 307 to its own address,
    /v1/sleep?s=N sleeps N seconds first."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = scope["raw_path"].decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        if raw_path == "/v1/boom":
            raise RuntimeError("a stand-in failure")
        if raw_path == "/v1/sleep":
            await asyncio.sleep(float(query.split("=")[1]))
        headers = [(b"content-type", b"application/json"), (b"x-standin", name.encode()),
                   (b"x-standin-raw-path", scope["raw_path"])]
        status = 200
        if raw_path == "/v1/redirect":
            host, port = scope["server"]
            status, headers = 307, headers + [(b"location", f"http://{host}:{port}/v1/elsewhere".encode())]
        answer = {"service": name, "method": scope["method"], "raw_path": raw_path, "query": query,
                  "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                  "body_bytes": len(body), "pid": os.getpid(), "port": scope["server"][1]}
        data = json.dumps(answer).encode()
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


class Standin:
    """One stand-in upstream process-alike: a uvicorn server in a thread."""

    def __init__(self, name: str, keep_alive_s: int = 75):
        self.name, self.port = name, free_port()
        self.server = uvicorn.Server(uvicorn.Config(standin_app(name), host="127.0.0.1", port=self.port,
                                                    log_level="critical", timeout_keep_alive=keep_alive_s,
                                                    h11_max_incomplete_event_size=MAX_REQUEST_HEAD))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "Standin":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, f"the stand-in {self.name} did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Proxy:
    """nginx with the stack's configuration, its upstreams given as host:port lists."""

    def __init__(self, folder: Path, upstreams: dict[str, list[str]], client_timeout_s: int = 3,
                 upstream_keepalive_s: int | None = None):
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        extra = {} if upstream_keepalive_s is None else {"upstream_keepalive_s": upstream_keepalive_s}
        self.config = ProxyConfig(listen=f"127.0.0.1:{self.port}", upstreams=upstreams, prefix=str(folder),
                                  access_log=str(folder / "access.log"), user=worker_user(),
                                  client_timeout_s=client_timeout_s, **extra)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(render(self.config))
        self.log = folder / "nginx.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Proxy":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([nginx_binary(), "-c", str(self.conf), "-p", str(self.folder), "-e", "stderr"],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, f"nginx exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"nginx did not answer: {self.log.read_text()}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@contextmanager
def proxied(tmp: Path, processes: int = 1, **proxy_args):
    """A proxy in front of `processes` stand-ins per API and one web edge: (proxy, {name: [Standin]})."""
    standins = {COMMAND: [Standin(COMMAND).start() for _ in range(processes)],
                QUERY: [Standin(QUERY).start() for _ in range(processes)],
                WEB_EDGE: [Standin(WEB_EDGE).start()]}
    proxy = Proxy(tmp, {name: [s.address for s in group] for name, group in standins.items()}, **proxy_args).start()
    try:
        yield proxy, standins
    finally:
        proxy.stop()
        for group in standins.values():
            for standin in group:
                standin.stop()


def have_nginx() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


class RawAnswer:
    def __init__(self, data: bytes):
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else None
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), value.strip())

    def json(self):
        return json.loads(self.body)


def raw_request(port: int, request_line: bytes, headers: bytes = b"", body: bytes = b"", timeout: float = 10) -> RawAnswer:
    """Send a request exactly as written (no client library normalizes the path) and read the
    answer until the proxy closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_line + b"\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % port + headers
                     + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return RawAnswer(data)


def cut_off_after(port: int, first: bytes, then: bytes, every_s: float, limit_s: float) -> float | None:
    """A slow client: `first`, then `then` every `every_s` seconds; the seconds until the server
    closed the connection, or None when it still accepted bytes after `limit_s`."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        sock.sendall(first)
        while time.monotonic() - began < limit_s:
            time.sleep(every_s)
            try:
                sock.sendall(then)
            except OSError:  # reset: the server closed it
                return time.monotonic() - began
            sock.settimeout(0.01)
            try:
                if sock.recv(65536) == b"":  # closed (an answer, if any, came first)
                    return time.monotonic() - began
            except socket.timeout:
                pass
            except OSError:
                return time.monotonic() - began
    return None
