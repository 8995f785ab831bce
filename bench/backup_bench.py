"""Backup and restore throughput of the whole event log, in records/s and MB/s.

    python bench/backup_bench.py [--events 100000] [--json]

Self-contained: two throwaway Kafka brokers (infra.kafka_server.scratch_broker, the stack's
jars and config) under a temporary folder, never the stack's topics. The source gets the
recallstack topics and a corpus like the replay benchmark's: N events in transactions of
1,000 (90 % MemoryCreated with LoCoMo texts and 384-dimension vectors, 8 % MemoryUpdated,
2 % MemoryDeleted, 200 users) plus N/10 access events. Then, each timed:
`log_backup.backup` of the source (read_committed, Avro files), `log_backup.verify` (every
SHA-256), `log_backup.restore` into the empty second broker. MB/s counts key and value
bytes (what the log holds); the files' size is reported beside. Results:
bench/results/backup.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from event_corpus import event_log

from machine_info import machine

from adapters import log_backup
from adapters.kafka_log import EventPublisher, ensure_topics
from infra.kafka_server import scratch_broker
from settings import ACCESS_TOPIC

RESULTS = Path(__file__).parent / "results"
MB = 1024 * 1024


async def write_corpus(bootstrap: str, events: int) -> dict:
    await ensure_topics(bootstrap)
    publisher = EventPublisher(bootstrap, timeout_s=60, transactional_id=f"bench-backup-{uuid.uuid4().hex[:6]}")
    access = EventPublisher(bootstrap, topic=ACCESS_TOPIC, timeout_s=60,
                            transactional_id=f"bench-backup-access-{uuid.uuid4().hex[:6]}")
    began, written = time.monotonic(), 0
    try:
        for batch, reads in event_log(events, "bench-backup", access_every=10):
            written += len(batch)
            await publisher.publish(batch)
            await access.publish(reads)
            rate = written / (time.monotonic() - began)
            print(f"\rcorpus: {written:,}/{events:,} events ({rate:,.0f}/s)", end="", file=sys.stderr)
    finally:
        await publisher.stop()
        await access.stop()
    print(file=sys.stderr)
    return {"events": events, "accesses": events // 10, "seconds": round(time.monotonic() - began, 1)}


def _meter(name: str):
    last = [0.0]

    def show(p) -> None:
        if time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            print(f"\r  {name}: {p.records:,} records, {p.bytes / MB:,.0f} MB, "
                  f"{p.records / max(p.seconds, 1e-6):,.0f} records/s", end="", file=sys.stderr)
    return show


def run(events: int, folder: Path) -> dict:
    # The brokers start outside the event loop (their readiness probe runs one of its own).
    with scratch_broker(folder / "source", heap="768m") as source, scratch_broker(folder / "target", heap="768m") \
            as target:
        corpus = asyncio.run(write_corpus(source, events))
        directory = folder / "backup"
        began = time.monotonic()
        manifest = asyncio.run(log_backup.backup(source, directory, on_progress=_meter("backup")))
        backup_s = time.monotonic() - began
        print(file=sys.stderr)
        began = time.monotonic()
        log_backup.verify(directory)
        verify_s = time.monotonic() - began
        began = time.monotonic()
        report = asyncio.run(log_backup.restore(target, directory, manifest, on_progress=_meter("restore")))
        restore_s = time.monotonic() - began
        print(file=sys.stderr)
    records, data = manifest["records"], manifest["value_bytes"]
    return {
        "machine": machine(), "corpus": corpus, "records": records, "log_mb": round(data / MB, 1),
        "files": len(manifest["files"]), "files_mb": round(manifest["bytes"] / MB, 1), "codec": manifest["codec"],
        "backup": {"seconds": round(backup_s, 2), "records_per_s": round(records / backup_s),
                   "mb_per_s": round(data / MB / backup_s, 1)},
        "verify": {"seconds": round(verify_s, 2), "mb_per_s": round(manifest["bytes"] / MB / verify_s, 1)},
        "restore": {"seconds": round(restore_s, 2), "records_per_s": round(report["records"] / restore_s),
                    "mb_per_s": round(data / MB / restore_s, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="recallstack-backup-bench-"))
    try:
        result = run(args.events, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backup.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    print(f"machine: {result['machine']}")
    print(f"log: {result['records']:,} records ({result['corpus']['events']:,} events + "
          f"{result['corpus']['accesses']:,} accesses), {result['log_mb']:,} MB of keys and values; "
          f"backup {result['files']} files, {result['files_mb']:,} MB ({result['codec']})")
    for step in ("backup", "restore"):
        r = result[step]
        print(f"{step:8} {r['seconds']:7.1f} s  {r['records_per_s']:>8,} records/s  {r['mb_per_s']:6.1f} MB/s")
    verify = result["verify"]
    print(f"verify   {verify['seconds']:7.1f} s  (SHA-256 of every file, {verify['mb_per_s']} MB/s)")


if __name__ == "__main__":
    main()
