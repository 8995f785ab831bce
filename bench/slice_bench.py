"""End-to-end latency of the first slice against a running stack (`recallstack up`).

    python bench/slice_bench.py [--n 200] [--base-url http://127.0.0.1:8080] [--json]

For N LoCoMo dialogue turns, one client, sequential: add (202 ack) latency, add-then-
search with read-your-writes (the search carries the add's consistency token, so it
includes the projector's apply), and plain search latency over the corpus just written.
Prints medians and p99 with the machine and corpus size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

import httpx
from api_key import api_headers
from locomo_texts import turns
from machine_info import machine
from percentiles import pct


def summary(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values), 2), "p99_ms": round(pct(values, 99), 2),
            "min_ms": round(min(values), 2), "n": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    texts = turns(args.n)
    user = f"bench-{uuid.uuid4().hex[:8]}"
    add_ms, ryw_ms, search_ms = [], [], []
    with httpx.Client(headers=api_headers(), base_url=args.base_url, timeout=30) as client:
        for i, text in enumerate(texts):
            began = time.perf_counter()
            answer = client.post("/v1/memories", json={"text": text, "user_id": user})
            acked = time.perf_counter()
            answer.raise_for_status()
            token = answer.json()["consistency_token"]
            found = client.post("/v1/memories/search", json={"query": text, "user_id": user, "limit": 5,
                                                              "consistency_token": token})
            done = time.perf_counter()
            found.raise_for_status()
            add_ms.append((acked - began) * 1000)
            ryw_ms.append((done - began) * 1000)
            print(f"\radd+search {i + 1}/{len(texts)}", end="", file=sys.stderr)
        print(file=sys.stderr)
        for i, text in enumerate(texts):
            began = time.perf_counter()
            client.post("/v1/memories/search", json={"query": text[:80], "user_id": user, "limit": 10}).raise_for_status()
            search_ms.append((time.perf_counter() - began) * 1000)
    result = {
        "machine": machine(),
        "corpus": {"memories_of_this_user": len(texts)},
        "add_ack": summary(add_ms), "add_then_search_read_your_writes": summary(ryw_ms), "search": summary(search_ms),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}; corpus: {len(texts)} memories, one client, through the gateway")
        for name in ("add_ack", "add_then_search_read_your_writes", "search"):
            r = result[name]
            print(f"  {name:36} median {r['median_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   (n={r['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
