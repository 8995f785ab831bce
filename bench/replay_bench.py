"""Replay speed of each read model, in events/s, against the real servers.

    python bench/replay_bench.py [--events 100000,1000000] [--projections postgres,redis,neo4j] [--json]

A corpus of N events is written once to a topic of its own (`recallstack.bench.replay-<N>`,
12 partitions; reused when it is already there): 90 % MemoryCreated (LoCoMo turns,
384-dimension unit vectors, 200 users), 8 % MemoryUpdated (new text and vector), 2 %
MemoryDeleted. Each read model then replays it the way `recallstack replay` does (a new
version beside the live one, from offset 0, deferred indexes built at the end) without
switching readers; the version is dropped afterwards. Reported per read model and size:
apply rate (events/s while reading and applying), index build time, and the overall rate.
Results: bench/results/replay.json and replay.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from event_corpus import event_log
from machine_info import machine

import bootstrap
from adapters.kafka_log import EventPublisher
from projectors.replay import replay
from settings import EVENTS_PARTITIONS

# bench/suite.py points RECALLSTACK_BENCH_OUT at the run's folder.
RESULTS = Path(os.environ.get("RECALLSTACK_BENCH_OUT") or Path(__file__).parent / "results")


def topic_for(events: int) -> str:
    return f"recallstack.bench.replay-{events}"


async def records_in(bootstrap_servers: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, isolation_level="read_committed")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(EVENTS_PARTITIONS)]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def write_corpus(bootstrap_servers: str, events: int) -> str:
    topic = topic_for(events)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            if await records_in(bootstrap_servers, topic) >= events:
                print(f"corpus {topic}: already written", file=sys.stderr)
                return topic
            await admin.delete_topics([topic])
            await asyncio.sleep(2)
        await admin.create_topics([NewTopic(topic, EVENTS_PARTITIONS, 1)])
    finally:
        await admin.close()
    publisher = EventPublisher(bootstrap_servers, topic=topic, timeout_s=60)
    await publisher.start()
    began, written = time.monotonic(), 0
    try:
        for batch, _ in event_log(events, "bench-replay"):
            written += len(batch)
            await publisher.publish(batch)
            rate = written / (time.monotonic() - began)
            print(f"\rcorpus {topic}: {written:,}/{events:,} events ({rate:,.0f}/s)", end="", file=sys.stderr)
    finally:
        await publisher.stop()
    print(file=sys.stderr)
    return topic


async def replay_one(name: str, topic: str, events: int) -> dict:
    cfg = bootstrap.settings()
    last = [0.0]

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase == "apply" and time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            print(f"\r  {name}: {done:,}/{total:,} log records", end="", file=sys.stderr)
        elif phase == "index":
            print(f"\r  {name}: building index {done}            ", end="", file=sys.stderr)

    async with bootstrap.read_model(name) as versions:
        report = await replay(versions, cfg.kafka_bootstrap, topic=topic, on_progress=progress, switch=False)
    print(file=sys.stderr)
    return {"projection": name, "events": events, "applied": report.events,
            "apply_s": round(report.apply_seconds, 1), "apply_events_per_s": round(report.events_per_second),
            "index_s": round(report.index_seconds, 1), "total_s": round(report.apply_seconds + report.index_seconds, 1),
            "overall_events_per_s": round(report.events / max(report.apply_seconds + report.index_seconds, 1e-9))}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    sizes = sorted({r["events"] for r in rows})
    names = list(dict.fromkeys(r["projection"] for r in rows))
    width = 0.8 / max(1, len(sizes))
    for i, size in enumerate(sizes):
        values = [next((r["apply_events_per_s"] for r in rows if r["projection"] == n and r["events"] == size), 0)
                  for n in names]
        ax.bar([x + i * width for x in range(len(names))], values, width, label=f"{size:,} events")
    ax.axhline(5000, color="grey", linestyle="--", linewidth=1, label="Postgres target 5,000/s")
    ax.set_xticks([x + width * (len(sizes) - 1) / 2 for x in range(len(names))], names)
    ax.set_ylabel("events/s while applying")
    ax.set_title("Replay speed per read model")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", default="100000,1000000", help="corpus sizes, comma-separated")
    ap.add_argument("--projections", default="postgres,redis,neo4j")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = bootstrap.settings()
    rows = []
    for events in (int(n) for n in args.events.split(",")):
        topic = await write_corpus(cfg.kafka_bootstrap, events)
        for name in args.projections.split(","):
            print(f"replaying {events:,} events into {name}...", file=sys.stderr)
            rows.append(await replay_one(bootstrap.projection_name(name), topic, events))
    result = {"machine": machine(), "corpus": "90% creates / 8% updates / 2% deletes, 384-d vectors, 200 users",
              "replay": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(result, indent=2))
    plot(rows, RESULTS / "replay.png")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(f"corpus: {result['corpus']}")
    for r in rows:
        print(f"  {r['projection']:<9} {r['events']:>9,} events: apply {r['apply_events_per_s']:>7,}/s "
              f"({r['apply_s']} s), indexes {r['index_s']} s, overall {r['overall_events_per_s']:,}/s")
    print(f"plot: {RESULTS / 'replay.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
