"""Write-path benchmark against a running stack (`recallstack up`).

    python bench/write_bench.py [--quick] [--json] [--base-url http://127.0.0.1:8080]

1. Single add acknowledgement latency (202, embedding included) with 1, 10 and 50
   concurrent clients, each sending its next add as soon as the last is acknowledged
   (closed loop: shows the throughput ceiling), then 10 clients at a fixed 20 adds/s
   together (open loop: the latency an agent sees below the ceiling). Median and p99, and
   the CPU each stack process spent per add (bench/cpu_accounting.py), sampled until three
   seconds after the last acknowledgement so the projections of the adds are counted.
2. Batch ingest throughput (POST /v1/memories/batch, 500 per call) in memories/s, with the
   split: the embedder alone (in this process, same texts, same batch size) and the Kafka
   append alone (EventPublisher with pre-computed vectors), so it shows which one limits.
Texts are LoCoMo dialogue turns. Prints the machine and the corpus sizes.
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

import cpu_accounting
import httpx
from api_key import api_headers
from locomo_texts import turns
from machine_info import machine
from percentiles import pct
from stack_processes import stack_processes

SETTLE_S = 3.0  # after the last acknowledgement: the projectors and workers apply what was added


async def single_adds_with_cpu(base_url: str, texts: list[str], clients: int) -> dict:
    """single_adds, with the CPU per add of each stack process (their projections included)."""
    import bootstrap

    cfg = bootstrap.settings()
    roots = stack_processes(cfg.home, cfg)
    before, began = cpu_accounting.read_sample(roots), time.perf_counter()
    row = await single_adds(base_url, texts, clients)
    await asyncio.sleep(SETTLE_S)
    cpu = cpu_accounting.usage(before, cpu_accounting.read_sample(roots), time.perf_counter() - began,
                               row["requests"], cpu_accounting.CLK_TCK)
    row["cpu_ms_per_add"] = cpu["ms_per_search"]  # per request: here an add
    row["cpu_ms_per_add_total"] = cpu["total_ms_per_search"]
    return row


async def single_adds(base_url: str, texts: list[str], clients: int) -> dict:
    latencies: list[float] = []
    shed: dict[str, int] = {}  # 429/503 answers (load shedding): counted, not retried, not in the latencies
    queue = list(texts)
    user = f"bench-{uuid.uuid4().hex[:8]}"

    async def client_loop(client: httpx.AsyncClient, n: int):
        while queue:
            text = queue.pop()
            began = time.perf_counter()
            answer = await client.post("/v1/memories", json={"text": text, "user_id": f"{user}-{n}"})
            if answer.status_code in (429, 503):
                shed[str(answer.status_code)] = shed.get(str(answer.status_code), 0) + 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            answer.raise_for_status()

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(headers=api_headers(), base_url=base_url, timeout=60, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(client_loop(client, n) for n in range(clients)))
        elapsed = time.perf_counter() - began
    if not latencies:
        raise RuntimeError(f"{clients} clients: no add succeeded ({len(texts)} sent, refused: {shed}); is the command API up?")
    return {"clients": clients, "requests": len(latencies), "median_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(pct(latencies, 99), 1), "throughput_per_s": round(len(latencies) / elapsed, 1),
            "errors": shed, "error_pct": round(100 * sum(shed.values()) / len(texts), 1)}


async def paced_adds(base_url: str, texts: list[str], clients: int, rate: float) -> dict:
    """Open loop: `clients` clients together send `rate` adds/s on a fixed schedule, so the
    latency is not inflated by queueing behind the benchmark's own backlog."""
    latencies: list[float] = []
    user = f"bench-{uuid.uuid4().hex[:8]}"
    interval = clients / rate

    async def client_loop(client: httpx.AsyncClient, n: int, mine: list[str]):
        start = time.perf_counter() + n * interval / clients
        for i, text in enumerate(mine):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            began = time.perf_counter()
            (await client.post("/v1/memories", json={"text": text, "user_id": f"{user}-{n}"})).raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)

    async with httpx.AsyncClient(headers=api_headers(), base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*(client_loop(client, n, texts[n::clients]) for n in range(clients)))
    return {"clients": clients, "rate_per_s": rate, "requests": len(latencies),
            "median_ms": round(statistics.median(latencies), 1), "p99_ms": round(pct(latencies, 99), 1)}


