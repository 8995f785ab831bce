"""Benchmark the local all-MiniLM-L6-v2 embedder (no torch): the query embedding and the document batches.

    python bench/embedder_bench.py [--quick] [--json] [--no-quality] [--backend onnx|numpy]

Prints the machine and:
- load: model load time (float32 and int8 graphs, from the on-disk cache unless --cold), RSS;
- query: one LoCoMo question per call (what a search embeds), p50/p99 and CPU, float32 and int8, 1
  and 2 intra-op threads, threads not spinning (the services' setting); the configurations take turns
  in rounds so a busy machine slows them alike; the tokenizer's share;
- concurrency: 1, 2 and 4 callers embedding questions at once (as the query API's requests do,
  through asyncio.to_thread): embeddings/s and per-call p50/p99, per precision and thread count,
  in interleaved bursts; and how much Python work goes on while a thread embeds (the GIL is free);
- documents: embed() on 64 LoCoMo turns at a time (the command API's batches), texts/s;
- quality (unless --no-quality): dense retrieval hit@10 on the LoCoMo dev split (every turn a
  document, one user per conversation, questions of categories 1-4, as bench/locomo_bench.py's dense
  baseline): float32 queries on float32 documents, int8 queries on float32 documents, int8 on int8;
  and the cosine of the int8 vectors to the float32 ones.
Beside the figures of issue 20's probe (quoted, measured on this machine under another load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from locomo_texts import locomo, questions, turns

# Issue 20's probe (quoted): one LoCoMo question, p50 ms; cosine of the int8 vectors to float32.

from machine_info import machine

# Issue 20's probe (quoted): one LoCoMo question, p50 ms; cosine of the int8 vectors to float32.

from percentiles import pct

# Issue 20's probe (quoted): one LoCoMo question, p50 ms; cosine of the int8 vectors to float32.
ISSUE_PROBE = {"float32": {2: 9.2, 1: 16.9}, "int8": {2: 4.4, 1: 7.8}, "cosine_avg": 0.972, "cosine_worst": 0.956}
PRECISIONS = ("float32", "int8")
THREADS = (1, 2)
CALLERS = (1, 2, 4)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(values_ms: list[float]) -> dict:
    return {"n": len(values_ms), "p50_ms": round(statistics.median(values_ms), 2),
            "p99_ms": round(pct(values_ms, 99), 2)}


def query_latency(embedders: dict, texts: list[str], calls: int, rounds: int) -> dict:
    """Each configuration embeds `calls` questions per round, in turn; all rounds pooled. Wall time
    and the process's CPU time per call (every thread of it: onnxruntime's too)."""
    lat: dict = {key: [] for key in embedders}
    cpu: dict = {key: [] for key in embedders}
    for r in range(rounds):
        for key, emb in embedders.items():
            for i in range(calls):
                text = texts[(r * calls + i) * 7 % len(texts)]
                c, t = time.process_time(), time.perf_counter()
                emb.embed_one(text)
                lat[key].append((time.perf_counter() - t) * 1e3)
                cpu[key].append((time.process_time() - c) * 1e3)
    return {key: {**summary(v), "cpu_p50_ms": round(statistics.median(cpu[key]), 2)} for key, v in lat.items()}


def tokenizer_us(tok, texts: list[str]) -> dict:
    out = {}
    for name, fn in (("encode", lambda t: tok.encode(t)), ("encode_batch_of_one", lambda t: tok.encode_batch([t]))):
        lat = []
        for t in texts:
            began = time.perf_counter()
            fn(t)
            lat.append((time.perf_counter() - began) * 1e6)
        out[name] = round(statistics.median(lat), 1)
    return out


def callers_burst(emb, texts: list[str], callers: int, seconds: float) -> tuple[list[float], float]:
    """`callers` threads embed questions back to back for `seconds`: per-call ms, elapsed s."""
    lat: list[list[float]] = [[] for _ in range(callers)]
    stop = time.perf_counter() + seconds

    def work(k: int) -> None:
        i = k * 97
        while time.perf_counter() < stop:
            t = time.perf_counter()
            emb.embed_one(texts[i % len(texts)])
            lat[k].append((time.perf_counter() - t) * 1e3)
            i += 1

    began = time.perf_counter()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(callers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [x for part in lat for x in part], time.perf_counter() - began


def concurrency(embedders: dict, texts: list[str], seconds: float, rounds: int) -> dict:
    """Embeddings/s and per-call p50/p99 for 1, 2 and 4 concurrent callers of each configuration
    (as the query API's requests call through asyncio.to_thread); configurations take turns in
    `rounds` bursts of `seconds`, so the machine's other load falls on all of them."""
    pooled: dict = {(key, n): ([], 0.0) for key in embedders for n in CALLERS}
    for _ in range(rounds):
        for key, emb in embedders.items():
            for n in CALLERS:
                lat, elapsed = callers_burst(emb, texts, n, seconds)
                pooled[(key, n)][0].extend(lat)
                pooled[(key, n)] = (pooled[(key, n)][0], pooled[(key, n)][1] + elapsed)
    out: dict = {}
    for (p, t), n in pooled:
        lat, elapsed = pooled[((p, t), n)]
        out.setdefault(f"{p} {t} thread{'s' if t > 1 else ''}", []).append(
            {"callers": n, "per_s": round(len(lat) / elapsed, 1), **summary(lat)})
    return out


def gil_share(emb, texts: list[str], seconds: float = 1.0) -> float:
    """How much pure-Python work the process still gets done while another thread embeds back to
    back (1.0: all of it, as when onnxruntime's Run and the tokenizer leave the GIL free; about 0.5 or
    less if they held it). Counted with the embedding thread idle, then busy."""
    def count(duration: float) -> int:
        n, stop = 0, time.perf_counter() + duration
        while time.perf_counter() < stop:
            n += 1
        return n

    idle = count(seconds)
    busy = threading.Event()

    def embed_loop() -> None:
        i = 0
        while not busy.is_set():
            emb.embed_one(texts[i % len(texts)])
            i += 1

    worker = threading.Thread(target=embed_loop)
    worker.start()
    try:
        loaded = count(seconds)
    finally:
        busy.set()
        worker.join()
    return round(loaded / idle, 2)


def batch_throughput(emb, texts: list[str], batch: int, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            emb.embed(texts[i:i + batch])
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


# ---------------------------------------------------------------------------------------------
# Quality: dense retrieval on the LoCoMo dev split

def locomo_corpus() -> list[dict]:
    """Per conversation: its turns as documents (bench/locomo_bench.py's texts) and its questions of
    categories 1-4 with valid evidence."""
    from locomo_bench import build_corpus

    return build_corpus(locomo(), "embedder-bench", {1, 2, 3, 4}, None)


def hit_at_10(convs: list[dict], doc_vecs: np.ndarray, query_vecs: np.ndarray) -> float:
    from retrieval_metrics import hit_at_k, top_k

    hits, d0, q0 = [], 0, 0
    for conv in convs:
        n, m = len(conv["memories"]), len(conv["questions"])
        docs, ids = doc_vecs[d0:d0 + n], [mem["dia_id"] for mem in conv["memories"]]
        for question, qv in zip(conv["questions"], query_vecs[q0:q0 + m]):
            hits.append(hit_at_k([ids[i] for i in top_k(docs @ qv, 10)], question["evidence"], 10))
        d0, q0 = d0 + n, q0 + m
    return round(float(np.mean(hits)), 4)


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    c = (a.astype(np.float64) * b).sum(1)
    return {"avg": round(float(c.mean()), 4), "worst": round(float(c.min()), 4)}


def quality(bulk: dict, single: dict) -> dict:
    """hit@10 of (a) float32 queries / float32 documents, (b) int8 queries / float32 documents,
    (c) int8 / int8. Queries embedded one at a time (as a search does), documents in batches of 64
    (as the command API does; int8 documents in batches depend slightly on their batch-mates: the
    activations of the padded rows share one quantisation range)."""
    convs = locomo_corpus()
    docs = [mem["text"] for conv in convs for mem in conv["memories"]]
    qs = [q["question"] for conv in convs for q in conv["questions"]]
    began = time.perf_counter()
    doc_vecs = {p: np.vstack([bulk[p].embed(docs[i:i + 64]) for i in range(0, len(docs), 64)]) for p in PRECISIONS}
    query_vecs = {p: np.stack([single[p].embed_one(q) for q in qs]) for p in PRECISIONS}
    a = hit_at_10(convs, doc_vecs["float32"], query_vecs["float32"])
    b = hit_at_10(convs, doc_vecs["float32"], query_vecs["int8"])
    c = hit_at_10(convs, doc_vecs["int8"], query_vecs["int8"])
    return {"conversations": len(convs), "documents": len(docs), "questions": len(qs),
            "hit@10": {"a_float32_queries_float32_docs": a, "b_int8_queries_float32_docs": b,
                       "c_int8_queries_int8_docs": c},
            "loss_b": round(a - b, 4), "loss_c": round(a - c, 4), "rule_max_loss": 0.01,
            "cosine_int8_to_float32": {"questions": cosines(query_vecs["int8"], query_vecs["float32"]),
                                       "documents": cosines(doc_vecs["int8"], doc_vecs["float32"])},
            "seconds": round(time.perf_counter() - began, 1)}


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="fewer calls and shorter bursts: about 1.5 min instead of 4")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--no-quality", action="store_true", help="skip the LoCoMo hit@10 pass (about 40 s)")
    ap.add_argument("--backend", default="onnx", choices=["onnx", "numpy"], help="numpy: float32 only")
    ap.add_argument("--cold", action="store_true",
                    help="ignore the on-disk graph cache: measure the load with the graphs' build")
    args = ap.parse_args()
    calls, rounds, conc_s, n_batch_texts, repeats = (40, 5, 0.5, 512, 1) if args.quick else (50, 10, 1.0, 2048, 2)
    precisions = PRECISIONS if args.backend == "onnx" else ("float32",)

    host = machine()
    rss0 = rss_mib()
    from adapters.embedders.minilm import MiniLMEmbedder

    cache = False if args.cold else None
    load: dict = {}
    single: dict = {}
    for p in precisions:
        t0 = time.perf_counter()
        emb = MiniLMEmbedder(backend=args.backend, threads=1, spin=False, precision=p, cache_dir=cache).load()
        load[p] = {"s": round(time.perf_counter() - t0, 3), "graph": emb.graph_cache_status, "model_id": emb.model_id}
        single[p] = emb
    rss_loaded = rss_mib()
    embedders = {(p, t): MiniLMEmbedder(backend=args.backend, threads=t, spin=False, precision=p, cache_dir=cache)
                 for p in precisions for t in THREADS}
    for emb in embedders.values():
        emb.embed_one("warm up")

    question_texts, turn_texts = questions(), turns(with_speaker=False)
    tok = single["float32"]._rt.tokenizer
    q_tokens = statistics.mean(len(e.ids) for e in tok.encode_batch(question_texts))
    for text in question_texts[:10]:
        for emb in embedders.values():
            emb.embed_one(text)
    query = query_latency(embedders, question_texts, calls, rounds)
    tokenizer = tokenizer_us(tok, question_texts[:500])
    gil = {p: gil_share(embedders[(p, 1)], question_texts) for p in precisions}
    conc = concurrency(embedders, question_texts, conc_s, rounds)

    sample = (turn_texts * (1 + n_batch_texts // len(turn_texts)))[:n_batch_texts]
    mean_tokens = statistics.mean(len(e.ids) for e in tok.encode_batch(sample))
    bulk = {p: MiniLMEmbedder(backend=args.backend, spin=True, precision=p, cache_dir=cache) for p in precisions}
    batches = {p: round(batch_throughput(bulk[p], sample, 64, repeats), 1) for p in precisions}
    qual = quality(bulk, single) if not args.no_quality and args.backend == "onnx" else None
    rss_after = rss_mib()

    result = {
        "machine": {**host, "loadavg_1m_at_end": os.getloadavg()[0]},
        "embedder": {"model_ids": {p: load[p]["model_id"] for p in precisions}, "dim": single["float32"].dim,
                     "backend": single["float32"].runtime_backend, "spin": False},
        "load_s": load["float32"]["s"], "load": load,
        "rss_mib": {"before_load": round(rss0), "after_load": round(rss_loaded), "after_bench": round(rss_after)},
        "query": {"text": "LoCoMo questions", "mean_tokens": round(q_tokens, 1), "calls_per_round": calls,
                  "rounds": rounds, **{f"{p} {t}": query[(p, t)] for (p, t) in query}},
        "tokenizer_us": tokenizer,
        "concurrency": {"seconds_per_burst": conc_s, "rounds": rounds, **conc},
        "python_work_while_embedding": gil,
        # report.py reads single.median_ms and batch64.per_s: the service's query setting, the documents' batches
        "single": {"median_ms": query[(precisions[-1], 1)]["p50_ms"], "p99_ms": query[(precisions[-1], 1)]["p99_ms"],
                   "precision": precisions[-1], "threads": 1, "text": "LoCoMo questions"},
        "batch64": {"texts": len(sample), "per_s": batches["float32"], "mean_tokens": round(mean_tokens, 1),
                    "threads": bulk["float32"].threads, "text": "LoCoMo turns"},
        "batch64_by_precision": batches,
        "quality": qual,
        "issue_probe_quoted": ISSUE_PROBE,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print_report(result, precisions)
    return 0


def print_report(result: dict, precisions: tuple[str, ...]) -> None:
    m = result["machine"]
    print(f"machine     : {m.get('cpu', '?')} | {m['cores']} usable cores | {m.get('ram_gib', '?')} GiB RAM | "
          f"SIMD {m.get('simd', '?')} | load avg {m['loadavg_1m_at_start']:.2f} -> {m['loadavg_1m_at_end']:.2f}")
    for p in precisions:
        ld = result["load"][p]
        print(f"load {p:8}: {ld['s']:.2f} s ({ld['model_id']}); graph {ld['graph']}")
    r = result["rss_mib"]
    print(f"RSS         : {r['before_load']} MiB before load, {r['after_load']} MiB after loading both, "
          f"{r['after_bench']} MiB after bench")
    q = result["query"]
    print(f"\nOne question per call ({q['text']}, mean {q['mean_tokens']} tokens incl. [CLS]/[SEP]; "
          f"{q['rounds']} rounds x {q['calls_per_round']} calls per configuration, in turns; threads not spinning):")
    print(f"{'':22}{'p50 ms':>9}{'p99 ms':>9}{'CPU p50 ms':>12}{'issue p50 (quoted)':>20}")
    for p in precisions:
        for t in THREADS:
            s = q[f"{p} {t}"]
            print(f"{p + ' ' + str(t) + ' thread' + ('s' if t > 1 else ''):22}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
                  f"{s['cpu_p50_ms']:>12.2f}{ISSUE_PROBE[p][t]:>20.1f}")
    tk = result["tokenizer_us"]
    print(f"tokenizer: encode {tk['encode']} us, encode_batch of one {tk['encode_batch_of_one']} us (median)")
    c = result["concurrency"]
    print(f"\nConcurrent callers ({c['rounds']} rounds of {c['seconds_per_burst']} s bursts per configuration, "
          "in turns): embeddings/s, per-call p50/p99 ms")
    print(f"{'':22}" + "".join(f"{str(n) + ' caller' + ('s' if n > 1 else ''):>24}" for n in (1, 2, 4)))
    for key, rows in c.items():
        if key in ("seconds_per_burst", "rounds"):
            continue
        print(f"{key:22}" + "".join(f"{row['per_s']:>8.0f}/s {row['p50_ms']:>5.1f} {row['p99_ms']:>6.1f}"
                                    for row in rows))
    print("Python work done while another thread embeds (1.0 = unhindered, the GIL is free during Run): "
          + ", ".join(f"{p} {v}" for p, v in result["python_work_while_embedding"].items()))
    b = result["batch64"]
    print(f"\nDocuments, embed() of 64 LoCoMo turns at a time ({b['texts']} turns, mean {b['mean_tokens']} tokens, "
          f"{b['threads']} threads): "
          + ", ".join(f"{p} {v} texts/s" for p, v in result["batch64_by_precision"].items()))
    qual = result["quality"]
    if qual:
        h = qual["hit@10"]
        print(f"\nDense retrieval on LoCoMo dev ({qual['conversations']} conversations, {qual['documents']} turns, "
              f"{qual['questions']} questions of categories 1-4; {qual['seconds']} s):")
        print(f"  hit@10 (a) float32 queries, float32 documents: {h['a_float32_queries_float32_docs']:.4f}")
        print(f"  hit@10 (b) int8 queries,    float32 documents: {h['b_int8_queries_float32_docs']:.4f} "
              f"(loss {qual['loss_b']:+.4f}; the rule allows {qual['rule_max_loss']})")
        print(f"  hit@10 (c) int8 queries,    int8 documents:    {h['c_int8_queries_int8_docs']:.4f} "
              f"(loss {qual['loss_c']:+.4f})")
        cq, cd = qual["cosine_int8_to_float32"]["questions"], qual["cosine_int8_to_float32"]["documents"]
        print(f"  cosine int8 to float32: questions avg {cq['avg']} worst {cq['worst']}, documents avg {cd['avg']} "
              f"worst {cd['worst']} (issue's probe: {ISSUE_PROBE['cosine_avg']} / {ISSUE_PROBE['cosine_worst']})")
    print("\nThe issue's figures are quoted from its probe (same machine, another moment's load), not measured here.")


if __name__ == "__main__":
    sys.exit(main())
