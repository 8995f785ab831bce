"""Redis from Debian's redis-server, append-only file on, password from secrets."""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.process import ProcessSpec, StartError
from settings import REDIS_PORT


def _probe(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
        return "redis " + client.info("server")["redis_version"]
    finally:
        client.close()


def spec(home: Path, password: str, url: str) -> ProcessSpec:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartError("redis: redis-server not found; install Debian's redis-server (`make install` does)")
    data = home / "redis"
    first_start = not data.exists()
    data.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes"]
    if password:
        argv += ["--requirepass", password]
    return ProcessSpec(
        name="redis", argv=argv, log_file=home / "logs" / "redis.log", port=REDIS_PORT,
        # A large dataset is loaded before Redis answers (BusyLoadingError): 1M memories (2.9 GB of
        # AOF) took over 20 s here. A Redis that dies while loading is seen at once (its exit).
        ready_timeout=300, probe=lambda: _probe(url), first_start=first_start,
    )
