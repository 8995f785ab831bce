"""`recallstack up`, `down`, `status` and `infra`: the local stack and its processes."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time

from cli.configuration import load_settings as _settings
from cli.output import INTERRUPTED, OK, UNREACHABLE, Activity, Steps, console, describe, emit_json, print_table


def _urls(cfg) -> dict:
    return {"gateway": cfg.gateway_url, "web_edge": cfg.web_edge_url,
            "command_api": cfg.command_api_url, "query_api": cfg.query_api_url,
            "command_api_docs": f"{cfg.command_api_url}/docs", "query_api_docs": f"{cfg.query_api_url}/docs",
            "mcp": f"{cfg.gateway_url}/mcp"}


def _ready(rows: list[dict]) -> list[dict]:
    """Status rows with a boolean `ready` (for scripts: health is prose)."""
    return [{**row, "ready": str(row["health"]).startswith("ready")} for row in rows]


def _start(specs, processes, steps: Steps, what: str, on_spawn=None) -> list[dict]:
    """Start `specs` (in parallel) with a live row each; the rows of what started."""
    from infra.stack import up

    if not specs:
        return []
    steps.note(f"starting {what}: {', '.join(s.name for s in specs)}")

    def on_progress(name: str, state: str, started) -> None:
        if state == "starting":
            steps.begin(name, "starting, waiting until it answers")
        elif state == "ready":
            action = ("cold start" if started.cold else "warm start") if started.started else "already running"
            steps.end(name, f"ready ({action}) after {started.seconds:.1f}s")
        else:
            steps.end(name, "failed", ok=False)

    return [{"name": s.name, "pid": s.pid,
             "action": ("cold start" if s.cold else "warm start") if s.started else "already running",
             "ready_after_s": round(s.seconds, 2)}
            for s in up(specs, processes, on_progress=on_progress, on_spawn=on_spawn)]


def _stop(specs, processes) -> list[str]:
    """Stop `specs` in reverse order; first the stack's supervisor (unless it is this very
    process), which would otherwise restart them."""
    from infra import supervisor
    from infra.process import stop
    from infra.stack import down

    with Activity("stopping") as activity:
        pid = processes.pid(supervisor.NAME)
        stopped = []
        if pid is not None and pid != os.getpid():
            activity.update("stopping the supervisor")
            if stop(supervisor.NAME, processes, timeout=supervisor.STOP_TIMEOUT_S):
                stopped.append(supervisor.NAME)
        return stopped + down(specs, processes, on_stop=lambda name: activity.update(f"stopping {name}"))


def _ensure_topics(cfg) -> list[str]:
    from adapters.kafka_log import ensure_topics

    with Activity("creating Kafka topics if missing"):
        return asyncio.run(ensure_topics(cfg.kafka_bootstrap))


def _all_specs(cfg):
    from infra import monitoring, stack

    processes = stack.table(cfg)
    # Every API process that runs, also when `up --api-processes N` started more than the settings say.
    per_api = max(cfg.api_processes, stack.recorded_api_processes(processes))
    return (stack.infra_specs(cfg) + stack.service_specs(cfg, stack.SERVICES + stack.WORKERS, api_processes=per_api)
            + monitoring.recorded_specs(cfg, processes))  # Prometheus, when `up --with-monitoring` runs it


def cmd_infra(args) -> int:
    from infra import stack

    _use_kafka_brokers(args)
    cfg = _settings()
    processes = stack.table(cfg)
    names = args.only or stack.INFRA
    specs = stack.infra_specs(cfg, names)
    if args.action == "up":
        from settings import EXTERNAL_WHEN_SET

        external = [name for name in names if name in cfg.external]
        for name in external:
            console.print(f"{name}: external (RECALLSTACK_{EXTERNAL_WHEN_SET[name]} is set), not started")
        began = time.monotonic()
        with Steps() as steps:
            rows = _start(specs, processes, steps, "infrastructure")
        created = _ensure_topics(cfg) if "kafka" in names else []
        total = time.monotonic() - began
        if args.json:
            emit_json({"ok": True, "seconds": round(total, 2), "started": rows, "external": external,
                       "topics_created": created})
        else:
            print_table(rows, f"infrastructure ready in {total:.1f}s")
            if created:
                console.print(f"created topics: {', '.join(created)}")
        return OK
    if args.action == "down":
        stopped = _stop(specs, processes)
        if args.json:
            emit_json({"stopped": stopped})
        else:
            console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return OK
    with Activity("checking the infrastructure's health"):
        rows = _ready(stack.status(specs, processes))
    ok = all(row["ready"] for row in rows)
    if args.json:
        emit_json({"ok": ok, "processes": rows})
    else:
        print_table([{k: v for k, v in row.items() if k != "ready"} for row in rows], "infrastructure")
    return OK if ok else UNREACHABLE


def _local_admin_key(cfg, steps: Steps) -> str:
    """Make sure the local stack has an admin key (in admin.key); what to tell the user about auth."""
    if not cfg.auth:
        from adapters.http_auth import NO_AUTH_WARNING

        steps.note(NO_AUTH_WARNING)
        return "OFF (RECALLSTACK_AUTH=off): no API key is asked for"
    from cli.keys import ensure_local_admin_key

    steps.begin("admin key", "checking")
    _secret, made = asyncio.run(ensure_local_admin_key(cfg))
    steps.end("admin key", f"{'created' if made else 'present'} in {cfg.admin_key_file}")
    return (f"on: admin key in {cfg.admin_key_file} (mode 600); make user keys with "
            "`recallstack keys create --user ID --scope write`")


def cmd_up(args) -> int:
    from cli import supervision
    from infra import stack, supervisor

    if args.detach:
        parent_exit = supervision.fork_detached()  # the parent waits here for the child's word
        if parent_exit is not None:
            return parent_exit
    if args.api_processes is not None:  # the proxy's configuration and every child read the settings
        os.environ["RECALLSTACK_API_PROCESSES"] = str(args.api_processes)
    _use_kafka_brokers(args)
    cfg = _settings()
    processes = stack.table(cfg)
    infra_specs = stack.infra_specs(cfg)
    service_specs = stack.service_specs(cfg, stack.SERVICES + stack.WORKERS)
    # API processes beyond the count asked for (a previous `up --api-processes` with more) stop first.
    surplus = [spec for spec in stack.service_specs(cfg, stack.API_NAMES, api_processes=stack.recorded_api_processes(
        processes)) if spec.name not in {s.name for s in service_specs}]
    monitoring_specs = []
    if args.with_monitoring:
        from infra import monitoring

        monitoring_specs = [monitoring.spec(cfg.home, cfg)]
    everything = infra_specs + service_specs + monitoring_specs
    projectors = len(stack.PROJECTORS)
    # One supervisor per stack: one that runs already (another `up`) keeps watching.
    supervised_by = processes.pid(supervisor.NAME)
    watch = supervisor.Supervisor(everything, processes, supervisor.state_file(cfg.home))
    spawned = watch.adopt if supervised_by is None else None
    began = time.monotonic()
    try:
        with Steps() as steps:
            rows = _start(infra_specs, processes, steps, "infrastructure", on_spawn=spawned)
            steps.begin("topics", "creating if missing")
            from adapters.kafka_log import ensure_topics

            created = asyncio.run(ensure_topics(cfg.kafka_bootstrap))
            steps.end("topics", f"created {', '.join(created)}" if created else "present")
            # The projector migrates the schema the query API reads, so it goes first.
            rows += _start(service_specs[:projectors], processes, steps, "projectors", on_spawn=spawned)
            if surplus:
                steps.note(f"stopping API processes beyond {cfg.api_processes} per API: "
                           f"{', '.join(spec.name for spec in surplus)}")
            rows += _start(service_specs[projectors:], processes, steps, "services", on_spawn=spawned)
            _reload_proxy(cfg, processes, rows, steps)
            stack.down(surplus, processes)
            admin_key_note = _local_admin_key(cfg, steps)
            rows += _start(monitoring_specs, processes, steps, "monitoring", on_spawn=spawned)
    except KeyboardInterrupt:
        if args.detach:
            console.print("interrupted: what started keeps running; `recallstack down` stops it")
        else:
            console.print("interrupted: stopping everything")
            _stop(everything, processes)
        raise
    total = time.monotonic() - began
    urls = _urls(cfg)
    if args.json:
        emit_json({"ok": True, "seconds": round(total, 2), "detached": args.detach, "started": rows, "auth": admin_key_note,
                   "topics_created": created, "urls": urls, "home": str(cfg.home), "logs": str(cfg.home / "logs")})
    else:
        print_table(rows, f"recallstack is up in {total:.1f}s")
        print(f"  base URL     {urls['gateway']}   (REST API and web UI, through the proxy; "
              f"{cfg.api_processes} process(es) per API)\n"
              f"  command API  {urls['command_api_docs']}\n"
              f"  query API    {urls['query_api_docs']}\n"
              f"  MCP          {urls['mcp']}   (streamable HTTP; stdio: recallstack mcp)\n"
              f"  data         {cfg.home}   logs in {cfg.home / 'logs'}\n"
              f"  auth         {admin_key_note}", flush=True)
        if monitoring_specs:
            print(f"  prometheus   http://127.0.0.1:{monitoring_specs[0].port}   (alerts: /alerts)", flush=True)
    note = (f"restarted by the supervisor that runs already (pid {supervised_by})" if supervised_by
            else "a process that exits or hangs is restarted (logs/supervisor.log)")
    if args.detach:
        console.print(f"running in the background; {note}; `recallstack down` stops it")
        if supervised_by is None:
            supervision.become_detached(watch, processes, cfg.home / "logs" / "supervisor.log", cfg)
        supervision.report_detached(OK)
        return OK
    console.print(f"{note}; Ctrl-C stops everything")
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        watch.stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):  # explicit: a shell may start us with SIGINT ignored
        signal.signal(sig, on_signal)
    if supervised_by is None:
        supervision.supervise(watch, processes, cfg.home / "logs" / "supervisor.log", cfg)
    while not received:
        time.sleep(0.2)
    stopped = _stop(everything, processes)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return INTERRUPTED if received[0] == signal.SIGINT else OK


def _reload_proxy(cfg, processes, rows: list[dict], steps: Steps) -> None:
    """A proxy that ran already takes the current configuration (the API processes may differ)."""
    from infra import proxy_server

    pid = processes.pid(proxy_server.NAME)
    if pid is not None and any(row["name"] == proxy_server.NAME and row["action"] == "already running" for row in rows):
        proxy_server.reload(cfg, pid)
        steps.note(f"proxy: configuration reloaded ({cfg.api_processes} process(es) per API)")


KAFKA_BROKERS_HELP = ("local Kafka nodes (default RECALLSTACK_KAFKA_BROKERS, else what the data was made as, else 1); "
                      "3: a KRaft cluster on 9092/9094/9096, replication 3, min.insync 2 (on a new home)")


def _whole_number(high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number, got {text!r}") from None
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(f"between 1 and {high}, got {value}")
        return value
    return parse


def _api_processes(text: str) -> int:
    from settings import MAX_API_PROCESSES

    return _whole_number(MAX_API_PROCESSES)(text)


def _kafka_brokers(text: str) -> int:
    from settings import MAX_KAFKA_BROKERS

    return _whole_number(MAX_KAFKA_BROKERS)(text)


def _use_kafka_brokers(args) -> None:
    """--kafka-brokers N: for this process and every one it starts (they read the settings)."""
    if getattr(args, "kafka_brokers", None) is not None:
        os.environ["RECALLSTACK_KAFKA_BROKERS"] = str(args.kafka_brokers)


def cmd_down(args) -> int:
    from infra import stack

    cfg = _settings()
    stopped = _stop(_all_specs(cfg), stack.table(cfg))
    if args.json:
        emit_json({"stopped": stopped})
    else:
        console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return OK


def cmd_status(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from adapters.http_error_rates import ErrorRateSampler
    from infra import stack, supervisor
    from projectors.lag import projector_lag
    from settings import EXTRACT_GROUP, PROJECTIONS

    cfg = _settings()
    # Error rates: each API's request counters now and again after the checks below (>= 1 s).
    per_api = max(cfg.api_processes, stack.recorded_api_processes(stack.table(cfg)))
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    errors = ErrorRateSampler({"web-edge": cfg.web_edge_url,  # each API: the sum over its processes
                               "command": [f"http://{host}:{port}" for port in stack.api_ports(cfg.command_api_port, per_api)],
                               "query": [f"http://{host}:{port}" for port in stack.api_ports(cfg.query_api_port, per_api)]})
    # The extraction worker's lag too: conversations waiting to become memories.
    readers = [(name, None) for name in PROJECTIONS] + [("worker-extract", EXTRACT_GROUP)]

    async def read_lags():
        return await asyncio.gather(*(projector_lag(cfg.kafka_bootstrap, name, group) for name, group in readers),
                                    return_exceptions=True)

    with Activity("checking each process's health and the projectors' lag") as activity, \
            ThreadPoolExecutor(max_workers=1) as pool:
        errors.sample()
        lags = pool.submit(lambda: asyncio.run(read_lags()))  # Kafka's answers while the probes run
        rows = _ready(stack.status(_all_specs(cfg), stack.table(cfg)))
        watched = supervisor.read_state(cfg.home, stack.table(cfg))
        for row in rows:  # what the supervisor saw of each (nothing when no `up` supervises)
            seen = watched["processes"].get(row["name"], {})
            row.update(restarts=seen.get("restarts", 0), last_exit=seen.get("last_exit"),
                       last_reason=seen.get("last_reason"), supervised=seen.get("state"))
        lag_rows = []
        for (name, _group), lag in zip(readers, lags.result()):
            if isinstance(lag, BaseException):  # status must answer even with the stack down
                lag_rows.append({"projection": name, "log_records": None, "behind": None, "error": describe(lag)})
            else:
                lag_rows.append({"projection": name, "log_records": lag["events"], "behind": lag["behind"],
                                 "error": None})
        activity.update("reading the APIs' request counters again")
        error_rows = errors.rows()
    ok = all(row["ready"] for row in rows) and all(row["error"] is None for row in lag_rows)
    if args.json:
        emit_json({"ok": ok, "home": str(cfg.home), "urls": _urls(cfg), "processes": rows, "lag": lag_rows,
                   "http_errors": error_rows, "supervisor": {"pid": watched["pid"], "running": watched["pid"] is not None,
                                                            "updated_at": watched["updated_at"]}})
    else:
        print_table([_process_row(row) for row in rows], "recallstack")
        console.print(f"supervisor: running (pid {watched['pid']}), restarts a process that exits or hangs"
                      if watched["pid"] else "supervisor: not running (nothing restarts a process that exits; "
                                             "`recallstack up` supervises)")
        print_table([{"projection": row["projection"], "log_records": row["log_records"],
                      "behind": row["behind"] if row["error"] is None else f"unknown ({row['error'].split(':')[0]})"}
                     for row in lag_rows], "lag (projectors and the extraction worker)")
        window = max((row["window_s"] for row in error_rows), default=0)
        print_table([_error_rate_row(row) for row in error_rows],
                    f"HTTP errors (since start; last {window:.1f} s) -- /metrics, /healthz, /readyz left out")
    return OK if ok else UNREACHABLE


def _process_row(row: dict) -> dict:
    """A process as the status table shows it: the supervisor's columns folded into two."""
    shown = {k: v for k, v in row.items() if k not in ("ready", "restarts", "last_exit", "last_reason", "supervised")}
    shown["restarts"] = row["restarts"] if row["supervised"] != "failed" else f"{row['restarts']} (gave up)"
    shown["last exit"] = f"{row['last_exit']}: {row['last_reason']}" if row["last_exit"] else "-"
    return shown


