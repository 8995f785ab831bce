"""What a read `as_of` a past moment costs, at 1k, 10k and 100k events per user, against real Kafka.

    python bench/as_of_bench.py [--sizes 1000,10000,100000] [--others 0] [--json]

One user's events (90 % MemoryCreated with LoCoMo turns and 384-dimension unit vectors, 8 %
MemoryUpdated with a new text and vector, 2 % MemoryDeleted), sealed with a data key of a key store
schema of the bench's own, are written to a one-partition topic of its own (`--others N`: N other
users' events between two of the user's, which the read skips by key). For each size the as_of
position is the token of the size-th event. Measured, each several times:
- rebuild: reading the user's events up to the position (adapters/user_log.UserLog, from the
  partition's start: the user's first event) and applying them (projectors/past_state.PastState);
- rank: a hybrid search over the rebuilt state (domain/past_ranking: dense, BM25, temporal, RRF);
- total: both, what a search `as_of` costs when its state is not in the LRU;
- rank_cached_state: a search on a state the LRU holds (its vectors already stacked).
Medians and p99 (nearest rank: with few repetitions, p99 is the slowest run). The topic and the key
store schema are dropped afterwards. Results: bench/results/as_of.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from locomo_texts import turns
from machine_info import machine
from percentiles import pct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.kafka_log import EventPublisher  # noqa: E402
from adapters.key_store import Keyring, KeyStore  # noqa: E402
from adapters.user_log import UserLog  # noqa: E402
from domain import as_of, past_ranking, sealing  # noqa: E402
from domain.events import MemoryCreated, MemoryDeleted, MemoryUpdated  # noqa: E402
from projectors.past_state import PastState  # noqa: E402
from settings import Settings  # noqa: E402

REPEATS = {1_000: 20, 10_000: 7, 100_000: 3}


def corpus(user: str, events: int, others: int, rng: np.random.Generator):
    """The user's events with `others` other users' events after each, in batches of 1,000 records."""
    texts = turns(5000)
    live: list[str] = []

    def unit() -> tuple[float, ...]:
        v = rng.normal(size=384).astype(np.float32)
        return tuple((v / np.linalg.norm(v)).tolist())

    batch = []
    for n in range(events):
        roll = rng.random()
        if roll < 0.90 or len(live) < 100:
            memory_id = str(uuid.uuid4())
            live.append(memory_id)
            batch.append(MemoryCreated(user_id=user, actor="worker:bench", memory_id=memory_id, text=texts[n % 5000],
                                       embedding=unit(), embedding_model="all-MiniLM-L6-v2",
                                       happened_at=datetime.now(timezone.utc)))
        elif roll < 0.98:
            batch.append(MemoryUpdated(user_id=user, actor="worker:bench", memory_id=live[int(rng.integers(len(live)))],
                                       text=texts[(n * 7) % 5000], embedding=unit(),
                                       embedding_model="all-MiniLM-L6-v2"))
        else:
            batch.append(MemoryDeleted(user_id=user, actor="worker:bench",
                                       memory_id=live.pop(int(rng.integers(len(live))))))
        for k in range(others):
            batch.append(MemoryCreated(user_id=f"{user}-other-{k}", actor="worker:bench", memory_id=str(uuid.uuid4()),
                                       text=texts[(n + k) % 5000], embedding=unit(),
                                       embedding_model="all-MiniLM-L6-v2", happened_at=datetime.now(timezone.utc)))
        if len(batch) >= 1000 or n == events - 1:
            yield n + 1, batch
            batch = []


def summary(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values), 1), "p99_ms": round(pct(values, 99), 1), "runs": len(values)}


async def run(sizes: list[int], others: int) -> dict:
    cfg = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    topic, schema, user = f"bench-asof-{run_id}", f"keystore_bench_{run_id}", f"bench-asof-{run_id}"
    keyring = Keyring(KeyStore(cfg.pg_dsn, sealing.new_key_material(), schema=schema))
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    publisher = EventPublisher(cfg.kafka_bootstrap, topic=topic, timeout_s=60, keys=keyring,
                               transactional_id=f"bench-asof-{run_id}")
    log = UserLog(cfg.kafka_bootstrap, topic, keyring, timeout_s=600)
    rng = np.random.default_rng(7)
    tokens: dict[int, str] = {}
    results: dict = {"machine": machine(), "others_per_event": others, "sizes": {}}
    try:
        began = time.perf_counter()
        for written, batch in corpus(user, max(sizes), others, rng):
            token = await publisher.publish(batch)
            for size in sizes:
                if size == written:
                    tokens[size] = token.encode()  # the position just after the size-th event of the user
        results["write_seconds"] = round(time.perf_counter() - began, 1)
        now = datetime.now(timezone.utc)
        query = np.asarray(rng.normal(size=384), dtype=np.float32)
        for size in sizes:
            moment = as_of.parse(tokens[size], topic, 0, 1, now)
            rebuilds, ranks, warm, totals, read = [], [], [], [], None
            for _ in range(REPEATS.get(size, 5)):
                t0 = time.perf_counter()
                state = PastState()
                read = await log.read(user, moment, state.apply, await log.destroyed_versions(user))
                t1 = time.perf_counter()
                rows = [r for r in state.memories.values() if r["state"] == "active"]
                ask = past_ranking.Ask("what did Caroline say about the adoption agency last week", query, 10, now)
                vectors = past_ranking.Vectors.of(rows)
                past_ranking.ranked(ask, rows, past_ranking.Tuning(), vectors)
                t2 = time.perf_counter()
                past_ranking.ranked(ask, rows, past_ranking.Tuning(), vectors)  # the state in the LRU
                warm.append((time.perf_counter() - t2) * 1000)
                rebuilds.append((t1 - t0) * 1000)
                ranks.append((t2 - t1) * 1000)
                totals.append((t2 - t0) * 1000)
            results["sizes"][str(size)] = {
                "user_events": read.events, "records_scanned": read.scanned, "memories": len(rows),
                "rebuild": summary(rebuilds), "rank": summary(ranks), "rank_cached_state": summary(warm),
                "total": summary(totals),
                "events_per_second": round(read.events / (statistics.median(rebuilds) / 1000))}
    finally:
        await log.close()
        await publisher.stop()
        await admin.delete_topics([topic])
        await admin.close()
        pool = await keyring.store._pool()
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await keyring.store.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--others", type=int, default=0, help="other users' events after each of the user's")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = asyncio.run(run(sizes, args.others))
    out = Path(__file__).parent / "results" / ("as_of.json" if args.others == 0 else f"as_of-others{args.others}.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    m = results["machine"]
    print(f"machine: {m.get('cpu')} ({m['cores']} cores, {m.get('ram_gib')} GiB); load {m['loadavg_1m_at_start']:.2f}; "
          f"others per event: {args.others}; corpus written in {results['write_seconds']} s")
    print(f"{'events':>8} {'scanned':>8} {'memories':>8} {'rebuild med/p99 ms':>20} {'rank med/p99 ms':>17} "
          f"{'total med/p99 ms':>18} {'events/s':>9} {'LRU hit med/p99 ms':>19}")
    for size, r in results["sizes"].items():
        print(f"{r['user_events']:>8} {r['records_scanned']:>8} {r['memories']:>8} "
              f"{r['rebuild']['median_ms']:>9} / {r['rebuild']['p99_ms']:<8} {r['rank']['median_ms']:>7} / "
              f"{r['rank']['p99_ms']:<7} {r['total']['median_ms']:>8} / {r['total']['p99_ms']:<7} "
              f"{r['events_per_second']:>9} {r['rank_cached_state']['median_ms']:>8} / "
              f"{r['rank_cached_state']['p99_ms']:<8}")
    print(f"(runs per size: {', '.join(str(r['rebuild']['runs']) for r in results['sizes'].values())}; "
          f"p99 is the slowest run with so few) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
