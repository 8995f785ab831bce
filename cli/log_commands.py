"""`recallstack projector`, `worker`, `replay` and `dlq`: what consumes the log, and its dead letters."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time

from cli.configuration import fail as _fail, load_settings as _settings
from cli.output import FAILED, INTERRUPTED, OK, Activity, console, emit_json, print_table


def cmd_worker(args) -> int:
    from cli.workers import cmd_worker as run  # imports faust and the embedder only when used

    return run(args)


def cmd_projector(args) -> int:
    from prometheus_client import start_http_server

    import bootstrap
    from adapters import observability
    from settings import PROJECTOR_METRICS_PORTS

    name = args.name
    # JSON lines when not on a terminal
    observability.configure(f"projector-{bootstrap.projection_name(name)}", bootstrap.settings())
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

    observability.configure_logging("replay", cfg.log_format or None, cfg.log_level or "WARNING")
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


def _projection(value: str) -> str:
    """--projection / NAME: a read model's name or alias (pg, cache, graph), canonical."""
    import bootstrap

    try:
        return bootstrap.projection_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub, command) -> None:
    """The projector, worker, replay and dlq commands (`command` is cli.help_text.command)."""
    proj = command(sub, "projector", "run one projector in the foreground (`up` runs them all)", """
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

    work = command(sub, "worker", "run a memory-intelligence worker: extract, consolidate or forget", """
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
    _register_replay_and_dlq(sub, command)


def _register_replay_and_dlq(sub, command) -> None:
    """The replay and dlq commands."""
    rep = command(sub, "replay", "rebuild a read model from offset 0 beside the live one, then switch readers", """
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

    dlq = command(sub, "dlq", "dead letters (events a projector could not apply): list, retry", """
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
    dlq_list = command(dlq_actions, "list", "show the unresolved dead letters", """
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
    dlq_retry = command(dlq_actions, "retry", "apply one read model's dead letters again", """
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