def _error_rate_row(row: dict) -> dict:
    if row["error"] is not None:
        return {"service": row["service"], "requests": "-", "4xx": "-", "5xx": "-",
                "recent": f"unknown ({row['error'].split(':')[0]})"}
    recent = "-"
    if row["window_requests"] is not None:
        ratio = row["window_5xx_ratio"]
        recent = (f"{row['window_requests']} requests, {row['window_errors_4xx']} 4xx, {row['window_errors_5xx']} 5xx"
                  + (f" ({ratio:.1%} 5xx)" if ratio is not None else ""))
    return {"service": row["service"], "requests": row["requests_total"], "4xx": row["errors_4xx_total"],
            "5xx": row["errors_5xx_total"], "recent": recent}


def _servers(value: str) -> tuple[str, ...]:
    """--only: a comma-separated subset of the infrastructure servers."""
    from infra.stack import INFRA

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(set(names) - set(INFRA))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown server(s) {', '.join(unknown) or repr(value)}; "
                                         f"choose from {', '.join(INFRA)}")
    return names


def register(sub, command) -> None:
    """The up, down, status and infra commands (`command` is cli.help_text.command)."""
    up = command(sub, "up", "start the whole local stack (infrastructure and services) and print the URLs", """
        Starts Kafka, Postgres, Neo4j and Redis, creates the topics, then the projectors (the
        Postgres one migrates the schema the APIs read), then the command API and the query
        API (--api-processes each), the web edge and the reverse proxy (nginx) at the base URL.
        Each is waited for until it answers a real readiness call (a live row per process on
        stderr). What runs already is left alone; a server whose
        RECALLSTACK_* address is set is external and not started. In the foreground, Ctrl-C
        or SIGTERM stops everything; with --detach it returns once everything answers and
        `recallstack down` stops it. Either way what it started is supervised: a process that
        exits, or fails 3 liveness checks in a row, is restarted (backoff from 1 s to 30 s; 5
        restarts in 10 minutes, then it is left down); with --detach a supervisor process
        stays behind (logs/supervisor.log; docs/operations.md, "Supervision").
    """, """
        recallstack up                        # foreground; Ctrl-C stops everything
        recallstack up --detach               # return once everything answers
        recallstack up --detach --api-processes 2   # two processes per API behind the proxy
        recallstack up --detach --with-monitoring   # and Prometheus on 127.0.0.1:9090
        recallstack up --detach --json | jq -r .urls.gateway
    """, """
        0    up (--detach), or stopped by SIGTERM (foreground)
        1    a server would not start: named, with the tail of its log
        2    a RECALLSTACK_* setting does not fit: named
        3    an external dependency (e.g. RECALLSTACK_KAFKA_BOOTSTRAP) is unreachable
        130  Ctrl-C (in the foreground after everything stopped)
    """, json_output="what started, the URLs, the data folder; printed once everything answers")
    up.add_argument("--detach", action="store_true", help="return once everything answers (default: serve until Ctrl-C)")
    up.add_argument("--with-monitoring", action="store_true",
                    help="also run Debian's Prometheus on 127.0.0.1:9090 with recallstack's alert rules (docs/observability.md)")
    up.add_argument("--kafka-brokers", type=_kafka_brokers, metavar="N", help=KAFKA_BROKERS_HELP)
    up.add_argument("--api-processes", type=_api_processes, metavar="N",
                    help="uvicorn processes per API, balanced by the proxy (default RECALLSTACK_API_PROCESSES "
                         "or 1); ports: the API's port + 100 per further process")
    up.set_defaults(func=cmd_up)

    down = command(sub, "down", "stop everything `up` started", """
        Stops the supervisor (so that nothing is restarted), then the services, then the
        infrastructure, in reverse start order. Only processes
        recorded in $RECALLSTACK_HOME/run/ are signalled (by PID and start time), so it works
        after a crash and never signals a reused PID. Data stays.
    """, """
        recallstack down
        recallstack down --json | jq -r '.stopped[]'
    """, json_output='{"stopped": [names]}')
    down.set_defaults(func=cmd_down)

    status = command(sub, "status", "show what runs, its health, and how far each projector is behind", """
        Every process of the stack with its PID, port and a real protocol health check
        (Kafka metadata, a Postgres query, Bolt, Redis PING, HTTP /readyz), and for each
        projector the log records it has not applied yet (lag); per process the supervisor's
        restarts and the last exit (code or signal, and why: exited, hung). Safe to run at any time;
        answers with the stack down (and says so with exit code 3).
    """, """
        recallstack status
        recallstack status --json | jq '.lag[] | {projection, behind}'
        recallstack status --json > /dev/null && echo "all ready"
    """, """
        0    every process running and ready, every lag known
        3    something is stopped or not ready, or Kafka unreachable (the report is printed either way)
    """, json_output='{"ok", "home", "urls", "processes": [{name, pid, port, state, ready, health, log}], '
                     '"lag": [{projection, log_records, behind, error}]}')
    status.set_defaults(func=cmd_status)
    _register_infra(sub, command)


