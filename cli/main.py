"""`recallstack`: run the local stack, its parts, and operations on it.

Every command has `--help` with examples; the exit codes are in cli/output.py (and in
`recallstack --help`): 0 ok, 1 failed, 2 usage, 3 a dependency unreachable, 130 Ctrl-C.
Commands that print results take --json: one JSON document on stdout, nothing else there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import textwrap
import time

from cli.output import (EXIT_CODES_HELP, FAILED, INTERRUPTED, OK, UNREACHABLE, USAGE, Activity, Steps, console,
                        describe, emit_json, error, print_table, unreachable)


class SettingsError(ValueError):
    """A RECALLSTACK_* variable that does not fit: said, with its name, and exit 2."""


def _settings():
    from adapters import kafka_security
    from settings import Settings, default_home, ensure_secrets

    ensure_secrets(default_home())  # Settings reads them
    try:
        kafka_security.current()
        return Settings.from_env()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _fail(args, code: int, kind: str, message: str) -> int:
    """Report a failure on stderr (and, with --json, as the one document on stdout)."""
    error(message)
    if getattr(args, "json", False):
        emit_json({"error": {"code": kind, "message": message}})
    return code


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


# ---- commands -------------------------------------------------------------------------

def cmd_infra(args) -> int:
    from infra import stack

    _use_kafka_brokers(args)
    cfg = _settings()
    processes = stack.table(cfg)
    names = args.only or stack.INFRA
    specs = stack.infra_specs(cfg, names)
    if args.action == "up":
        external = [name for name in names if stack.external(name)]
        for name in external:
            console.print(f"{name}: external (RECALLSTACK_{stack.EXTERNAL_WHEN_SET[name]} is set), not started")
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
            supervision.become_detached(watch, processes, cfg.home / "logs" / "supervisor.log")
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
        supervision.supervise(watch, processes, cfg.home / "logs" / "supervisor.log")
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


def cmd_worker(args) -> int:
    from cli.workers import cmd_worker as run  # imports faust and the embedder only when used

    return run(args)


def cmd_projector(args) -> int:
    from prometheus_client import start_http_server

    import bootstrap
    from adapters import observability
    from infra.stack import PROJECTOR_METRICS_PORTS

    name = args.name
    observability.configure(f"projector-{bootstrap.projection_name(name)}")  # JSON lines when not on a terminal
    received: list[int] = []

    async def main():
        task = asyncio.create_task(bootstrap.run_projector(name, ready=lambda: start_http_server(
            PROJECTOR_METRICS_PORTS[name], addr=bootstrap.settings().host)))  # 0.0.0.0 in compose
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda sig=sig: (received.append(sig), task.cancel()))
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    return INTERRUPTED if signal.SIGINT in received else OK


def _letter(letter: dict) -> dict:
    """A dead letter for scripts: where it sits, which event, why it failed."""
    from adapters.kafka_codec import TYPE_HEADER

    headers = dict(letter.get("headers") or ())
    event_type = headers.get(TYPE_HEADER)
    return {"dlq_partition": letter["dlq_partition"], "dlq_offset": letter["dlq_offset"],
            "projection": letter["projection"], "topic": letter["topic"], "partition": letter["partition"],
            "offset": letter["offset"], "user": letter["key"],
            "event_type": event_type.decode(errors="replace") if isinstance(event_type, bytes) else event_type,
            "error": letter["error"], "traceback": letter.get("traceback")}


def _read_letters(cfg, projection: str | None) -> list[dict]:
    from projectors import dead_letters
    from settings import DLQ_TOPIC

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # an outage is reported once, as exit code 3
    with Activity(f"reading {DLQ_TOPIC}"):
        letters = asyncio.run(_read_all_letters(cfg))
    return [letter for letter in letters if projection is None or letter["projection"] == projection]


async def _read_all_letters(cfg) -> list[dict]:
    import bootstrap
    from projectors import dead_letters

    keys = bootstrap.keyring()  # opens the sealed error text of a sealed record's letter
    try:
        return await dead_letters.read_all(cfg.kafka_bootstrap, keys=keys)
    finally:
        await keys.store.close()


def cmd_dlq_list(args) -> int:
    cfg = _settings()
    letters = [_letter(letter) for letter in _read_letters(cfg, args.projection)]
    if args.json:
        emit_json({"count": len(letters), "projection": args.projection, "dead_letters": letters})
    elif letters:
        print_table([{"dlq_offset": f"{x['dlq_partition']}:{x['dlq_offset']}", "projection": x["projection"],
                      "event at": f"{x['topic']}/{x['partition']}:{x['offset']}", "event": x["event_type"],
                      "user": x["user"], "error": x["error"][:100]} for x in letters],
                    f"{len(letters)} unresolved dead letter(s)")
    else:
        console.print("no unresolved dead letters" + (f" of {args.projection}" if args.projection else ""))
    return OK


def cmd_dlq_retry(args) -> int:
    import bootstrap
    from projectors import dead_letters
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = _settings()
    letters = _read_letters(cfg, args.projection)
    results: list[dict] = []
    if letters:
        bar = Progress(TextColumn(f"retry {args.projection}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, transient=True, disable=not console.is_terminal)
        with bar:
            task = bar.add_task("retry", total=len(letters))

            def report(letter, failure):
                where = f"{letter['topic']}/{letter['partition']}:{letter['offset']}"
                console.print(f"{where}: " + ("[green]applied[/green]" if failure is None
                                              else f"[red]still failing:[/red] {failure}"), highlight=False)
                results.append({**{k: v for k, v in _letter(letter).items() if k not in ("error", "traceback")},
                                "status": "applied" if failure is None else "failing", "error": failure})
                bar.advance(task)

            async def run():
                async with bootstrap.projection(args.projection) as target:
                    return await dead_letters.retry(cfg.kafka_bootstrap, target, letters, on_result=report,
                                                    keys=bootstrap.keyring())

            asyncio.run(run())
    applied = sum(1 for r in results if r["status"] == "applied")
    failing = len(results) - applied
    if args.json:
        emit_json({"projection": args.projection, "applied": applied, "still_failing": failing, "results": results})
    elif letters:
        console.print(f"retried: {applied} applied, {failing} still failing")
    else:
        console.print(f"no unresolved dead letters of {args.projection}: nothing to retry")
    return FAILED if failing else OK


def cmd_replay(args) -> int:
    import bootstrap
    from infra.process import exclusive_lock
    from projectors.replay import replay
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    cfg = _settings()
    name = args.projection
    from adapters import observability

    observability.configure_logging("replay", level="WARNING")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        apply_task = bar.add_task(f"replay {name}: log records", total=None, rate="", counts="")
        started = time.monotonic()

        def on_progress(phase: str, done: int, total: int | None) -> None:
            if phase == "apply":
                elapsed = max(time.monotonic() - started, 1e-6)
                bar.update(apply_task, completed=done, total=total, counts=f"{done:,}/{total:,}",
                           rate=f"{done / elapsed:,.0f} records/s")
            elif phase == "index":
                bar.update(apply_task, description=f"replay {name}: building index {done}")
            else:
                bar.update(apply_task, description=f"replay {name}: switching readers (attempt {done})")

        async def run():
            async with bootstrap.read_model(name) as versions:
                return await replay(versions, cfg.kafka_bootstrap, on_progress=on_progress, keep_old=args.keep_old,
                                    keys=bootstrap.keyring())

        try:
            with exclusive_lock(cfg.home / "run" / f"replay-{name}.lock"):
                report = asyncio.run(run())
        except BlockingIOError:
            return _fail(args, FAILED, "failed", f"a replay of {name} is already running")
        except TimeoutError as exc:
            return _fail(args, FAILED, "failed", str(exc))
        except KeyboardInterrupt:
            console.print(f"replay of {name} interrupted: readers stay on the live version; "
                          "the next replay resumes where this one stopped")
            raise
    summary = {
        "projection": report.projection, "from_version": report.old_version, "to_version": report.new_version,
        "resumed": report.resumed, "events": report.events, "events_per_s": round(report.events_per_second),
        "apply_s": round(report.apply_seconds, 2), "index_s": round(report.index_seconds, 2),
        "switch_s": round(report.switch_seconds, 2), "total_s": round(report.total_seconds, 2),
        "old_version": "kept" if args.keep_old else "dropped",
    }
    if args.json:
        emit_json(summary)
    else:
        console.print(f"[green]replayed[/green] {name}: v{report.old_version} -> v{report.new_version}, "
                      f"{report.events:,} events at {report.events_per_second:,.0f}/s; readers switched; "
                      f"total {report.total_seconds:.1f}s")
    return OK


def cmd_export(args) -> int:
    from cli.transfer import cmd_export as run

    return run(args)


def cmd_import(args) -> int:
    from cli.transfer import cmd_import as run

    return run(args)


def _key_command(args, work, show) -> int:
    """Run one `keys` action: its result as a table/JSON, its failure with the right exit code."""
    from cli.keys import KeyCommandFailed

    try:
        result = asyncio.run(work(_settings()))
    except KeyCommandFailed as exc:
        return _fail(args, FAILED, "failed", str(exc))
    except Exception as exc:
        if unreachable(exc) is None:
            raise
        return _fail(args, UNREACHABLE, "unreachable", f"Kafka or Postgres is unreachable: {describe(exc)}")
    if args.json:
        emit_json(result)
    else:
        show(result)
    return OK


def cmd_keys_create(args) -> int:
    from datetime import datetime, timezone

    from cli import keys

    expires = None
    if args.expires:
        try:
            expires = datetime.fromisoformat(args.expires)
        except ValueError:
            return _fail(args, FAILED, "invalid", f"--expires: not an ISO 8601 date or time: {args.expires!r}")
        expires = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
        if expires <= datetime.now(timezone.utc):
            return _fail(args, FAILED, "invalid", "--expires: must be in the future")

    async def work(cfg):
        issued = await keys.create(cfg, args.user, args.scope, args.name, expires)
        return {"key_id": issued.key_id, "key": issued.secret, "prefix": issued.prefix, "user_id": args.user,
                "scopes": list(issued.scopes), "name": args.name, "expires_at": expires.isoformat() if expires else None}

    def show(result):
        console.print(f"key {result['prefix']}… for {result['user_id']} ({', '.join(result['scopes'])}), "
                      f"id {result['key_id']}; shown once, store it now:")
        print(result["key"], flush=True)
    return _key_command(args, work, show)


def cmd_keys_revoke(args) -> int:
    from cli import keys

    return _key_command(args, lambda cfg: keys.revoke(cfg, args.key, args.reason),
                        lambda r: console.print(f"revoked key {r['key_id']} of {r['user_id']}"))


def cmd_keys_list(args) -> int:
    from cli import keys

    async def work(cfg):
        return {"keys": await keys.listing(cfg, args.user, args.all)}

    def show(result):
        print_table([{"prefix": k["prefix"], "user": k["user_id"], "scopes": ",".join(k["scopes"]),
                      "name": k["name"] or "", "created": k["created_at"][:19],
                      "expires": (k["expires_at"] or "never")[:19],
                      "revoked": (k["revoked_at"] or "")[:19], "key_id": k["key_id"]} for k in result["keys"]],
                    f"{len(result['keys'])} API keys")
    return _key_command(args, work, show)


def cmd_mcp(args) -> int:
    from mcp_server.server import McpConfig, run_stdio

    # stdout carries the protocol: everything else (logs, errors) goes to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run_stdio(McpConfig.from_env(base_url=args.url))
    return OK


# ---- arguments --------------------------------------------------------------------------

def _projection(value: str) -> str:
    """--projection / NAME: a read model's name or alias (pg, cache, graph), canonical."""
    import bootstrap

    try:
        return bootstrap.projection_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _servers(value: str) -> tuple[str, ...]:
    """--only: a comma-separated subset of the infrastructure servers."""
    from infra.stack import INFRA

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(set(names) - set(INFRA))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown server(s) {', '.join(unknown) or repr(value)}; "
                                         f"choose from {', '.join(INFRA)}")
    return names


