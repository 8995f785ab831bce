"""The local stack: which processes make it, in what order, and up/down/status."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import httpx

from infra import kafka_server, liveness, neo4j_server, postgres_server, redis_server
from infra.process import ProcessSpec, ProcessTable, StartError, port_open, start, stop
from settings import PROJECTOR_METRICS_PORTS, WORKER_METRICS_PORTS, Settings, ensure_secrets

INFRA = ("kafka", "postgres", "neo4j", "redis")
# Projectors first: the Postgres one migrates the schema the APIs read.
PROJECTORS = tuple(f"projector-{name}" for name in PROJECTOR_METRICS_PORTS)
# The two APIs (each as `api_processes` uvicorn processes), the web edge (gateway/app.py: /mcp,
# /readyz, /metrics, the web UI) and the reverse proxy at the base URL in front of them all.
API_NAMES = ("command-api", "query-api")
SERVICES = (*PROJECTORS, *API_NAMES, "web-edge", "proxy")
# Memory-intelligence workers: `up` runs them after the services (tests start them themselves).
WORKERS = tuple(f"worker-{name}" for name in WORKER_METRICS_PORTS)


def table(cfg: Settings) -> ProcessTable:
    return ProcessTable(cfg.home / "run")


def infra_specs(cfg: Settings, names=INFRA) -> list[ProcessSpec]:
    secrets = ensure_secrets(cfg.home)  # the CLI creates them before it loads Settings
    build = {  # each name: its processes (Kafka: one per node of the local cluster)
        "kafka": lambda: kafka_server.cluster_specs(cfg.home, kafka_server.cluster_nodes(cfg.kafka_brokers),
                                                    cfg.kafka_heap),
        "postgres": lambda: [postgres_server.spec(cfg.home, secrets["PG_PASSWORD"], cfg.pg_dsn,
                                                  shared_buffers=cfg.pg_shared_buffers, system_dir=cfg.system_dir)],
        "neo4j": lambda: [neo4j_server.spec(cfg.home, cfg.neo4j_uri, cfg.neo4j_user, secrets["NEO4J_PASSWORD"],
                                            cfg.neo4j_heap)],
        "redis": lambda: [redis_server.spec(cfg.home, secrets["REDIS_PASSWORD"], cfg.redis_url)],
    }
    specs = [spec for n in names if n not in cfg.external for spec in build[n]()]
    for spec in specs:  # the supervisor's check: the protocol's smallest answer, no login
        server = "kafka" if spec.name.startswith("kafka") else spec.name
        spec.liveness = partial(liveness.CHECKS[server], spec.host, spec.port)
    return specs


def _http_ready(url: str) -> str:
    answer = httpx.get(url, timeout=5)
    if answer.status_code != 200:
        raise StartError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    try:  # an API's /readyz names what degrades it (an optional dependency down)
        degraded = [d.get("dependency") or d.get("service") for d in answer.json().get("degraded", [])]
    except (ValueError, AttributeError):
        degraded = []
    return f"ok, degraded: {', '.join(sorted(set(map(str, degraded))))}" if degraded else "ok"


# A request head (URL, query string, headers) may be as large as a default body: with h11's own
# 16 KiB, uvicorn resets the connection before the API can answer, e.g. for a documented
# 16,384-character `filters` of non-ASCII characters (up to 12 bytes each, percent-encoded).
MAX_REQUEST_HEAD = 1024 * 1024
# uvicorn closes an idle connection after this; the proxy closes its idle upstream connections
# sooner (infra/proxy_config.py UPSTREAM_KEEPALIVE_S), so it never writes to one being closed.
UVICORN_KEEP_ALIVE_S = 75
# Process k (from 1) of an API listens on its port + PORT_STEP * (k - 1): command API 8081, 8181,
# 8281, ...; query API 8082, 8182, 8282, ... (settings.MAX_API_PROCESSES of each at most).
PORT_STEP = 100


def api_ports(first_port: int, processes: int) -> list[int]:
    return [first_port + PORT_STEP * k for k in range(processes)]


def api_process_names(name: str, processes: int) -> list[str]:
    """command-api, command-api-2, ...: the first keeps the plain name (its log, its port)."""
    return [name] + [f"{name}-{k}" for k in range(2, processes + 1)]


def recorded_api_processes(processes: ProcessTable) -> int:
    """The highest process number of an API the process table records (0 when none runs)."""
    numbers = [int(match.group(2) or 1) for match in map(_API_PROCESS.fullmatch, processes.names()) if match]
    return max(numbers, default=0)


_API_PROCESS = re.compile(rf"({'|'.join(API_NAMES)})(?:-(\d+))?")


def service_specs(cfg: Settings, names=SERVICES, api_processes: int | None = None) -> list[ProcessSpec]:
    """The specs of `names`; each API name stands for all its processes (`api_processes`, by
    default the settings' count)."""
    from infra import proxy_server

    logs = cfg.home / "logs"
    py = sys.executable
    per_api = api_processes or cfg.api_processes

    def uvicorn(name: str, factory: str, port: int) -> ProcessSpec:
        return ProcessSpec(
            name=name, port=port, log_file=logs / f"{name}.log", ready_timeout=120,
            argv=[py, "-m", "uvicorn", f"bootstrap:{factory}", "--factory", "--host", cfg.host,
                  "--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "5",
                  "--timeout-keep-alive", str(UVICORN_KEEP_ALIVE_S),
                  # the client address is decided in one place (adapters/client_address.py, which
                  # believes X-Real-IP only from RECALLSTACK_TRUSTED_PROXIES), not by uvicorn too
                  "--no-proxy-headers",
                  # h11, not httptools (installed for uvloop's sake): llhttp caps a request head
                  # below MAX_REQUEST_HEAD and cannot be raised
                  "--http", "h11", "--h11-max-incomplete-event-size", str(MAX_REQUEST_HEAD)],
            probe=lambda: _http_ready(f"http://{cfg.host}:{port}/readyz"),
            liveness=partial(liveness.http_get, cfg.host, port, "/healthz"),
        )

    def api(name: str, factory: str, first_port: int) -> list[ProcessSpec]:
        return [uvicorn(process, factory, port) for process, port in
                zip(api_process_names(name, per_api), api_ports(first_port, per_api))]

    def cli_service(command: str, name: str, port: int) -> ProcessSpec:
        """`recallstack <command> <name>` (a projector or a worker), ready once its metrics answer."""
        return ProcessSpec(
            name=f"{command}-{name}", port=port, log_file=logs / f"{command}-{name}.log", ready_timeout=120,
            argv=[py, "-m", "cli.main", command, name],
            probe=lambda: _http_ready(f"http://{cfg.host}:{port}/metrics"),
            liveness=partial(liveness.loop_alive, cfg.host, port),
        )

    specs = {
        **{f"projector-{name}": cli_service("projector", name, port) for name, port in PROJECTOR_METRICS_PORTS.items()},
        **{f"worker-{name}": cli_service("worker", name, port) for name, port in WORKER_METRICS_PORTS.items()},
        "web-edge": uvicorn("web-edge", "web_edge_app", cfg.web_edge_port),
        "proxy": proxy_server.spec(cfg),
    }
    apis = {"command-api": api("command-api", "command_app", cfg.command_api_port),
            "query-api": api("query-api", "query_app", cfg.query_api_port)}
    return [spec for n in names for spec in (apis[n] if n in apis else [specs[n]])]


@dataclass
class Started:
    name: str
    pid: int
    started: bool
    seconds: float
    cold: bool  # first start: storage formatted / cluster created


class _Cancelled(Exception):
    """The caller was interrupted (Ctrl-C): stop waiting for readiness."""


# on_progress(name, state, started): state is "starting", "ready" (with its Started) or "failed".
Progress = Callable[[str, str, "Started | None"], None]


def up(specs: list[ProcessSpec], processes: ProcessTable, parallel: bool = True,
       on_progress: Progress | None = None, on_spawn=None) -> list[Started]:
    """Start every spec (in parallel), wait until each answers its probe. Raises StartError.
    On KeyboardInterrupt every wait ends at once; processes already spawned keep running
    (recorded, so `down` stops them). `on_spawn`: see process.start."""
    note = on_progress or (lambda name, state, started: None)
    cancelled = threading.Event()

    def waiting(name: str) -> None:
        if cancelled.is_set():
            raise _Cancelled(name)

    def one(spec: ProcessSpec) -> Started:
        note(spec.name, "starting", None)
        try:
            pid, started, seconds = start(spec, processes, on_wait=waiting, on_spawn=on_spawn)
        except StartError:
            note(spec.name, "failed", None)
            raise
        result = Started(spec.name, pid, started, seconds, spec.first_start)
        note(spec.name, "ready", result)
        return result

    if not parallel:
        return [one(s) for s in specs]
    pool = ThreadPoolExecutor(max_workers=max(1, len(specs)))
    try:
        futures = [pool.submit(one, s) for s in specs]
        results, errors = [], []
        for f in futures:
            try:
                results.append(f.result())
            except StartError as exc:
                errors.append(str(exc))
    except BaseException:  # Ctrl-C while waiting: end every thread's wait, then let it propagate
        cancelled.set()
        raise
    finally:
        pool.shutdown(wait=True)
    if errors:
        raise StartError("\n\n".join(errors))
    return results


def down(specs: list[ProcessSpec], processes: ProcessTable,
         on_stop: Callable[[str], None] | None = None) -> list[str]:
    """Stop in reverse order; only processes recorded as started by recallstack.
    `on_stop(name)` is called before each one that runs is stopped."""
    stopped = []
    for spec in reversed(specs):
        if on_stop is not None and processes.pid(spec.name) is not None:
            on_stop(spec.name)
        if stop(spec.name, processes, sig=spec.stop_signal, timeout=spec.stop_timeout):
            stopped.append(spec.name)
    return stopped


def status(specs: list[ProcessSpec], processes: ProcessTable) -> list[dict]:
    """A row per spec; the health probes run in parallel (status stays fast)."""

    def row(spec: ProcessSpec) -> dict:
        pid = processes.pid(spec.name)
        health = "-"
        if pid is not None and spec.probe is not None:
            began = time.monotonic()
            try:
                detail = spec.probe()
                health = f"ready ({detail}, {1000 * (time.monotonic() - began):.0f} ms)"
            except Exception as exc:
                health = f"not ready: {type(exc).__name__}: {str(exc)[:80]}"
        elif pid is None and spec.port is not None and port_open(spec.host, spec.port):
            health = "port taken by another process"
        return {"name": spec.name, "pid": pid, "port": spec.port, "state": "running" if pid else "stopped",
                "health": health, "log": str(spec.log_file)}

    if not specs:
        return []
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        return list(pool.map(row, specs))