def _register_infra(sub, command) -> None:
    """The infra command."""
    infra = command(sub, "infra", "the infrastructure alone (Kafka, Postgres, Neo4j, Redis): up, down, status", """
        For tests and development: the servers the services need, without the services.
        A server whose RECALLSTACK_* address is set (RECALLSTACK_KAFKA_BOOTSTRAP,
        RECALLSTACK_PG_DSN, RECALLSTACK_NEO4J_URI, RECALLSTACK_REDIS_URL) is external:
        never started or stopped here. `recallstack infra ACTION --help` for each action.
    """, """
        recallstack infra up
        recallstack infra up --only kafka,postgres
        recallstack infra status --json | jq .ok
        recallstack infra down
    """)
    infra_actions = infra.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    only = dict(type=_servers, metavar="NAMES", help="comma-separated subset: kafka,postgres,neo4j,redis (default: all)")
    infra_up = command(infra_actions, "up", "start the infrastructure servers and create the Kafka topics", """
        Idempotent: running servers are left alone. Each server is waited for until it answers
        a real protocol call; the table gives each one's cold/warm start time. Downloads
        (Maven jars, Postgres binaries) are cached, so the second start is fast.
    """, """
        recallstack infra up
        recallstack infra up --only kafka,postgres
        RECALLSTACK_HOME=/tmp/rs3 recallstack infra up --kafka-brokers 3   # a three-node Kafka cluster
        RECALLSTACK_HOME=/tmp/rs recallstack infra up --json | jq '.started[] | {name, ready_after_s}'
    """, """
        0    every server ready
        1    a server would not start: named, with the tail of its log
        3    Kafka unreachable while creating the topics (external Kafka)
    """, json_output='{"ok", "seconds", "started": [{name, pid, action, ready_after_s}], "external", "topics_created"}')
    infra_up.add_argument("--only", **only)
    infra_up.add_argument("--kafka-brokers", type=_kafka_brokers, metavar="N", help=KAFKA_BROKERS_HELP)
    infra_down = command(infra_actions, "down", "stop the infrastructure servers recallstack started", """
        Stops the servers recorded in $RECALLSTACK_HOME/run/ (services are left alone: use
        `recallstack down` for everything). Data stays.
    """, """
        recallstack infra down
        recallstack infra down --only neo4j
    """, json_output='{"stopped": [names]}')
    infra_down.add_argument("--only", **only)
    infra_status = command(infra_actions, "status", "show the infrastructure servers and their health", """
        Each server with its PID, port and a real protocol health check.
    """, """
        recallstack infra status
        recallstack infra status --only kafka --json | jq '.processes[0].ready'
    """, """
        0    every server running and ready
        3    a server is stopped or not ready (the report is printed either way)
    """, json_output='{"ok", "processes": [{name, pid, port, state, ready, health, log}]}')
    infra_status.add_argument("--only", **only)
    infra.set_defaults(func=cmd_infra)
