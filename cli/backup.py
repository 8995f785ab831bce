"""`recallstack backup` / `restore` / `digest`: the whole event log to and from files, and
a content digest of each read model to check that a restore and replay rebuilt them.

The work is in adapters/log_backup.py (Kafka <-> Avro container files) and next to each read
model (projectors/pg_digest.py, redis_digest.py, neo4j_digest.py, sparse_digest.py); this module parses,
shows progress on stderr and prints the result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from rich.markup import escape

from cli.configuration import fail as _fail, load_settings as _settings
from cli.output import FAILED, OK, Activity, console, emit_json, print_table
from settings import PROJECTIONS

MB = 1024 * 1024


def _quiet_kafka() -> None:
    # An outage is reported once, as exit code 3, not as aiokafka's retries.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


class Meter:
    """Progress of a long copy on stderr: a live bar (records, MB, records/s, MB/s, ETA) on a
    terminal; otherwise a plain line every `every_s` seconds and one at the end."""

    def __init__(self, description: str, every_s: float = 5.0):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.description, self.every_s = description, every_s
        self._last_line = 0.0
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=True) if console.is_terminal else None
        self._task = None

    def __enter__(self) -> "Meter":
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(escape(self.description), total=None, counts="", rate="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, done: int, total: int | None, records: int, size: int, seconds: float,
               final: bool = False) -> None:
        seconds = max(seconds, 1e-6)
        counts = f"{records:,} records, {size / MB:,.1f} MB"
        rate = f"{records / seconds:,.0f} records/s, {size / MB / seconds:,.1f} MB/s"
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, counts=counts, rate=rate)
        elif final or time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            share = f" ({100 * done / total:.0f} %)" if total else ""
            console.print(f"{self.description}: {counts}{share}, {rate}", highlight=False, soft_wrap=True)


# ---- backup ---------------------------------------------------------------------------------

def cmd_backup(args) -> int:
    from adapters import log_backup

    cfg = _settings()
    bootstrap = args.bootstrap or cfg.kafka_bootstrap
    directory = Path(args.directory)
    _quiet_kafka()
    with Meter(f"backup {bootstrap}") as meter:
        last = []

        def on_progress(p) -> None:
            last[:] = [p]
            meter.update(p.positions, p.positions_total, p.records, p.bytes, p.seconds)

        try:
            manifest = asyncio.run(log_backup.backup(bootstrap, directory, on_progress=on_progress))
        except log_backup.BackupError as exc:
            return _fail(args, FAILED, "failed", f"backup: {exc}")
        except KeyboardInterrupt:
            console.print(f"backup interrupted: nothing was left under {directory}")
            raise
        if last:
            p = last[0]
            meter.update(p.positions, p.positions_total, p.records, p.bytes, p.seconds, final=True)
    seconds = max(manifest["seconds"], 1e-6)
    summary = {
        "directory": str(directory.absolute()), "records": manifest["records"], "bytes": manifest["bytes"],
        "value_bytes": manifest["value_bytes"], "seconds": manifest["seconds"],
        "records_per_s": round(manifest["records"] / seconds),
        "mb_per_s": round(manifest["value_bytes"] / MB / seconds, 2),
        "codec": manifest["codec"], "source": manifest["source"], "files": len(manifest["files"]),
        "topics": {t: {"partitions": e["partitions"], "records": e["records"]} for t, e in manifest["topics"].items()},
    }
    if args.json:
        emit_json(summary)
    else:
        print_table([{"topic": t, "partitions": e["partitions"], "records": f"{e['records']:,}"}
                     for t, e in manifest["topics"].items()],
                    f"backed up {manifest['records']:,} records to {directory} in {manifest['seconds']:.1f}s")
        console.print(f"{summary['records_per_s']:,} records/s, {summary['mb_per_s']:.1f} MB/s (values and keys); "
                      f"{len(manifest['files'])} files, {manifest['bytes'] / MB:,.1f} MB ({manifest['codec']}); "
                      f"check it with `recallstack restore {directory} --verify-only`", highlight=False, soft_wrap=True)
    return OK


# ---- restore --------------------------------------------------------------------------------

def cmd_restore(args) -> int:
    from adapters import log_backup

    cfg = _settings()
    bootstrap = args.bootstrap or cfg.kafka_bootstrap
    directory = Path(args.directory)
    _quiet_kafka()
    try:
        with Activity(f"checking {directory}: the manifest and every file's SHA-256") as activity:
            manifest = log_backup.verify(directory, on_file=lambda entry, done: activity.update(
                f"checking {directory}: {entry['path']} ({done} checked)") if done % 25 == 0 else None)
    except log_backup.BackupInvalid as exc:
        return _fail(args, FAILED, "failed", f"{directory} is not an intact backup, nothing was restored: "
                     f"{len(exc.problems)} problem(s)", exc.problems)
    console.print(f"{directory}: {len(manifest['files'])} files intact, {manifest['records']:,} records "
                  f"(backed up {manifest['created_at']} from {manifest['source'].get('bootstrap')})",
                  highlight=False, soft_wrap=True)
    if args.verify_only:
        summary = {"directory": str(directory.absolute()), "verified": True, "records": manifest["records"],
                   "files": len(manifest["files"]), "created_at": manifest["created_at"],
                   "topics": {t: {"partitions": e["partitions"], "records": e["records"]}
                              for t, e in manifest["topics"].items()}}
        if args.json:
            emit_json(summary)
        return OK
    with Meter(f"restore into {bootstrap}") as meter:
        last = []

        def on_progress(p) -> None:
            last[:] = [p]
            meter.update(p.records, p.records_total, p.records, p.bytes, p.seconds)

        try:
            report = asyncio.run(log_backup.restore(bootstrap, directory, manifest,
                                                    allow_non_empty=args.allow_non_empty, on_progress=on_progress))
        except log_backup.TargetNotEmpty as exc:
            return _fail(args, FAILED, "failed", f"restore refused, nothing was written: {exc} (restore into an "
                         "empty cluster, or pass --allow-non-empty to append the backup's records after them)")
        except log_backup.TargetMismatch as exc:
            return _fail(args, FAILED, "failed", f"restore refused, nothing was written: {exc}")
        except log_backup.BackupInvalid as exc:
            return _fail(args, FAILED, "failed", f"restore stopped: {exc}", exc.problems)
        except KeyboardInterrupt:
            console.print("restore interrupted: the target holds part of the backup; restore into an empty cluster "
                          "again (or delete the topics first)", soft_wrap=True)
            raise
        if last:
            p = last[0]
            meter.update(p.records, p.records_total, p.records, p.bytes, p.seconds, final=True)
    seconds = max(report["seconds"], 1e-6)
    summary = {"directory": str(directory.absolute()), "target": bootstrap, "records": report["records"],
               "value_bytes": report["value_bytes"], "seconds": report["seconds"],
               "records_per_s": round(report["records"] / seconds),
               "mb_per_s": round(report["value_bytes"] / MB / seconds, 2), "topics_created": report["topics_created"],
               "topics": report["topics"], "next": "rebuild the read models: recallstack replay --projection "
                                                   "pg|graph|cache|sparse (or start the projectors on empty read models)"}
    if args.json:
        emit_json(summary)
    else:
        print_table([{"topic": t, "records": f"{e['records']:,}", "partitions": len(e["partitions"])}
                     for t, e in report["topics"].items()],
                    f"restored {report['records']:,} records into {bootstrap} in {report['seconds']:.1f}s")
        console.print(f"{summary['records_per_s']:,} records/s, {summary['mb_per_s']:.1f} MB/s. Next, rebuild the "
                      "read models from the restored log: `recallstack replay --projection pg`, `... graph`, "
                      "`... cache`, `... sparse` (docs/operations.md)", highlight=False, soft_wrap=True)
    return OK


# ---- digest ---------------------------------------------------------------------------------

async def read_model_digest(name: str, version: int | None) -> dict:
    """The digest of read model `name` (its live version unless `version`), from the
    digest module beside it."""
    import bootstrap

    async with bootstrap.read_model(name) as versions:
        chosen = version if version is not None else await versions.live_version()
        if name == "postgres":
            from projectors import pg_digest

            result = await pg_digest.digest(versions.pool, chosen)
        elif name == "redis":
            from projectors import redis_digest

            result = await redis_digest.digest(versions.client, chosen)
        elif name == "sparse":
            from projectors import sparse_digest

            result = await sparse_digest.digest(versions.root, chosen)
        else:
            from projectors import neo4j_digest

            result = await neo4j_digest.digest(versions.driver, chosen, versions.database)
    return result


def cmd_digest(args) -> int:
    names = list(PROJECTIONS) if args.projection == "all" else [args.projection]
    results = []
    with Activity("computing digests") as activity:
        for name in names:
            activity.update(f"computing the digest of {name}" + (f" v{args.version}" if args.version else ""))
            began = time.monotonic()
            try:
                result = asyncio.run(read_model_digest(name, args.version))
            except LookupError as exc:
                return _fail(args, FAILED, "failed", str(exc))
            result["seconds"] = round(time.monotonic() - began, 2)
            results.append(result)
    if args.json:
        emit_json({"digests": results})
    else:
        print_table([{"projection": r["projection"], "version": r["version"], "digest": r["digest"],
                      "contents": ", ".join(f"{name} {part['rows']:,}" for name, part in sorted(r["parts"].items())),
                      "seconds": r["seconds"]} for r in results], "read-model digests")
    return OK


# ---- arguments ------------------------------------------------------------------------------

def _projection_or_all(value: str) -> str:
    import argparse

    import bootstrap

    if value == "all":
        return value
    try:
        return bootstrap.projection_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or all") from None


def _version(value: str) -> int:
    import argparse

    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--version takes a version number (1, 2, ...), got {value!r}")
    return int(value)


def register(sub, command) -> None:
    """The backup, restore and digest subcommands (`command` is cli.help_text.command)."""
    bootstrap_help = "the Kafka cluster (default $RECALLSTACK_KAFKA_BOOTSTRAP, else 127.0.0.1:9092)"
    backup = command(sub, "backup", "back up the whole event log to a new folder of Avro files", """
        Reads every partition of recallstack.memory.events, recallstack.memory.access and
        recallstack.dlq with read_committed (aborted transactions are not part of the log)
        from the beginning up to the end offsets taken at the start, and writes one Avro
        object container file per partition (a new one every 500,000 records): partition,
        offset, timestamp, key, value bytes and headers of each record, exactly as read
        (values are never decoded). manifest.json lists the topics, each partition's record
        count and first/last offset, and each file's size and SHA-256. The folder appears
        only when complete (written beside it and renamed). Reads run beside the live
        services; progress (records, MB, rate) goes to stderr.
    """, """
        recallstack backup /backups/recallstack-2026-11-28
        recallstack backup ./log-backup --bootstrap 10.0.0.5:9092 --json | jq .records_per_s
    """, """
        0    backed up
        1    DIR exists and is not empty, or a partition made no progress for 60 s
        3    Kafka unreachable
        130  Ctrl-C (nothing is left under DIR)
    """, json_output='{"directory", "records", "bytes", "value_bytes", "seconds", "records_per_s", "mb_per_s", '
                     '"codec", "source", "files", "topics": {topic: {partitions, records}}}')
    backup.add_argument("directory", metavar="DIR", help="a new (or empty) folder for the backup")
    backup.add_argument("--bootstrap", metavar="HOST:PORT", help=bootstrap_help)
    backup.set_defaults(func=cmd_backup)

    restore = command(sub, "restore", "restore a backup's event log into an empty Kafka cluster", """
        First checks the manifest and every file's size and SHA-256: a missing or corrupt
        file is named and nothing is written. Refuses target topics that hold records (each
        named with its end offsets) unless --allow-non-empty. Creates the missing topics
        with the backup's partition counts and configs, then produces each partition's
        records in order into the same partition with the original key, headers and
        timestamp (idempotent producer, acks=all). Kafka gives them new offsets (the source's
        transaction markers took offsets), so the read models are rebuilt afterwards:
        `recallstack replay --projection pg`, `graph`, `cache` and `sparse`, or the projectors of a
        fresh stack project the restored log from the start (docs/operations.md).
    """, """
        recallstack restore /backups/recallstack-2026-11-28
        recallstack restore ./log-backup --verify-only
        recallstack restore ./log-backup --bootstrap 10.0.0.6:9092 --json | jq .records
    """, """
        0    restored (or, with --verify-only, intact)
        1    a file is missing or corrupt, or the target is not empty (nothing written)
        3    Kafka unreachable
        130  Ctrl-C (the target holds part of the backup)
    """, json_output='{"directory", "target", "records", "value_bytes", "seconds", "records_per_s", "mb_per_s", '
                     '"topics_created", "topics": {topic: {records, partitions: [...]}}}')
    restore.add_argument("directory", metavar="DIR", help="a folder `recallstack backup` wrote")
    restore.add_argument("--bootstrap", metavar="HOST:PORT", help=bootstrap_help)
    restore.add_argument("--verify-only", action="store_true", help="check the manifest and checksums, write nothing")
    restore.add_argument("--allow-non-empty", action="store_true",
                         help="append to topics that hold records already (their records stay before the backup's)")
    restore.set_defaults(func=cmd_restore)

    digest = command(sub, "digest", "a content digest (SHA-256) of each read model, to compare two of them", """
        Hashes a read model's content in a canonical order, leaving out what legitimately
        differs between two builds of the same log (log partitions and offsets, projection
        positions, migration times): the same log gives the same digest, in this cluster or
        after a backup, a restore into another one and a replay. Postgres: every table of the
        version's schema but projection_offsets and schema_migrations, without
        memory_history.log_partition/log_offset and generated columns. Redis: every key of
        the version but the watermarks, without the documents' position fields (_t _p _o _ct
        _cp _co). Neo4j: User, Memory, Entity and AppliedEvent nodes and their relationships,
        without ProjectionOffset nodes. Sparse: every memory document's stored fields
        (tombstones apart), without the position documents. The live version by default (it
        may change while being hashed: digest a replayed version, or a quiet stack).
    """, """
        recallstack digest
        recallstack digest --projection pg --version 3 --json | jq -r '.digests[0].digest'
    """, """
        0    computed
        1    no such version
        2    unknown projection
        3    Postgres, Neo4j or Redis unreachable
    """, json_output='{"digests": [{projection, version, digest, parts: {name: {rows, digest}}, excluded, seconds}]}')
    digest.add_argument("--projection", type=_projection_or_all, default="all", metavar="NAME",
                        help="postgres|neo4j|redis|sparse (or pg|graph|cache|bm25), or all (default)")
    digest.add_argument("--version", type=_version, metavar="N", help="this version (default: the live one)")
    digest.set_defaults(func=cmd_digest)