async def batch_ingest(base_url: str, texts: list[str], size: int) -> dict:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(headers=api_headers(), base_url=base_url, timeout=300) as client:
        began = time.perf_counter()
        for start in range(0, len(texts), size):
            chunk = [{"text": t, "user_id": user} for t in texts[start:start + size]]
            (await client.post("/v1/memories/batch", json={"memories": chunk})).raise_for_status()
            print(f"\rbatch ingest {min(start + size, len(texts))}/{len(texts)}", end="", file=sys.stderr)
        elapsed = time.perf_counter() - began
    print(file=sys.stderr)
    return {"memories": len(texts), "batch_size": size, "memories_per_s": round(len(texts) / elapsed, 1)}


def embedder_alone(texts: list[str], size: int) -> dict:
    import bootstrap

    emb = bootstrap.embedder(bootstrap.settings())
    emb.embed(texts[:size])  # warm up
    began = time.perf_counter()
    for start in range(0, len(texts), size):
        emb.embed(texts[start:start + size])
    return {"memories_per_s": round(len(texts) / (time.perf_counter() - began), 1)}


async def kafka_alone(texts: list[str], size: int) -> dict:
    import bootstrap
    from adapters.kafka_log import EventPublisher
    from domain.events import MemoryCreated, utcnow

    cfg = bootstrap.settings()
    publisher = EventPublisher(cfg.kafka_bootstrap, timeout_s=30)
    await publisher.start()
    vector = tuple([0.05] * 384)
    user = f"bench-kafka-{uuid.uuid4().hex[:8]}"
    try:
        began = time.perf_counter()
        for start in range(0, len(texts), size):
            now = utcnow()
            await publisher.publish([MemoryCreated(user_id=user, actor="worker:bench", memory_id=str(uuid.uuid4()),
                                                   text=t, embedding=vector, embedding_model="bench", happened_at=now)
                                     for t in texts[start:start + size]])
        return {"memories_per_s": round(len(texts) / (time.perf_counter() - began), 1)}
    finally:
        await publisher.stop()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--quick", action="store_true", help="fewer requests (a minute instead of several)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    per_level = 100 if args.quick else 400
    batch_total = 2_000 if args.quick else 10_000
    result = {"machine": machine(),
              "single_add": [], "corpus": {"single_adds_per_level": per_level, "batch_memories": batch_total}}
    print("warming up (JIT of Kafka, connection pools)...", file=sys.stderr)
    await single_adds(args.base_url, turns(60), 4)
    for clients in (1, 10, 50):
        print(f"single adds, {clients} clients...", file=sys.stderr)
        result["single_add"].append(await single_adds_with_cpu(args.base_url, turns(per_level), clients))
    print("paced adds, 10 clients at 20/s...", file=sys.stderr)
    result["paced_add"] = await paced_adds(args.base_url, turns(per_level * 2), 10, 20.0)
    texts = turns(batch_total)
    result["batch_ingest"] = await batch_ingest(args.base_url, texts, 500)
    result["split"] = {"embedder_alone": embedder_alone(texts, 500), "kafka_append_alone": await kafka_alone(texts, 500)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']}")
    print("single add ack latency (embedding included), LoCoMo turns:")
    for row in result["single_add"]:
        print(f"  {row['clients']:>3} clients  median {row['median_ms']:7.1f} ms   p99 {row['p99_ms']:7.1f} ms"
              f"   {row['throughput_per_s']:7.1f} adds/s   (n={row['requests']}, shed {row['errors'] or 0})")
        print(f"        CPU per add {row['cpu_ms_per_add_total']:.1f} ms: {cpu_accounting.top(row['cpu_ms_per_add'])}")
    p = result["paced_add"]
    print(f"  {p['clients']:>3} clients, open loop at {p['rate_per_s']:.0f} adds/s: median {p['median_ms']:.1f} ms"
          f"   p99 {p['p99_ms']:.1f} ms   (n={p['requests']})")
    b, s = result["batch_ingest"], result["split"]
    print(f"batch ingest: {b['memories_per_s']} memories/s ({b['memories']} memories, {b['batch_size']} per call)")
    print(f"  split: embedder alone {s['embedder_alone']['memories_per_s']} /s, "
          f"Kafka append alone {s['kafka_append_alone']['memories_per_s']} /s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
