"""`recallstack`: run the local stack, its parts, and operations on it.

Exit codes: 0 success, 1 a command failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)

EXAMPLES = {
    "infra": "examples:\n  recallstack infra up\n  recallstack infra status --json\n  recallstack infra down",
    "up": "examples:\n  recallstack up             # foreground, Ctrl-C stops everything\n  recallstack up --detach    # return once the gateway answers",
    "projector": "examples:\n  recallstack projector postgres",
    "mcp": "examples:\n  recallstack mcp                                  # for an IDE's MCP config (stdio)\n"
           "  RECALLSTACK_MCP_USER_ID=alice recallstack mcp --url http://127.0.0.1:8080\n"
           "environment: RECALLSTACK_URL, RECALLSTACK_API_KEY, RECALLSTACK_MCP_USER_ID (default: the OS user),\n"
           "  RECALLSTACK_MCP_AGENT_ID, RECALLSTACK_MCP_APP_ID\n"
           "over HTTP the same server is at <gateway>/mcp (streamable HTTP)",
}


def _settings():
    from settings import Settings, default_home, ensure_secrets

    ensure_secrets(default_home())
    return Settings.from_env()


def _print_rows(rows: list[dict], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=title)
    for column in rows[0].keys() if rows else ["name"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(v) if v is not None else "-" for v in row.values()])
    Console(width=max(Console().width, 140)).print(table)


def _start(specs, processes, what: str, as_json: bool) -> list:
    from infra.stack import up

    began = time.monotonic()
    with console.status(f"starting {what}: {', '.join(s.name for s in specs)}"):
        started = up(specs, processes)
    total = time.monotonic() - began
    rows = [{"name": s.name, "pid": s.pid,
             "action": ("cold start" if s.cold else "warm start") if s.started else "already running",
             "ready_after_s": round(s.seconds, 2)} for s in started]
    _print_rows(rows, as_json, f"{what} ready in {total:.1f}s")
    return started


def cmd_infra(args) -> int:
    from infra import stack

    cfg = _settings()
    processes = stack.table(cfg)
    names = tuple(args.only.split(",")) if getattr(args, "only", None) else stack.INFRA
    unknown = set(names) - set(stack.INFRA)
    if unknown:
        console.print(f"[red]unknown server(s) {', '.join(sorted(unknown))}; choose from {', '.join(stack.INFRA)}")
        return 2
    if args.action == "up":
        for name in names:
            if stack.external(name):
                console.print(f"{name}: external (RECALLSTACK_{stack.EXTERNAL_WHEN_SET[name]} is set), not started")
        _start(stack.infra_specs(cfg, names), processes, "infrastructure", args.json)
        from adapters.kafka_log import ensure_topics

        created = asyncio.run(ensure_topics(cfg.kafka_bootstrap))
        if created:
            console.print(f"created topics: {', '.join(created)}")
    elif args.action == "down":
        stopped = stack.down(stack.infra_specs(cfg, names), processes)
        console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    else:
        _print_rows(stack.status(stack.infra_specs(cfg, names), processes), args.json, "infrastructure")
    return 0


def _all_specs(cfg):
    from infra import stack

    return stack.infra_specs(cfg) + stack.service_specs(cfg)


def cmd_up(args) -> int:
    from infra import stack

    cfg = _settings()
    processes = stack.table(cfg)
    infra_specs, service_specs = stack.infra_specs(cfg), stack.service_specs(cfg)
    began = time.monotonic()
    _start(infra_specs, processes, "infrastructure", args.json)
    from adapters.kafka_log import ensure_topics

    asyncio.run(ensure_topics(cfg.kafka_bootstrap))
    # The projector migrates the schema the query API reads, so it goes first.
    projectors = len(stack.PROJECTORS)
    _start(service_specs[:projectors], processes, "projectors", args.json)
    _start(service_specs[projectors:], processes, "services", args.json)
    console.print(f"[green]recallstack is up in {time.monotonic() - began:.1f}s[/green]\n"
                  f"  gateway      {cfg.gateway_url}   (REST base URL)\n"
                  f"  command API  {cfg.command_api_url}/docs\n"
                  f"  query API    {cfg.query_api_url}/docs\n"
                  f"  data         {cfg.home}   logs in {cfg.home / 'logs'}")
    if args.detach:
        console.print("running in the background; `recallstack down` stops it")
        return 0
    console.print("Ctrl-C stops everything")
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # explicit: a shell may start us with SIGINT ignored
        signal.signal(sig, lambda *_: stopping.append(1))
    while not stopping:
        time.sleep(0.2)
    console.print("stopping...")
    stopped = stack.down(infra_specs + service_specs, processes)
    console.print(f"stopped: {', '.join(stopped)}")
    return 0


def cmd_down(args) -> int:
    from infra import stack

    cfg = _settings()
    stopped = stack.down(_all_specs(cfg), stack.table(cfg))
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def cmd_status(args) -> int:
    from infra import stack

    import bootstrap
    from projectors.lag import projector_lag

    cfg = _settings()
    rows = stack.status(_all_specs(cfg), stack.table(cfg))
    lag_rows = []
    for name in bootstrap.PROJECTIONS:
        try:
            lag = asyncio.run(projector_lag(cfg.kafka_bootstrap, name))
            lag_rows.append({"projection": name, "log_records": lag["events"], "behind": lag["behind"]})
        except Exception as exc:  # status must answer even with the stack down
            lag_rows.append({"projection": name, "log_records": None, "behind": f"unknown ({type(exc).__name__})"})
    if args.json:
        print(json.dumps({"processes": rows, "lag": lag_rows}, indent=2))
    else:
        _print_rows(rows, False, "recallstack")
        _print_rows(lag_rows, False, "projector lag")
    return 0


def cmd_projector(args) -> int:
    from prometheus_client import start_http_server

    import bootstrap
    from infra.stack import PROJECTOR_METRICS_PORTS

    if args.name not in PROJECTOR_METRICS_PORTS:
        console.print(f"[red]unknown projector {args.name!r}; available: {', '.join(PROJECTOR_METRICS_PORTS)}")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main():
        task = asyncio.create_task(bootstrap.run_projector(args.name, ready=lambda: start_http_server(
            PROJECTOR_METRICS_PORTS[args.name], addr="127.0.0.1")))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    return 0


def cmd_dlq(args) -> int:
    import bootstrap
    from projectors import dead_letters

    cfg = _settings()
    letters = asyncio.run(dead_letters.read_all(cfg.kafka_bootstrap))
    if args.projection:
        letters = [letter for letter in letters if letter["projection"] == args.projection]
    if args.action == "list":
        rows = [{"dlq_offset": f"{letter['dlq_partition']}:{letter['dlq_offset']}", "projection": letter["projection"],
                 "event at": f"{letter['topic']}/{letter['partition']}:{letter['offset']}", "user": letter["key"],
                 "error": letter["error"][:100]} for letter in letters]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif rows:
            _print_rows(rows, False, f"{len(rows)} unresolved dead letter(s)")
        else:
            console.print("no unresolved dead letters")
        return 0
    if not args.projection:
        console.print("[red]dlq retry needs --projection NAME")
        return 2

    def report(letter, error):
        where = f"{letter['topic']}/{letter['partition']}:{letter['offset']}"
        console.print(f"{where}: " + ("[green]applied[/green]" if error is None else f"[red]still failing:[/red] {error}"))

    async def run():
        async with bootstrap.projection(args.projection) as target:
            return await dead_letters.retry(cfg.kafka_bootstrap, target, letters, on_result=report)

    done, failed = asyncio.run(run())
    console.print(f"retried: {done} applied, {failed} still failing")
    return 1 if failed else 0


def cmd_replay(args) -> int:
    import bootstrap
    from infra.process import exclusive_lock
    from projectors.replay import replay
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    cfg = _settings()
    try:
        name = bootstrap.projection_name(args.projection)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
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
                return await replay(versions, cfg.kafka_bootstrap, on_progress=on_progress, keep_old=args.keep_old)

        try:
            with exclusive_lock(cfg.home / "run" / f"replay-{name}.lock"):
                report = asyncio.run(run())
        except BlockingIOError:
            console.print(f"[red]error:[/red] a replay of {name} is already running")
            return 1
        except TimeoutError as exc:
            console.print(f"[red]error:[/red] {exc}")
            return 1
    summary = {
        "projection": report.projection, "from_version": report.old_version, "to_version": report.new_version,
        "resumed": report.resumed, "events": report.events, "events_per_s": round(report.events_per_second),
        "apply_s": round(report.apply_seconds, 2), "index_s": round(report.index_seconds, 2),
        "switch_s": round(report.switch_seconds, 2), "total_s": round(report.total_seconds, 2),
        "old_version": "kept" if args.keep_old else "dropped",
    }
    if args.json:
        print(json.dumps(summary))
    else:
        console.print(f"[green]replayed[/green] {name}: v{report.old_version} -> v{report.new_version}, "
                      f"{report.events:,} events at {report.events_per_second:,.0f}/s; readers switched; "
                      f"total {report.total_seconds:.1f}s")
    return 0


def cmd_mcp(args) -> int:
    from mcp_server.server import McpConfig, run_stdio

    # stdout carries the protocol: everything else (logs, errors) goes to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run_stdio(McpConfig.from_env(base_url=args.url))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recallstack", description="Self-hosted long-term memory for AI agents.",
                                epilog="exit codes: 0 ok, 1 failed (the message says why), 2 bad usage",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    infra = sub.add_parser("infra", help="the infrastructure alone (Kafka, Postgres, Neo4j, Redis)",
                           epilog=EXAMPLES["infra"], formatter_class=argparse.RawDescriptionHelpFormatter)
    infra.add_argument("action", choices=["up", "down", "status"])
    infra.add_argument("--only", help="comma-separated subset, e.g. kafka,postgres")
    infra.add_argument("--json", action="store_true", help="machine-readable output")
    infra.set_defaults(func=cmd_infra)

    up = sub.add_parser("up", help="start the whole local stack and serve", epilog=EXAMPLES["up"],
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--detach", action="store_true", help="return once the gateway answers")
    up.add_argument("--json", action="store_true")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop everything `up` started")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="what runs, and its health")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    proj = sub.add_parser("projector", help="run one projector in the foreground", epilog=EXAMPLES["projector"],
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    proj.add_argument("name", help="postgres|redis|neo4j")
    proj.set_defaults(func=cmd_projector)
    dlq = sub.add_parser("dlq", help="events a projector could not apply: list them, retry them",
                         epilog="examples:\n  recallstack dlq list\n  recallstack dlq retry --projection postgres\n"
                                "exit code of retry: 0 all applied, 1 some still failing",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    dlq.add_argument("action", choices=["list", "retry"])
    dlq.add_argument("--projection", help="only this read model (required for retry)")
    dlq.add_argument("--json", action="store_true")
    dlq.set_defaults(func=cmd_dlq)
    rep = sub.add_parser("replay", help="rebuild a read model from offset 0 beside the live one, then switch readers",
                         epilog="examples:\n  recallstack replay --projection pg\n"
                                "  recallstack replay --projection graph --keep-old\n"
                                "projections: postgres (pg), neo4j (graph), redis (cache)\n"
                                "an interrupted replay is resumed by the next one",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    rep.add_argument("--projection", required=True, help="pg|graph|cache (or postgres|neo4j|redis)")
    rep.add_argument("--keep-old", action="store_true", help="keep the previous version instead of dropping it")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")
    rep.set_defaults(func=cmd_replay)
    mcp = sub.add_parser("mcp", help="the MCP server on stdio (for IDE configs: Cursor, Claude Desktop, Claude Code)",
                         epilog=EXAMPLES["mcp"], formatter_class=argparse.RawDescriptionHelpFormatter)
    mcp.add_argument("--url", help="the recallstack REST base URL (default $RECALLSTACK_URL, else "
                                   "http://127.0.0.1:8080)")
    mcp.set_defaults(func=cmd_mcp)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from infra.process import StartError

    try:
        return args.func(args)
    except StartError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
