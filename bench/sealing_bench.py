"""What sealing costs per event (docs/security.md): encode(+seal) and (unseal+)decode of a
384-dimension MemoryCreated, plain against sealed, pure CPU (the key lookups are cached;
a projector loads a batch's keys in one query). Writes bench/results/sealing.json.

    .venv/bin/python -m bench.sealing_bench [--n 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import cryptography

from adapters import kafka_codec
from bench.machine_info import machine
from domain import sealing
from domain.events import Entity, MemoryCreated, Relation

OUT = Path(__file__).resolve().parent / "results" / "sealing.json"


def sample() -> MemoryCreated:
    rng = random.Random(7)
    return MemoryCreated(
        user_id="bench-user", actor="user:bench-user", memory_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10",
        text="Caroline went to the LGBTQ support group on 7 May 2023 and found it very empowering.",
        embedding=tuple(rng.uniform(-1, 1) for _ in range(384)), embedding_model="minilm-l6-v2",
        happened_at=datetime(2023, 5, 7, tzinfo=timezone.utc), metadata={"source": "locomo", "session": 1},
        categories=("events",), importance=0.6, entities=(Entity("Caroline", "person"),),
        relations=(Relation("Caroline", "attended", "LGBTQ support group"),))


def timed(work, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter_ns()
        work()
        out.append((time.perf_counter_ns() - started) / 1000)
    return out


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_us": round(statistics.median(ordered), 2), "p99_us": round(ordered[int(len(ordered) * 0.99)], 2)}


def run(n: int) -> dict:
    event = sample()
    key = sealing.DataKey(event.user_id, 1, sealing.new_key_material())
    lookup = {(key.user_id, key.version): key}.get
    keys = lambda user, version: lookup((user, version))  # noqa: E731 - the cache hit a projector sees
    plain_value, plain_headers = kafka_codec.encode(event)
    sealed_value, sealed_headers = kafka_codec.encode(event, key)
    assert kafka_codec.decode(sealed_value, sealed_headers, keys) == kafka_codec.decode(plain_value, plain_headers)
    for _ in range(500):  # warm up
        kafka_codec.encode(event, key)
        kafka_codec.decode(sealed_value, sealed_headers, keys)
    # Interleaved rounds, so plain and sealed see the same machine load.
    results: dict[str, list[float]] = {"encode_plain": [], "encode_sealed": [], "decode_plain": [], "decode_sealed": [],
                                       "seal_only": [], "unseal_only": []}
    aad = sealing.associated_data(event.user_id, event.event_type, "fp", 1)
    ciphertext = sealing.seal(key.material, plain_value, aad)
    rounds = 10
    for _ in range(rounds):
        results["encode_plain"] += timed(lambda: kafka_codec.encode(event), n // rounds)
        results["encode_sealed"] += timed(lambda: kafka_codec.encode(event, key), n // rounds)
        results["decode_plain"] += timed(lambda: kafka_codec.decode(plain_value, plain_headers), n // rounds)
        results["decode_sealed"] += timed(lambda: kafka_codec.decode(sealed_value, sealed_headers, keys), n // rounds)
        results["seal_only"] += timed(lambda: sealing.seal(key.material, plain_value, aad), n // rounds)
        results["unseal_only"] += timed(lambda: sealing.unseal(key.material, ciphertext, aad), n // rounds)
    stats = {name: summary(samples) for name, samples in results.items()}
    return {
        "bench": "sealing", "n": n, "event": "MemoryCreated v2, 384 dimensions",
        "value_bytes": {"plain": len(plain_value), "sealed": len(sealed_value)},
        "results": stats,
        "overhead_us": {"encode_median": round(stats["encode_sealed"]["median_us"] - stats["encode_plain"]["median_us"], 2),
                        "decode_median": round(stats["decode_sealed"]["median_us"] - stats["decode_plain"]["median_us"], 2)},
        "machine": {**machine(), "cryptography": cryptography.__version__},
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def report(result: dict) -> None:
    m = result["machine"]
    print(f"sealing bench: {result['event']}, n={result['n']} per case; {m.get('cpu', '?')}, {m['cores']} cores, "
          f"Python {m['python']}, cryptography {m['cryptography']}")
    print(f"value: {result['value_bytes']['plain']} bytes plain, {result['value_bytes']['sealed']} sealed "
          "(+12 nonce +16 tag)")
    print(f"{'case':16} {'median us':>10} {'p99 us':>10}")
    for name, s in result["results"].items():
        print(f"{name:16} {s['median_us']:>10.2f} {s['p99_us']:>10.2f}")
    print(f"sealing adds {result['overhead_us']['encode_median']:.2f} us to an encode and "
          f"{result['overhead_us']['decode_median']:.2f} us to a decode (medians)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="timed calls per case (default 20000)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(args.n)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2)) if args.json else report(result)


if __name__ == "__main__":
    main()
