"""Benchmark the local all-MiniLM-L6-v2 embedder (no torch).

    python bench/embedder_bench.py [--quick] [--json] [--backend onnx|numpy] [--threads N]

Prints the machine, model load time, RSS, single-sentence latency (median/p99) and throughput for
embed() calls of 64 texts, on LoCoMo dialogue turns (../shared/bench/locomo/locomo10_dev.json,
override the shared folder with RECALLSTACK_SHARED_DIR), next to the torch figures measured
earlier on a 2-core machine (quoted: torch is not installed here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpus import machine, pct, questions, turns

# Quoted, not re-measured (torch is deliberately not installed): sentence-transformers + torch CPU
# and a plain float64 numpy port, both on a 2-core machine.
TORCH_REFERENCE = {"single_ms": 12.0, "batch64_per_s": 430.0}
NUMPY_F64_REFERENCE = {"single_ms": 26.0, "batch64_per_s": 92.0}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def locomo_texts() -> tuple[list[str], list[str]]:
    return turns(with_speaker=False), questions()


def throughput(emb, texts: list[str], batch: int, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            emb.embed(texts[i:i + batch])
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="fewer calls (about 20 s instead of about a minute)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--backend", default="onnx", choices=["onnx", "numpy"])
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: usable cores)")
    ap.add_argument("--cold", action="store_true",
                    help="ignore the on-disk graph cache: measure the load with a graph build")
    args = ap.parse_args()
    n_single, n_batch_texts, repeats = (50, 512, 1) if args.quick else (200, 2048, 2)

    host = machine()
    rss0 = rss_mib()
    t0 = time.perf_counter()
    from adapters.embedders.minilm import MiniLMEmbedder

    emb = MiniLMEmbedder(backend=args.backend, threads=args.threads, cache_dir=False if args.cold else None)
    emb.load()
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mib()
    t1 = time.perf_counter()
    emb.embed_one("warm up")
    first_call_ms = (time.perf_counter() - t1) * 1e3

    turns, questions = locomo_texts()
    tok = emb._rt.tokenizer
    sample = turns[:n_batch_texts]
    while len(sample) < n_batch_texts:
        sample += turns[: n_batch_texts - len(sample)]
    mean_tokens = statistics.mean(len(e.ids) for e in tok.encode_batch(sample))
    q_sample = questions[:n_batch_texts]
    q_tokens = statistics.mean(len(e.ids) for e in tok.encode_batch(q_sample))

    for text in turns[:10]:
        emb.embed_one(text)
    lat = []
    for i in range(n_single):
        text = turns[(i * 7) % len(turns)]
        t = time.perf_counter()
        emb.embed_one(text)
        lat.append((time.perf_counter() - t) * 1e3)
    single_tokens = statistics.mean(len(tok.encode(turns[(i * 7) % len(turns)]).ids) for i in range(n_single))
    lat_short = []
    for i in range(n_single):
        text = questions[(i * 7) % len(questions)]
        t = time.perf_counter()
        emb.embed_one(text)
        lat_short.append((time.perf_counter() - t) * 1e3)

    thr_turns = throughput(emb, sample, 64, repeats)
    thr_questions = throughput(emb, q_sample, 64, repeats)
    rss_after = rss_mib()

    result = {
        "machine": {**host, "loadavg_1m_at_end": os.getloadavg()[0]},
        "embedder": {"model_id": emb.model_id, "dim": emb.dim, "backend": emb.runtime_backend,
                     "threads": emb.threads, "max_rows_per_pass": emb.batch_size,
                     "max_tokens_per_pass": emb.max_batch_tokens},
        "load_s": round(load_s, 3),
        "graph": emb.graph_cache_status,
        "first_call_ms": round(first_call_ms, 1),
        "rss_mib": {"before_load": round(rss0), "after_load": round(rss_loaded), "after_bench": round(rss_after)},
        "single_short": {"calls": n_single, "median_ms": round(statistics.median(lat_short), 2),
                         "p99_ms": round(pct(lat_short, 99), 2), "mean_tokens": round(q_tokens, 1),
                         "text": "LoCoMo questions"},
        "single": {"calls": n_single, "median_ms": round(statistics.median(lat), 2), "p99_ms": round(pct(lat, 99), 2),
                   "mean_tokens": round(single_tokens, 1), "text": "LoCoMo turns"},
        "batch64": {"texts": len(sample), "per_s": round(thr_turns, 1), "mean_tokens": round(mean_tokens, 1),
                    "tokens_per_s": round(thr_turns * mean_tokens), "text": "LoCoMo turns"},
        "batch64_short": {"texts": len(q_sample), "per_s": round(thr_questions, 1), "mean_tokens": round(q_tokens, 1),
                          "text": "LoCoMo questions"},
        "reference_quoted": {"torch_sentence_transformers": TORCH_REFERENCE, "numpy_float64": NUMPY_F64_REFERENCE},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    m = result["machine"]
    print(f"machine     : {m.get('cpu', '?')} | {m['cores']} usable cores | {m.get('ram_gib', '?')} GiB RAM | "
          f"SIMD {m.get('simd', '?')} | load avg {m['loadavg_1m_at_start']:.2f} -> {m['loadavg_1m_at_end']:.2f}")
    e = result["embedder"]
    print(f"embedder    : {e['model_id']} dim={e['dim']} backend={e['backend']} threads={e['threads']} "
          f"passes <= {e['max_rows_per_pass']} rows / {e['max_tokens_per_pass']} tokens")
    print(f"model load  : {load_s:.2f} s incl. imports, first call {first_call_ms:.0f} ms; ONNX graph {result['graph']}")
    r = result["rss_mib"]
    print(f"RSS         : {r['before_load']} MiB before load, {r['after_load']} MiB after load, {r['after_bench']} MiB after bench")
    print()
    print(f"{'':34}{'this (' + e['backend'] + ')':>16}{'torch (quoted)':>16}{'numpy f64 (quoted)':>20}")
    s = result["single"]
    print(f"{'single sentence, median ms':34}{s['median_ms']:>16.2f}{TORCH_REFERENCE['single_ms']:>16.1f}"
          f"{NUMPY_F64_REFERENCE['single_ms']:>20.1f}")
    print(f"{'single sentence, p99 ms':34}{s['p99_ms']:>16.2f}{'-':>16}{'-':>20}")
    ss = result["single_short"]
    print(f"{'single short question, median ms':34}{ss['median_ms']:>16.2f}{'-':>16}{'-':>20}")
    print(f"{'single short question, p99 ms':34}{ss['p99_ms']:>16.2f}{'-':>16}{'-':>20}")
    b = result["batch64"]
    print(f"{'batches of 64, sentences/s':34}{b['per_s']:>16.1f}{TORCH_REFERENCE['batch64_per_s']:>16.1f}"
          f"{NUMPY_F64_REFERENCE['batch64_per_s']:>20.1f}")
    bs = result["batch64_short"]
    print(f"{'batches of 64 short, sentences/s':34}{bs['per_s']:>16.1f}{'-':>16}{'-':>20}")
    print()
    print(f"single: {s['calls']} calls each on LoCoMo turns (mean {s['mean_tokens']} tokens incl. [CLS]/[SEP]) "
          f"and LoCoMo questions (mean {ss['mean_tokens']} tokens)")
    print(f"batch64: embed() on 64 texts at a time, {b['texts']} LoCoMo turns (mean {b['mean_tokens']} tokens, "
          f"{b['tokens_per_s']} tokens/s) and {bs['texts']} questions (mean {bs['mean_tokens']} tokens); "
          f"best of {repeats} pass(es)")
    print("torch / numpy-f64 figures are quoted from an earlier 2-core run (text lengths not recorded), not measured here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
