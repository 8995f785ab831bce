"""`recallstack ... --json` against the running stack, as a script runs it: a subprocess
whose stdout is one JSON document (progress and messages on stderr)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ENTRY = Path(sys.executable).with_name("recallstack")


def recallstack(settings, *argv: str) -> tuple[int, dict, str]:
    command = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "cli.main"]
    done = subprocess.run([*command, *argv], env={**os.environ, "RECALLSTACK_HOME": str(settings.home)},
                          capture_output=True, text=True, timeout=300, check=False)
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout of {' '.join(argv)} is not one JSON document:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done.returncode, doc, done.stderr


def test_status_json(services):
    from infra.stack import INFRA, SERVICES, WORKERS
    from settings import Settings

    external = Settings.from_env().external.__contains__

    code, doc, err = recallstack(services, "status", "--json")
    assert code == (0 if doc["ok"] else 3), err
    assert doc["ok"], json.dumps(doc, indent=2)  # the fixture started everything
    assert doc["home"] == str(services.home)
    assert doc["urls"]["gateway"] == services.gateway_url
    names = [row["name"] for row in doc["processes"]]
    assert names == [n for n in INFRA if not external(n)] + list(SERVICES) + list(WORKERS)
    for row in doc["processes"]:
        assert set(row) >= {"name", "pid", "port", "state", "ready", "health", "log"}
        assert row["state"] == "running" and isinstance(row["pid"], int) and row["ready"] is True, row
        assert row["health"].startswith("ready")
    assert [row["projection"] for row in doc["lag"]] == ["postgres", "redis", "neo4j", "sparse", "worker-extract"]
    for row in doc["lag"]:
        assert row["error"] is None and isinstance(row["behind"], int) and row["log_records"] >= row["behind"] >= 0


def test_infra_status_json(services):
    code, doc, err = recallstack(services, "infra", "status", "--json", "--only", "kafka,postgres")
    assert code == 0, err
    from settings import Settings

    external = Settings.from_env().external.__contains__
    assert doc["ok"] is True
    assert [row["name"] for row in doc["processes"]] == [n for n in ("kafka", "postgres") if not external(n)]


def test_infra_up_json_on_running_infrastructure(services):
    code, doc, err = recallstack(services, "infra", "up", "--json", "--only", "redis")
    assert code == 0, err
    from settings import Settings

    external = "redis" in Settings.from_env().external
    assert doc["ok"] is True and doc["external"] == (["redis"] if external else [])
    assert [(row["name"], row["action"]) for row in doc["started"]] == ([] if external else
                                                                         [("redis", "already running")])


def test_up_detach_json_on_a_running_stack_leaves_a_supervisor_that_restarts_what_dies(services):
    from infra import stack, supervisor
    from infra.process import stop

    processes = stack.table(services)
    code, doc, err = recallstack(services, "up", "--detach", "--json")
    try:
        assert code == 0, err
        assert doc["ok"] is True and doc["detached"] is True
        assert doc["urls"]["gateway"] == services.gateway_url and doc["urls"]["mcp"].endswith("/mcp")
        started = {row["name"]: row for row in doc["started"]}
        assert {"command-api", "query-api", "web-edge", "proxy", "projector-postgres"} <= set(started)
        assert all(row["action"] == "already running" for name, row in started.items() if name in
                   ("command-api", "query-api", "web-edge", "proxy"))
        assert "running in the background" in err and "restarted" in err
        assert processes.pid(supervisor.NAME) is not None, "up --detach left no supervisor"

        # The fixture started the worker: its exit code is not the supervisor's to know. The
        # second time it is the supervisor's own child.
        for restarts, expected_exit in ((1, "exit code unknown"), (2, "killed by SIGKILL")):
            victim = processes.pid("worker-forget")
            os.kill(victim, signal.SIGKILL)
            # The new pid is in the process table (and answers) a tick before the supervisor
            # records the restart in its state: wait for both.
            row = _wait_for_row(services, "worker-forget", lambda r: r["pid"] not in (None, victim) and r["ready"]
                                and r["restarts"] == restarts)
            assert row["last_exit"].startswith(expected_exit) and row["last_reason"] == "exited", row
        assert row["restarts"] == 2 and row["supervised"] == "running"
        code, doc, err = recallstack(services, "status", "--json")
        assert doc["supervisor"]["running"] is True and doc["ok"] is True, json.dumps(doc, indent=2)
    finally:
        stop(supervisor.NAME, processes, timeout=60)
    assert processes.pid("worker-forget") is not None  # stopping the supervisor alone leaves the stack up


def _wait_for_row(settings, name: str, done, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        _code, doc, _err = recallstack(settings, "status", "--json")
        row = next(r for r in doc["processes"] if r["name"] == name)
        if done(row):
            return row
        assert time.monotonic() < deadline, f"{name} not restarted within {timeout_s} s: {row}"
        time.sleep(1)


async def _post_dead_letter(bootstrap: str, user_id: str, resolve_offset: int | None = None) -> int:
    from aiokafka import AIOKafkaProducer

    from projectors.dead_letters import RESOLVED_HEADER
    from settings import DLQ_TOPIC

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        if resolve_offset is not None:  # what a successful retry appends: `list` stops showing it
            headers = [(RESOLVED_HEADER, str(resolve_offset).encode())]
            value = b""
        else:  # a projection nobody retries, so the letter can only be seen, never applied
            error = {"projection": "cli-json-test", "topic": "recallstack.memory.events", "partition": 3,
                     "offset": 42, "error": "ValueError: made up by test_cli_json", "traceback": "Traceback: none"}
            headers = [("rs-event-type", b"MemoryCreated"), ("rs-dlq-error", json.dumps(error).encode())]
            value = b"not an avro record"
        sent = await producer.send_and_wait(DLQ_TOPIC, value, key=user_id.encode(), partition=0, headers=headers)
        return sent.offset
    finally:
        await producer.stop()


def test_dlq_list_json(services, user_id):
    code, doc, err = recallstack(services, "dlq", "list", "--json")
    assert code == 0, err
    assert doc["count"] == len(doc["dead_letters"]) and doc["projection"] is None

    offset = asyncio.run(_post_dead_letter(services.kafka_bootstrap, user_id))
    try:
        code, doc, err = recallstack(services, "dlq", "list", "--json")
        assert code == 0, err
        mine = [x for x in doc["dead_letters"] if x["user"] == user_id]
        assert mine == [{"dlq_partition": 0, "dlq_offset": offset, "projection": "cli-json-test",
                         "topic": "recallstack.memory.events", "partition": 3, "offset": 42, "user": user_id,
                         "event_type": "MemoryCreated", "error": "ValueError: made up by test_cli_json",
                         "traceback": "Traceback: none"}]
        assert doc["count"] == len(doc["dead_letters"])

        code, doc, err = recallstack(services, "dlq", "list", "--projection", "pg", "--json")
        assert code == 0, err
        assert doc["projection"] == "postgres"
        assert all(x["projection"] == "postgres" for x in doc["dead_letters"])
    finally:
        asyncio.run(_post_dead_letter(services.kafka_bootstrap, user_id, resolve_offset=offset))
    code, doc, err = recallstack(services, "dlq", "list", "--json")
    assert [x for x in doc["dead_letters"] if x["user"] == user_id] == []
