"""One more query API process, on a spare port with settings of its own (small rate limits, a
rerank endpoint...), beside the session's services: it shares their Postgres, Redis and Kafka."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import REPO


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def query_api_process(settings, env: dict[str, str], name: str) -> Iterator[str]:
    """Its base URL once /readyz answers 200 (its log: <home>/logs/query-api-<name>.log); stopped
    on exit."""
    port = spare_port()
    env = {**os.environ, **env, "RECALLSTACK_QUERY_API_PORT": str(port), "PYTHONPATH": str(REPO)}
    log_file = settings.home / "logs" / f"query-api-{name}.log"
    with open(log_file, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "bootstrap:query_app", "--factory", "--host",
                                    "127.0.0.1", "--port", str(port), "--no-access-log"], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"the {name} query API exited; see {log_file}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the {name} query API did not get ready; see {log_file}"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