class _Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines); names up to 20 wide."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=30)

    def add_argument(self, action):
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):  # argparse forgets their extra indent
            self._action_max_length = max(self._action_max_length,
                                          self._current_indent + 2 + max(map(len, action.choices)))


def _block(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def _command(sub, name: str, summary: str, description: str, examples: str, exit_codes: str = "",
             json_output: str = "") -> argparse.ArgumentParser:
    """A (sub)command whose --help has the summary, a description, Examples: and its exit codes."""
    epilog = "Examples:\n" + textwrap.indent(_block(examples), "  ")
    if exit_codes:
        epilog += "\n\nExit codes:\n" + textwrap.indent(_block(exit_codes), "  ")
    command = sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{_block(description)}",
                             epilog=epilog, formatter_class=_Help)
    if json_output:
        command.add_argument("--json", action="store_true",
                             help=f"print one JSON document on stdout ({json_output}); progress and messages stay on "
                                  "stderr")
    return command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recallstack", formatter_class=_Help,
        description=_block("""
            Self-hosted, event-sourced long-term memory for AI agents.

            Runs the local stack (Kafka, Postgres+pgvector, Neo4j, Redis, the projectors, the
            command and query APIs and the gateway, all on 127.0.0.1) with its data under
            $RECALLSTACK_HOME (default ~/.recallstack), and operates on it. Configuration comes
            from RECALLSTACK_* environment variables. `recallstack COMMAND --help` shows each
            command's options, examples and exit codes.
        """),
        epilog=_block("""
            Examples:
              recallstack up --detach                 start everything, return once all answer
              recallstack status --json | jq '.processes[] | select(.ready | not) | .name'
              recallstack dlq list
              recallstack replay --projection pg
              recallstack down

            Output:
              Results go to stdout: a table or, with --json, exactly one JSON document (indented
              on a terminal, one line when piped). Progress, messages and errors go to stderr:
              animated when stderr is a terminal, one plain line per step otherwise (CI logs),
              with or without --json; `2>/dev/null` silences them.
        """) + "\n\n" + EXIT_CODES_HELP)
    from importlib.metadata import PackageNotFoundError, version

    try:
        p.add_argument("--version", action="version", version=f"recallstack {version('recallstack')}")
    except PackageNotFoundError:
        pass
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    up = _command(sub, "up", "start the whole local stack (infrastructure and services) and print the URLs", """
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

    down = _command(sub, "down", "stop everything `up` started", """
        Stops the supervisor (so that nothing is restarted), then the services, then the
        infrastructure, in reverse start order. Only processes
        recorded in $RECALLSTACK_HOME/run/ are signalled (by PID and start time), so it works
        after a crash and never signals a reused PID. Data stays.
    """, """
        recallstack down
        recallstack down --json | jq -r '.stopped[]'
    """, json_output='{"stopped": [names]}')
    down.set_defaults(func=cmd_down)

    status = _command(sub, "status", "show what runs, its health, and how far each projector is behind", """
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

    infra = _command(sub, "infra", "the infrastructure alone (Kafka, Postgres, Neo4j, Redis): up, down, status", """
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
    infra_up = _command(infra_actions, "up", "start the infrastructure servers and create the Kafka topics", """
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
    infra_down = _command(infra_actions, "down", "stop the infrastructure servers recallstack started", """
        Stops the servers recorded in $RECALLSTACK_HOME/run/ (services are left alone: use
        `recallstack down` for everything). Data stays.
    """, """
        recallstack infra down
        recallstack infra down --only neo4j
    """, json_output='{"stopped": [names]}')
    infra_down.add_argument("--only", **only)
    infra_status = _command(infra_actions, "status", "show the infrastructure servers and their health", """
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

    proj = _command(sub, "projector", "run one projector in the foreground (`up` runs them all)", """
        Consumes recallstack.memory.events in the projector's consumer group and applies each
        event to its read model; an event it cannot apply goes to recallstack.dlq with the
        error (see `recallstack dlq`). Prometheus metrics on 127.0.0.1:9101 (postgres),
        9102 (redis), 9103 (neo4j), 9107 (sparse). Logs go to stderr. Runs until SIGTERM or Ctrl-C.
    """, """
        recallstack projector postgres
        recallstack projector graph           # aliases: pg, cache, graph, bm25
    """, """
        0    stopped by SIGTERM
        3    Kafka or the read model's database unreachable at start
        130  Ctrl-C
    """)
    proj.add_argument("name", type=_projection, metavar="NAME", help="postgres|redis|neo4j|sparse (or pg|cache|graph|bm25)")
    proj.set_defaults(func=cmd_projector)

    work = _command(sub, "worker", "run a memory-intelligence worker: extract, consolidate or forget", """
        extract: turns conversations (adds with infer=true) into facts, reconciles each with
        the similar memories of the same scope (ADD / UPDATE / DELETE / NONE, with a reason)
        and appends the events, exactly once. consolidate: merges clusters of related old
        memories into one summary memory (sources archived). forget: hides memories whose
        importance decayed below a threshold, deletes the oldest of them; pinned memories
        (metadata.pinned = true) are never touched. Thresholds: RECALLSTACK_LIFECYCLE_CONFIG
        (docs/memory-lifecycle.md). Without --once a worker runs until SIGTERM or Ctrl-C
        (consolidate and forget as faust-streaming apps with timers), metrics on
        127.0.0.1:9104 (extract), 9105 (consolidate), 9106 (forget).
    """, """
        recallstack worker extract                    # run until stopped (`up` runs all three)
        recallstack worker consolidate --once
        recallstack worker forget --dry-run --user alice --json
    """, """
        0    done (or stopped by SIGTERM)
        3    Kafka or Postgres unreachable
        130  Ctrl-C
    """, json_output='{kind, counts, events_appended, actions: [...]} of the pass (with --once)')
    work.add_argument("kind", choices=("extract", "consolidate", "forget"), help="which worker")
    work.add_argument("--once", action="store_true", help="one pass up to the end of the log, then exit")
    work.add_argument("--dry-run", action="store_true",
                      help="decide and report, append nothing (implies --once)")
    work.add_argument("--user", action="append", metavar="USER_ID",
                      help="consolidate/forget: only this user (repeatable); default every user")
    work.set_defaults(func=cmd_worker)

    rep = _command(sub, "replay", "rebuild a read model from offset 0 beside the live one, then switch readers", """
        Builds version n+1 of the read model from the whole log (events carry their
        embeddings: nothing is re-embedded) while version n keeps serving reads, builds the
        deferred indexes, switches readers atomically once the new version has applied at
        least what the live one has, then drops the old version (unless --keep-old). A
        progress bar (records, rate, ETA) is drawn on stderr. An interrupted replay is resumed
        by the next one; one replay of a read model runs at a time.
    """, """
        recallstack replay --projection pg
        recallstack replay --projection graph --keep-old
        recallstack replay --projection cache --json | jq .events_per_s
    """, """
        0    replayed, readers switched
        1    another replay of it is running, or the switch did not succeed in time
        2    unknown projection
        3    Kafka or the read model's database unreachable
        130  Ctrl-C (readers stay on the live version; the next replay resumes)
    """, json_output="the summary: projection, from_version, to_version, events, events_per_s, timings")
    rep.add_argument("--projection", required=True, type=_projection, metavar="NAME",
                     help="postgres|neo4j|redis|sparse (or pg|graph|cache|bm25)")
    rep.add_argument("--keep-old", action="store_true", help="keep the previous version instead of dropping it")
    rep.set_defaults(func=cmd_replay)

    dlq = _command(sub, "dlq", "dead letters (events a projector could not apply): list, retry", """
        A projector that cannot apply an event appends it to recallstack.dlq with the error
        and moves on. `list` shows the unresolved ones; `retry` applies them again through
        the same projection at their original position and marks each one that succeeds as
        resolved. `recallstack dlq ACTION --help` for each action.
    """, """
        recallstack dlq list
        recallstack dlq list --projection pg --json | jq '.dead_letters[].error'
        recallstack dlq retry --projection postgres
    """)
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    dlq_list = _command(dlq_actions, "list", "show the unresolved dead letters", """
        Reads recallstack.dlq from the start; a dead letter a retry resolved is not shown.
    """, """
        recallstack dlq list
        recallstack dlq list --projection graph
        recallstack dlq list --json | jq '.count'
    """, """
        0    listed (also when there are none)
        2    unknown projection
        3    Kafka unreachable
    """, json_output='{"count", "projection", "dead_letters": [{dlq_partition, dlq_offset, projection, topic, '
                     'partition, offset, user, event_type, error, traceback}]}')
    dlq_list.add_argument("--projection", type=_projection, metavar="NAME", help="only this read model's")
    dlq_list.set_defaults(func=cmd_dlq_list)
    dlq_retry = _command(dlq_actions, "retry", "apply one read model's dead letters again", """
        Each unresolved dead letter of the projection is decoded and applied again at its
        original position (positions never move back: only the data changes); each one that
        succeeds is marked resolved, the others stay, with the new error printed.
    """, """
        recallstack dlq retry --projection postgres
        recallstack dlq retry --projection graph --json | jq .still_failing
    """, """
        0    every dead letter applied (or none to retry)
        1    some still fail (listed with their error)
        2    unknown or missing projection
        3    Kafka or the read model's database unreachable
    """, json_output='{"projection", "applied", "still_failing", "results": [{..., status, error}]}')
    dlq_retry.add_argument("--projection", required=True, type=_projection, metavar="NAME",
                           help="postgres|neo4j|redis|sparse (or pg|graph|cache|bm25); sparse: stop "
                                "projector-sparse first (one writer per index)")
    dlq_retry.set_defaults(func=cmd_dlq_retry)

    from cli.transfer import batch_size, key_ref, user_id

    keys = _command(sub, "keys", "API keys: create, revoke, list", """
        Every REST and MCP request carries an API key (Authorization: Bearer rsk_...). A key
        belongs to one user and holds scopes: read, write (implies read), admin (implies both
        and may act for any user). Keys are 32 random bytes, shown once, stored only as a
        SHA-256 hash. These commands act on the log and the Postgres read model of this
        machine directly (no key needed: this is how the first admin key is made) and return
        once the change is in effect. `recallstack up` keeps a local admin key in
        $RECALLSTACK_HOME/admin.key. `recallstack keys ACTION --help` for each action.
    """, """
        recallstack keys create --user alice --scope write --name cursor
        recallstack keys list --user alice
        recallstack keys revoke rsk_AbCdEfGh
    """)
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    key_create = _command(key_actions, "create", "issue a key for a user (printed once)", """
        Appends ApiKeyIssued (and UserRegistered for a new user) and waits until the key
        works. The key is printed once on stdout; only its hash is kept.
    """, """
        recallstack keys create --user alice --scope write
        recallstack keys create --user ops --scope admin --name "ops laptop" --expires 2027-01-01
        export RECALLSTACK_API_KEY=$(recallstack keys create --user alice --scope read --json | jq -r .key)
    """, """
        0    issued
        1    refused (a bad scope or date, named), or not yet in effect (the projector is not running)
        3    Kafka or Postgres unreachable
    """, json_output='{"key_id", "key", "prefix", "user_id", "scopes", "name", "expires_at"}')
    key_create.add_argument("--user", required=True, type=user_id, metavar="USER_ID", help="whose key")
    key_create.add_argument("--scope", action="append", choices=("read", "write", "admin"), required=True,
                            help="read, write or admin (repeat for several; write implies read)")
    key_create.add_argument("--name", help="a label shown in lists")
    key_create.add_argument("--expires", metavar="ISO8601", help="when the key stops working (default never)")
    key_create.set_defaults(func=cmd_keys_create)
    key_revoke = _command(key_actions, "revoke", "revoke a key (refused everywhere within a second)", """
        Names the key by its id or its visible prefix (rsk_ and 8 characters, as `keys list`
        shows). Appends ApiKeyRevoked and waits until the projection applied it; the services'
        key caches hold an answer at most 0.5 s.
    """, """
        recallstack keys revoke rsk_AbCdEfGh
        recallstack keys revoke 6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44 --reason "laptop lost"
    """, """
        0    revoked
        1    no such key, already revoked, or not yet in effect
        3    Kafka or Postgres unreachable
    """, json_output='{"key_id", "user_id", "revoked"}')
    key_revoke.add_argument("key", metavar="KEY_ID_OR_PREFIX", type=key_ref)
    key_revoke.add_argument("--reason", help="kept in the event and shown in lists")
    key_revoke.set_defaults(func=cmd_keys_revoke)
    key_list = _command(key_actions, "list", "list keys (prefixes, scopes, dates; never secrets)", """
        From the Postgres read model. Revoked keys only with --all.
    """, """
        recallstack keys list
        recallstack keys list --user alice --all --json | jq '.keys[].prefix'
    """, """
        0    listed
        3    Postgres unreachable
    """, json_output='{"keys": [{key_id, user_id, prefix, scopes, name, created_at, expires_at, revoked_at}]}')
    key_list.add_argument("--user", type=user_id, metavar="USER_ID", help="only this user's keys")
    key_list.add_argument("--all", action="store_true", help="also revoked keys")
    key_list.set_defaults(func=cmd_keys_list)

    export = _command(sub, "export", "write one user's memories to a file (JSON Lines)", """
        Reads the user's memories through the REST API (GET /v1/memories, oldest first) and
        writes a header line {format, version, user_id, exported_at, embedding_model, dim,
        count}, then one line per memory: id, memory (the text), metadata, categories,
        importance, agent_id, run_id, app_id, state, created_at, updated_at, occurred_at, and
        with --include-vectors its embedding and embedding_model, so an import into a server
        with the same model needs no re-embedding. The file appears only when complete.
        A progress bar goes to stderr; the summary to stdout (with --out - the file does).
    """, """
        recallstack export --user alice                          # alice.memories.jsonl
        recallstack export --user alice --out alice.jsonl --include-vectors --state any
        recallstack export --user alice --out - | gzip > alice.jsonl.gz
        recallstack export --user alice --json | jq .count
    """, """
        0    exported
        1    the API refused (the message says why), or --out exists (pass --force)
        2    usage error (a bad --user, --json with --out -)
        3    the REST API (or Postgres behind it) is unreachable
        130  Ctrl-C (no file is left under the --out name)
    """, json_output='{"user_id", "count", "file", "seconds", "state", "include_vectors", "embedding_model", "dim"}')
    export.add_argument("--user", required=True, type=user_id, metavar="USER_ID", help="whose memories")
    export.add_argument("--out", metavar="FILE", help="where to write (- for stdout; default USER_ID.memories.jsonl)")
    export.add_argument("--include-vectors", action="store_true",
                        help="also each memory's embedding and embedding_model (~8 KB per memory at 384 dimensions)")
    export.add_argument("--state", choices=("active", "any"), default="active",
                        help="active (default), or any: also archived and forgotten memories")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.add_argument("--url", help="the REST base URL (default $RECALLSTACK_URL, else http://127.0.0.1:8080)")
    export.set_defaults(func=cmd_export)

    imp = _command(sub, "import", "add the memories of an export file to a user", """
        Checks the whole file first (the header, every line and the add it becomes, against
        the command API's limits): a bad line is reported with its line number and field and
        nothing is imported. Then writes the memories through POST /v1/memories/batch, all or
        nothing per batch, with an Idempotency-Key per batch derived from the file's digest,
        so running the same import again (after a failure or Ctrl-C) adds nothing twice.
        Text, metadata, categories, importance, scope and occurred_at are kept; each memory
        gets a new id and metadata.imported_from = {id, exported_at}; archived and forgotten
        memories come back active. Vectors of the server's model and dimension are used as
        they are; the others are embedded again (stderr says how many, with which model).
    """, """
        recallstack import alice.memories.jsonl --user alice-copy
        recallstack import alice.jsonl --user bob --batch 200 --url http://10.0.0.5:8080
        gunzip -c alice.jsonl.gz | recallstack import - --user alice --json | jq .count
    """, """
        0    imported (or nothing to import)
        1    the file is not a valid export (line and field named; nothing imported), or the
             API refused a batch (the batches before it stay imported; re-run to finish)
        2    usage error (a bad --user or --batch)
        3    the REST API (or Kafka behind it) is unreachable
        130  Ctrl-C (re-run the same import to finish)
    """, json_output='{"user_id", "source_user_id", "count", "file", "seconds", "batches", "vectors_used", '
                     '"re_embedded", "embedding_model", "consistency_token"}')
    imp.add_argument("file", metavar="FILE", help="an export file (- for stdin)")
    imp.add_argument("--user", required=True, type=user_id, metavar="USER_ID", help="the user the memories go to")
    imp.add_argument("--batch", type=batch_size, default=500, metavar="N",
                     help="memories per batch, 1-1000 (default 500; large texts make smaller batches)")
    imp.add_argument("--url", help="the REST base URL (default $RECALLSTACK_URL, else http://127.0.0.1:8080)")
    imp.set_defaults(func=cmd_import)

    from cli.backup import register as register_backup  # backup, restore, digest

    register_backup(sub, _command)

    from cli.erasure import register as register_erasure  # users erase, keystore backup|restore

    register_erasure(sub, _command)

    mcp = _command(sub, "mcp", "the MCP server on stdio (for IDE configs: Cursor, Claude Desktop, Claude Code)", """
        Serves the Model Context Protocol on stdin/stdout; its tools (add_memories,
        search_memory, get_context, ...) call the REST API at --url. stdout carries the
        protocol only: logs and errors go to stderr. Over HTTP the same server is at
        <gateway>/mcp (streamable HTTP), started by `recallstack up`.
        Environment: RECALLSTACK_URL, RECALLSTACK_API_KEY, RECALLSTACK_MCP_USER_ID (default:
        the OS user), RECALLSTACK_MCP_AGENT_ID, RECALLSTACK_MCP_APP_ID.
    """, """
        recallstack mcp                       # what an IDE's MCP config runs
        RECALLSTACK_MCP_USER_ID=alice recallstack mcp --url http://127.0.0.1:8080
        claude mcp add recallstack -- recallstack mcp
    """, """
        0    the client closed the pipe
        130  Ctrl-C
    """)
    mcp.add_argument("--url", help="the recallstack REST base URL (default $RECALLSTACK_URL, else http://127.0.0.1:8080)")
    mcp.set_defaults(func=cmd_mcp)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from infra.process import StartError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail(args, INTERRUPTED, "interrupted", "interrupted")
    except StartError as exc:
        return _fail(args, FAILED, "failed", str(exc))
    except SettingsError as exc:
        return _fail(args, USAGE, "invalid_settings", str(exc))
    except BrokenPipeError:  # `recallstack status --json | head -1`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except Exception as exc:
        cause = unreachable(exc)
        if cause is None:
            raise  # a bug: the traceback says where (exit code 1)
        return _fail(args, UNREACHABLE, "unreachable",
                     f"a dependency is unreachable: {describe(cause)} "
                     "(is the stack up? `recallstack status` shows what runs)")


if __name__ == "__main__":
    sys.exit(main())
