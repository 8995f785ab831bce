"""`recallstack worker extract|consolidate|forget`: run a memory-intelligence worker.

Without --once a worker runs until SIGTERM/Ctrl-C (extraction: its consumer loop;
consolidation and forgetting: a faust-streaming app with its timer), with Prometheus
metrics on RECALLSTACK_HOST, 127.0.0.1 by default (WORKER_METRICS_PORTS). With --once it does one pass and prints
what it did; --dry-run (implies --once) prints what it would do and appends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from cli.output import INTERRUPTED, OK, Activity, emit_json, print_table
from settings import WORKER_METRICS_PORTS



def cmd_worker(args) -> int:
    import bootstrap
    from adapters import observability

    once = args.once or args.dry_run
    observability.configure(f"worker-{args.kind}", bootstrap.settings(), level="INFO" if not once else "WARNING")
    if not once and args.kind != "extract":
        return _run_faust(args.kind, bootstrap)
    if args.kind == "extract":
        return asyncio.run(_extract(args, once, bootstrap))
    return asyncio.run(_lifecycle_once(args, bootstrap))


async def _extract(args, once: bool, bootstrap) -> int:
    received: list[int] = []
    async with bootstrap.extraction_worker(dry_run=args.dry_run) as worker:
        if not once:
            from prometheus_client import start_http_server

            start_http_server(WORKER_METRICS_PORTS["extract"], addr=bootstrap.settings().host)  # 0.0.0.0 in compose
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, lambda sig=sig: (received.append(sig), worker.stop()))
            await worker.run()
            return INTERRUPTED if signal.SIGINT in received else OK
        with Activity("extracting conversations up to the end of the log") as activity:
            report = await worker.run(once=True, progress=lambda r: activity.update(
                f"{r.conversations} conversations, {r.facts} facts, {dict(r.actions)}"))
    result = {**report.as_dict(), "dry_run": args.dry_run}
    if args.dry_run:
        result["decisions"] = report.decisions
    if args.json:
        emit_json(result)
    elif args.dry_run:
        print_table([{k: d[k] for k in ("action", "fact", "memory_id", "reason")} for d in report.decisions],
                    "extraction decisions (dry run: nothing appended)")
    else:
        print_table([{k: v for k, v in result.items() if k != "decisions"}], "extraction")
    return OK


async def _lifecycle_once(args, bootstrap) -> int:
    lifecycle, close = await bootstrap.open_lifecycle(args.kind)
    try:
        with Activity(f"{args.kind}: waiting for the Postgres projection to catch up") as activity:
            report = await lifecycle.run(args.kind, users=args.user or None, dry_run=args.dry_run,
                                         progress=lambda done, total: activity.update(
                                             f"{args.kind}: {done}/{total} users"))
    finally:
        await close()
    if args.json:
        emit_json(report.as_dict())
        return OK
    rows = [{"action": a.action, "user": a.user_id, "memories": ", ".join(a.memory_ids), "reason": a.reason}
            for a in report.actions]
    title = (f"{args.kind}{' (dry run: nothing appended)' if args.dry_run else ''}: {report.users} users, "
             f"{report.examined} memories examined, {report.counts() or 'nothing to do'}, "
             f"{report.appended} events appended"
             + (f", {len(report.profiles)} user profiles updated" if args.kind == "consolidate" else ""))
    print_table(rows or [{"action": "-", "user": "-", "memories": "-", "reason": "nothing to do"}], title)
    return OK


def _run_faust(kind: str, bootstrap) -> int:
    import faust
    from prometheus_client import start_http_server

    from consolidation.faust_app import build_app

    cfg = bootstrap.settings()

    async def lifecycle():
        found, _close = await bootstrap.open_lifecycle(kind)  # lives as long as the worker
        return found

    interval = cfg.forget_interval_s if kind == "forget" else cfg.consolidate_interval_s
    app = build_app(kind, cfg, lifecycle, interval_s=interval, full_every_s=cfg.consolidate_full_every_s)
    start_http_server(WORKER_METRICS_PORTS[kind], addr=cfg.host)  # RECALLSTACK_HOST: 0.0.0.0 in compose
    # faust (mode) sets up logging itself: hand it the structlog handler configure() installed.
    app.conf.loghandlers = list(logging.getLogger().handlers)
    faust.Worker(app, loglevel=logging.getLevelName(logging.getLogger().level), quiet=True,
                 logging_config={"version": 1, "disable_existing_loggers": False}).execute_from_commandline()
    return OK
