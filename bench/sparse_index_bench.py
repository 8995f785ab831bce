"""The sparse index as built (projectors/sparse_projector.py) and read (adapters/sparse_index.py),
in-process: build rate, index size, search latency.

    python bench/sparse_index_bench.py [--sizes 10000,100000] [--spread 100000x100] [--queries 500] [--json]

For each corpus (N memories of LoCoMo turns, bench/locomo_texts.turns; "NxU": N over U users, memory
g to user g % U), the MemoryCreated events (with the entities the command API extracts and
puts on them, extracted before the clock starts) are applied by a SparseProjector twice: as the live
projector applies them (following the live version, 500 events a batch, one commit each) and
as a replay does (a pinned version, 2,000 a batch, the replay writer's threads and heap); each
rate is events/s of apply_batch alone (no Kafka). Then the LoCoMo questions are asked as
query_api/search.py asks them (keywords() of the text, names(), depth 30; question i to user
i % U): one untimed pass, then a timed one; p50/p99 of SparseIndex.search and of
graph_names, the mean hits, and the size of the version on disk after its merges.
Results: bench/results/sparse_index.json; the table on stdout.
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters import sparse_layout  # noqa: E402
from adapters.sparse_index import SparseIndex  # noqa: E402
from bench.locomo_texts import questions, turns  # noqa: E402
from bench.machine_info import machine  # noqa: E402
from bench.percentiles import pct  # noqa: E402
from domain import query_terms  # noqa: E402
from domain.entities import extract  # noqa: E402
from domain.events import MemoryCreated  # noqa: E402
from projectors.applied import Applied  # noqa: E402
from projectors.sparse_versions import SparseVersions  # noqa: E402

TOPIC = "bench"
DEPTH = 30
RESULTS = Path(__file__).resolve().parent / "results"


def events(size: int, users: int) -> list[MemoryCreated]:
    texts = turns(size)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    found = {text: extract(text) for text in set(texts)}  # as application/command_handlers.add_memories does
    return [MemoryCreated(user_id=f"bench-{g % users}", actor="bench", memory_id=str(uuid.uuid4()), text=text,
                          embedding=(0.0,), embedding_model="bench", happened_at=start + timedelta(minutes=g),
                          entities=found[text][0], relations=found[text][1])
            for g, text in enumerate(texts)]


async def build(root: Path, made: list[MemoryCreated], batch: int, pinned: bool) -> float:
    versions = SparseVersions(root)
    live = await versions.live_version()
    projector = versions.projection(live if pinned else None)
    began = time.perf_counter()
    for start in range(0, len(made), batch):
        await projector.apply_batch(TOPIC, [Applied(0, start + n, e) for n, e in enumerate(made[start:start + batch])])
    seconds = time.perf_counter() - began
    projector.close()  # merges finish
    return len(made) / seconds


def timed(calls) -> dict:
    out = []
    for call in calls:
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": round(pct(out, 50), 3), "p99_ms": round(pct(out, 99), 3), "n": len(out)}


def corpus_run(size: int, users: int, asked: list[str]) -> dict:
    made = events(size, users)
    row: dict = {"memories": size, "users": users}
    with tempfile.TemporaryDirectory(prefix="sparse-bench-") as tmp:
        live_root, replay_root = Path(tmp) / "live", Path(tmp) / "replay"
        row["live_events_per_s"] = round(asyncio.run(build(live_root, made, 500, pinned=False)))
        row["replay_events_per_s"] = round(asyncio.run(build(replay_root, made, 2000, pinned=True)))
        shutil.rmtree(live_root)
        version = sparse_layout.version_dir(replay_root, 1)
        row["size_mb"] = round(sum(f.stat().st_size for f in version.iterdir()) / 1e6, 1)
        reader = SparseIndex(replay_root)
        plans = [(f"bench-{i % users}", query_terms.keywords(q), query_terms.names(q)) for i, q in enumerate(asked)]
        searches = [lambda p=p: reader.search(p[0], p[1], p[2], {}, False, None, DEPTH) for p in plans]
        hits = [len(call()) for call in searches]  # warm
        row["search"] = timed(searches)
        row["search"]["mean_hits"] = round(sum(hits) / len(hits), 1)
        row["graph_names"] = timed([lambda p=p: reader.graph_names(p[0], p[2]) for p in plans if p[2]])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--spread", default="100000x100", help="NxU corpora over U users ('' for none)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    corpora = [(int(s), 1) for s in args.sizes.split(",") if s]
    corpora += [(int(n), int(u)) for n, u in (c.split("x") for c in args.spread.split(",") if c)]
    asked = questions()[:args.queries]
    rows = [corpus_run(size, users, asked) for size, users in corpora]
    result = {"machine": machine(), "depth": DEPTH, "queries": len(asked), "corpora": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sparse_index.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'memories':>9} {'users':>5} {'live ev/s':>9} {'replay ev/s':>11} {'MB':>6} "
          f"{'search p50':>10} {'p99':>7} {'hits':>5} {'names p50':>12} {'p99':>6}")
    for r in rows:
        print(f"{r['memories']:>9,} {r['users']:>5} {r['live_events_per_s']:>9,} {r['replay_events_per_s']:>11,} "
              f"{r['size_mb']:>6} {r['search']['p50_ms']:>10} {r['search']['p99_ms']:>7} "
              f"{r['search']['mean_hits']:>5} {r['graph_names']['p50_ms']:>12} {r['graph_names']['p99_ms']:>6}")


if __name__ == "__main__":
    main()
