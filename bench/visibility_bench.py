"""Event-to-visible latency of each read model at a sustained write rate.

    python bench/visibility_bench.py [--rate 100] [--seconds 60] [--json]

Needs the stack with its projectors running (`recallstack up --detach`). Appends
MemoryCreated events (LoCoMo turns, pre-computed 384-d vectors: the embedder is not what
is measured) to the live event topic on a fixed schedule of `rate` per second, one event
per append, each its own Kafka transaction as the command API does. Watchers poll every
read model's applied positions (Postgres projection_offsets, Redis watermarks, Neo4j
ProjectionOffset nodes: exactly what read-your-writes waits on) every 10 ms. Latency: from
the start of the append to the first poll that shows the event applied (append + projector
+ read model commit + up to one polling interval). Prints p50/p99 per read model and plots
latency over time in bench/results/visibility.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from locomo_texts import turns
from machine_info import machine
from percentiles import pct

import bootstrap
from adapters.kafka_log import EventPublisher
from domain.events import MemoryCreated, utcnow
from settings import EVENTS_TOPIC

# bench/suite.py points RECALLSTACK_BENCH_OUT at the run's folder.
RESULTS = Path(os.environ.get("RECALLSTACK_BENCH_OUT") or Path(__file__).parent / "results")
POLL_S = 0.01


async def watch(name: str, pending: dict, seen: dict, stopped_at: list[float]) -> None:
    """Marks each pending (partition, offset) with the time it became visible in `name`;
    what is still pending 30 s after the last append counts as not visible."""
    async with bootstrap.read_model(name) as versions:
        projection = versions.projection()
        while not stopped_at or (pending and time.perf_counter() - stopped_at[0] < 30):
            positions = await projection.positions(EVENTS_TOPIC)
            now = time.perf_counter()
            for key, began in list(pending.items()):
                if positions.get(key[0], -1) >= key[1]:
                    seen[key] = now - began
                    del pending[key]
            await asyncio.sleep(POLL_S)


async def warm_up(publisher, bootstrap_servers: str, names: list[str], rate: float, seconds: float, run: str) -> None:
    from projectors.lag import projector_lag

    rng = np.random.default_rng(9)
    began, appends = time.perf_counter(), []
    for i in range(int(rate * seconds)):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        v = rng.normal(size=384).astype(np.float32)
        appends.append(asyncio.create_task(publisher.publish([MemoryCreated(
            user_id=f"bench-warmup-{run}", actor="worker:bench", memory_id=str(uuid.uuid4()), text=f"warm-up {i}",
            embedding=tuple((v / np.linalg.norm(v)).tolist()), embedding_model="all-MiniLM-L6-v2",
            happened_at=utcnow())])))
    await asyncio.gather(*appends)
    deadline = time.monotonic() + 120
    for name in names:  # measure from a standing start: every projector caught up
        while (await projector_lag(bootstrap_servers, name))["behind"] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    print(f"warmed up for {seconds:.0f} s", file=sys.stderr)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100.0, help="appends per second")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--projections", default="postgres,redis,neo4j")
    ap.add_argument("--warmup", type=float, default=20.0,
                    help="seconds of the same load first, not measured (JIT of Kafka and Neo4j, pools)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = bootstrap.settings()
    names = [bootstrap.projection_name(n) for n in args.projections.split(",")]
    publisher = EventPublisher(cfg.kafka_bootstrap, timeout_s=10)
    await publisher.start()
    rng = np.random.default_rng(3)
    texts = turns(2000)
    total = int(args.rate * args.seconds)
    pending = {n: {} for n in names}
    seen: dict[str, dict] = {n: {} for n in names}
    started_at: dict[tuple[int, int], float] = {}
    append_ms: list[float] = []
    stopped_at: list[float] = []
    run = uuid.uuid4().hex[:8]
    await warm_up(publisher, cfg.kafka_bootstrap, names, args.rate, args.warmup, run)
    watchers = [asyncio.create_task(watch(n, pending[n], seen[n], stopped_at)) for n in names]
    await asyncio.sleep(2)  # watchers connected

    async def one(i: int) -> None:
        v = rng.normal(size=384).astype(np.float32)
        event = MemoryCreated(user_id=f"bench-visible-{run}-{i % 50}", actor="worker:bench", memory_id=str(uuid.uuid4()),
                              text=texts[i % len(texts)], embedding=tuple((v / np.linalg.norm(v)).tolist()),
                              embedding_model="all-MiniLM-L6-v2", happened_at=utcnow())
        began = time.perf_counter()
        token = await publisher.publish([event])
        append_ms.append((time.perf_counter() - began) * 1000)
        for key in token.offsets:
            started_at[key] = began
            for n in names:
                pending[n][key] = began

    tasks = []
    t0 = time.perf_counter()
    try:
        for i in range(total):
            delay = t0 + i / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
            if i % int(args.rate) == 0:
                print(f"\r{i:,}/{total:,} events appended", end="", file=sys.stderr)
        await asyncio.gather(*tasks)
    finally:
        achieved = total / (time.perf_counter() - t0)
        stopped_at.append(time.perf_counter())
        await asyncio.gather(*watchers)
        await publisher.stop()
    print(file=sys.stderr)

    rows = []
    for n in names:
        values = [s * 1000 for s in seen[n].values()]
        rows.append({"projection": n, "visible": len(values), "not_visible_after_30s": total - len(values),
                     "p50_ms": round(statistics.median(values), 1) if values else None,
                     "p99_ms": round(pct(values, 99), 1) if values else None,
                     "max_ms": round(max(values), 1) if values else None})
    result = {"machine": machine(), "rate_per_s": args.rate, "achieved_rate_per_s": round(achieved, 1),
              "events": total, "append_ms": {"p50": round(statistics.median(append_ms), 1),
                                             "p99": round(pct(append_ms, 99), 1)},
              "poll_interval_ms": POLL_S * 1000, "visibility": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "visibility.json").write_text(json.dumps(result, indent=2))
    plot(names, seen, started_at, t0, RESULTS / "visibility.png", args.rate)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print(f"{total:,} events at {args.rate:.0f}/s (achieved {achieved:.1f}/s), append p50 "
          f"{result['append_ms']['p50']} ms p99 {result['append_ms']['p99']} ms; poll every {POLL_S * 1000:.0f} ms")
    for r in rows:
        print(f"  {r['projection']:<9} event-to-visible p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  max {r['max_ms']} ms"
              f"  (not visible after 30 s: {r['not_visible_after_30s']})")
    print(f"plot: {RESULTS / 'visibility.png'}")
    return 0


def plot(names, seen, started_at, t0, path: Path, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for n in names:
        points = sorted((started_at[k] - t0, v * 1000) for k, v in seen[n].items() if k in started_at)
        ax.plot([p[0] for p in points], [p[1] for p in points], ".", markersize=2, label=n)
    ax.axhline(250, color="grey", linestyle="--", linewidth=1, label="p99 target 250 ms")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("event-to-visible (ms)")
    ax.set_yscale("log")
    ax.set_title(f"Event-to-visible latency at {rate:.0f} writes/s")
    ax.legend(markerscale=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
