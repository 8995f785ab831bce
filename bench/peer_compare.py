"""recallstack beside mem0 (open-source library) on the same memories and questions.

    python bench/peer_compare.py --peer-python .bench-home/peer-mem0/venv/bin/python
                                 [--conversations 2] [--limit-questions 40] [--clients 10] [--rounds 2]
                                 [--out DIR] [--json]

Workload: the LoCoMo dev split (bench/locomo_bench.build_corpus, the same evidence mapping):
one memory per dialog turn (with its dia_id in metadata), one user per conversation, the
questions of categories 1-4, k = 10. Both systems get the same texts in the same order, the
same user scoping and the same questions; both embed with the same MiniLM code and weights
(mem0 in-process through bench/peer_mem0.py, run in the peer's own virtual environment).

recallstack (through the base URL): every memory added one by one (POST /v1/memories, infer
false): ack latency and adds/s; then add-to-searchable: the time from the last ack of a user
to the answer of a search carrying its consistency token (the ack comes before the read
models apply the event; mem0's add returns once stored). Concurrent adds (--clients) to a
user of their own. Search, all `cache: false`: the quality pass (every question once as it
is, one client: hit@k, evidence recall@k with bench/retrieval_metrics.py for both), then two
latency passes over texts neither side has seen (each question phrased anew per round and
tagged with the run: recallstack's embedding cache would otherwise hold the query vectors of
the quality pass and of earlier runs): one client, then --clients clients (recallstack: that
many keep-alive HTTP connections in a closed loop; mem0: that many threads of its process).
mem0 runs the same passes in-process first (bench/peer_mem0.py). Ratios are recallstack /
mem0, judged against issue 20's targets (bench/search_targets.py: p50 <= 0.6, p99 <= 0.8 at
one client and at ten, hit@10 >= 1.2).
Writes <out>/peer.json and <out>/peer.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import raw_http
from api_key import api_headers
from locomo_texts import locomo
from machine_info import machine
from percentiles import pct
from locomo_bench import BenchError, build_corpus, post
from retrieval_metrics import aggregate, question_metrics
from search_targets import peer_targets

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("RECALLSTACK_BENCH_OUT") or Path(__file__).parent / "results")
LIMIT = 10
KS = (1, 5, 10)
PREFIXES = ("", "Remind me: ", "Do you remember, ", "Quick question: ", "I forgot - ", "From our chats, ",
            "Can you recall: ", "Tell me again: ")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(statistics.median(values), 2), "p99_ms": round(pct(values, 99), 2),
            "mean_ms": round(statistics.fmean(values), 2)}


def quality(convs: list[dict], ranked: list[list]) -> dict:
    """hit@k / recall@k overall and per category from per-question rankings (questions in workload order)."""
    questions = [q for c in convs for q in c["questions"]]
    rows = [(q["category"], question_metrics(r, q["evidence"], KS)) for q, r in zip(questions, ranked, strict=True)]
    return aggregate(rows)


def recallstack_side(base_url: str, convs: list[dict], clients: int, passes: dict) -> dict:
    out: dict = {}
    with httpx.Client(headers=api_headers(), base_url=base_url, timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        ack_ms, visible_ms = [], []
        began = time.perf_counter()
        for conv in convs:
            token = None
            for m in conv["memories"]:
                answer, ms, _ = post(client, "/v1/memories", {
                    "text": m["text"], "user_id": conv["user_id"], "infer": False, "occurred_at": m["occurred_at"],
                    "metadata": {"dia_id": m["dia_id"], "session": m["session"], "sample_id": conv["sample_id"]}})
                ack_ms.append(ms)
                token, acked = answer.json()["consistency_token"], time.perf_counter()
            post(client, "/v1/memories/search", {"query": "warm", "user_id": conv["user_id"], "limit": 1,
                                                 "consistency_token": token, "cache": False})
            visible_ms.append((time.perf_counter() - acked) * 1000)
        seconds = time.perf_counter() - began
        out["add"] = {"memories": len(ack_ms), "seconds": round(seconds, 2), "per_s": round(len(ack_ms) / seconds, 1),
                      "latency": summary(ack_ms), "last_ack_to_searchable_ms": visible_ms}

        search_ms, ranked, degraded = [], [], 0
        for conv in convs:
            for q in conv["questions"]:
                body = {"query": q["question"], "user_id": conv["user_id"], "limit": LIMIT,
                        "reference_time": conv["reference_time"], "cache": False}
                answer, ms, _ = post(client, "/v1/memories/search", body)
                search_ms.append(ms)
                data = answer.json()
                degraded += bool(data.get("degraded"))  # a source missed its budget: fewer sources fused
                ranked.append([(r.get("metadata") or {}).get("dia_id") for r in data.get("results", [])])
        out["quality_pass"] = {"latency": summary(search_ms), "qps": round(len(search_ms) / (sum(search_ms) / 1000), 1),
                               "degraded_responses": degraded}
        out["ranked"] = ranked
        out["search"] = asyncio.run(closed_loop(base_url, passes["one"], 1))
        if clients > 0:
            out["search_concurrent"] = asyncio.run(closed_loop(base_url, passes["ten"], clients))
            user = f"bench-peer-concurrent-{uuid.uuid4().hex[:8]}"
            texts = [m["text"] for conv in convs for m in conv["memories"]][:500]

            def one_add(text):
                return post(client, "/v1/memories", {"text": text, "user_id": user, "infer": False})[1]

            began = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                lat = list(pool.map(one_add, texts))
            out["add_concurrent"] = {"clients": clients, "memories": len(lat), "latency": summary(lat),
                                     "per_s": round(len(lat) / (time.perf_counter() - began), 1)}
            convs = convs + [{"user_id": user}]
        for conv in convs:  # the run's memories go, so runs do not pile up
            try:
                post(client, "/v1/memories", None, method="DELETE", params={"user_id": conv["user_id"]})
            except BenchError as exc:
                log(f"could not delete {conv['user_id']}: {exc}")
    return out


def fresh_queries(convs: list[dict], rounds: int, tag: str, first_round: int = 0) -> list[list]:
    """[user_id, text, reference_time] per search of a latency pass: each question phrased anew
    per round and marked with the run's tag, so neither side has seen the text (recallstack keeps
    query vectors in an embedding cache for days; mem0 has none)."""
    jobs = []
    for r in range(first_round, first_round + rounds):
        prefix = PREFIXES[r % len(PREFIXES)]
        for conv in convs:
            for q in conv["questions"]:
                text = q["question"]
                text = prefix + (text[:1].lower() + text[1:] if prefix else text)
                jobs.append([conv["user_id"], f"{text} ({tag}.{r})", conv["reference_time"]])
    return jobs


async def closed_loop(base_url: str, jobs: list[list], clients: int) -> dict:
    """Every job once, `clients` keep-alive connections each sending its next search when the
    last answered (the same closed loop as mem0's threads); uncached (`cache: false`)."""
    todo = iter(jobs)
    latency: list[float] = []
    errors: dict[str, int] = {}
    degraded = [0]

    async def worker():
        conn = raw_http.Connection(base_url, api_headers(), timeout_s=60)
        try:
            for user, text, reference_time in todo:
                began = time.perf_counter()
                try:
                    answer = await conn.post_json("/v1/memories/search", {
                        "query": text, "user_id": user, "limit": LIMIT, "reference_time": reference_time,
                        "cache": False})
                except (raw_http.HttpError, OSError, asyncio.TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if answer.status != 200:
                    errors[str(answer.status)] = errors.get(str(answer.status), 0) + 1
                    continue
                latency.append((time.perf_counter() - began) * 1000)
                degraded[0] += bool(answer.json().get("degraded"))
        finally:
            await conn.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - began
    return {"clients": clients, "latency": summary(latency), "qps": round(len(latency) / wall, 1) if wall else None,
            "degraded_responses": degraded[0], "errors": sum(errors.values()), "error_kinds": errors}


def embedder_difference(texts: list[str], theirs: list[list[float]]) -> float | None:
    """The largest difference between a coordinate of mem0's vectors and .venv's for the same texts
    (0.0: the same embedder, the same weights, the same runtime)."""
    if not theirs:
        return None
    from adapters.embedders import build_embedder

    ours = build_embedder("minilm").embed(texts)
    return float(max(abs(a - b) for row, other in zip(ours.tolist(), theirs) for a, b in zip(row, other)))


def ratios(rs: dict, peer: dict) -> dict:
    """recallstack / mem0 for each figure both have (throughput and hit@k: > 1 favours
    recallstack; latency: < 1 favours recallstack)."""
    def ratio(a, b):
        return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

    out = {"add_per_s": ratio(rs["add"]["per_s"], peer["add"]["per_s"]),
           "add_p50_ms": ratio(rs["add"]["latency"].get("p50_ms"), peer["add"]["latency"].get("p50_ms")),
           "search_p50_ms": ratio(rs["search"]["latency"].get("p50_ms"), peer["search"]["latency"].get("p50_ms")),
           "search_p99_ms": ratio(rs["search"]["latency"].get("p99_ms"), peer["search"]["latency"].get("p99_ms"))}
    if "search_concurrent" in rs and "search_concurrent" in peer:
        out["search_concurrent_qps"] = ratio(rs["search_concurrent"]["qps"], peer["search_concurrent"]["qps"])
        out["search_concurrent_p50_ms"] = ratio(rs["search_concurrent"]["latency"].get("p50_ms"),
                                                peer["search_concurrent"]["latency"].get("p50_ms"))
        out["search_concurrent_p99_ms"] = ratio(rs["search_concurrent"]["latency"].get("p99_ms"),
                                                peer["search_concurrent"]["latency"].get("p99_ms"))
    if "add_concurrent" in rs and "add_concurrent" in peer:
        out["add_concurrent_per_s"] = ratio(rs["add_concurrent"]["per_s"], peer["add_concurrent"]["per_s"])
    for k in KS:
        out[f"hit@{k}"] = ratio(rs["quality"]["overall"].get(f"hit@{k}"), peer["quality"]["overall"].get(f"hit@{k}"))
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs, peer = result["recallstack"], result["mem0"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    names = ("recallstack", "mem0")
    ax = axes[0]
    ax.bar(names, [rs["add"]["per_s"], peer["add"]["per_s"]], color=["tab:blue", "tab:orange"])
    ax.set_title("add, one client (memories/s)")
    ax = axes[1]
    groups = [(f"{label}\n{name}", side.get(key, {}).get("latency", {})) for label, key in
              (("1 client", "search"), ("10 clients", "search_concurrent")) for name, side in zip(names, (rs, peer))]
    for i, (label, key) in enumerate((("p50", "p50_ms"), ("p99", "p99_ms"))):
        ax.bar([x + i * 0.38 for x in range(len(groups))], [g[1].get(key, 0) for g in groups], width=0.38, label=label)
    ax.set_xticks([x + 0.19 for x in range(len(groups))], [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("search latency (texts new to both)")
    ax.legend()
    ax = axes[2]
    for i, (name, side) in enumerate(zip(names, (rs, peer))):
        ax.bar([x + i * 0.38 for x in range(len(KS))], [side["quality"]["overall"].get(f"hit@{k}", 0) for k in KS],
               width=0.38, label=name)
    ax.set_xticks([x + 0.19 for x in range(len(KS))], [f"hit@{k}" for k in KS])
    ax.set_ylim(0, 1)
    ax.set_title("LoCoMo hit@k")
    ax.legend()
    c = result["corpus"]
    fig.suptitle(f"recallstack vs mem0 {peer.get('version', '')} ({peer.get('store')}, infer off), same MiniLM, "
                 f"{c['memories']} memories, {c['questions']} questions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--peer-python", required=True, help="python of the peer's virtual environment")
    ap.add_argument("--conversations", type=int, default=2)
    ap.add_argument("--limit-questions", type=int, default=None, help="at most N questions per conversation")
    ap.add_argument("--clients", type=int, default=10, help="clients of the concurrent passes (0: skip them)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="each question asked this many times (phrased anew) in each latency pass")
    ap.add_argument("--store", default="qdrant", choices=["qdrant", "faiss"], help="mem0's local vector store")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    runid = uuid.uuid4().hex[:8]
    samples = locomo()[:args.conversations] if args.conversations else locomo()
    convs = build_corpus(samples, runid, {1, 2, 3, 4}, args.limit_questions, user_prefix="bench-peer")
    workload = out_dir / "peer_workload.json"
    probes = [convs[0]["memories"][0]["text"], convs[0]["questions"][0]["question"]]
    passes = {"one": fresh_queries(convs, args.rounds, runid),
              "ten": fresh_queries(convs, args.rounds, runid, first_round=args.rounds)}
    workload.write_text(json.dumps({"limit": LIMIT, "conversations": convs, "probe_texts": probes,
                                    "latency_passes": passes}))
    result = {"benchmark": "peer_mem0", "machine": machine(), "limit": LIMIT,
              "corpus": {"conversations": len(convs), "memories": sum(len(c["memories"]) for c in convs),
                         "questions": sum(len(c["questions"]) for c in convs),
                         "latency_pass_searches": {k: len(v) for k, v in passes.items()}, "rounds": args.rounds}}

    log(f"mem0: {result['corpus']['memories']} adds, {result['corpus']['questions']} searches (peer venv)...")
    raw = out_dir / "peer_mem0_raw.json"
    began = time.perf_counter()
    run = subprocess.run([args.peer_python, str(REPO / "bench" / "peer_mem0.py"), "--workload", str(workload),
                          "--out", str(raw), "--clients", str(args.clients), "--store", args.store],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if run.returncode != 0:
        log(run.stdout[-3000:])
        log(f"peer_mem0.py failed (exit {run.returncode})")
        return 1
    peer = json.loads(raw.read_text())
    peer["quality"] = quality(convs, peer.pop("ranked"))
    peer["embedder_max_abs_diff"] = embedder_difference(probes, peer.pop("probe_vectors", []))
    peer["run_s"] = round(time.perf_counter() - began, 1)
    peer["warnings"] = sorted({line.strip() for line in run.stdout.splitlines() if line.strip()})[:10]
    log(f"recallstack: the same through {args.base_url}...")
    try:
        rs = recallstack_side(args.base_url, convs, args.clients, passes)
    except (BenchError, httpx.TransportError) as exc:
        log(f"recallstack side failed: {exc}")
        return 1
    rs["quality"] = quality(convs, rs.pop("ranked"))
    result["recallstack"], result["mem0"] = rs, peer
    result["ratios_recallstack_over_mem0"] = ratios(rs, peer)
    result["targets"] = peer_targets(result)
    result["differences"] = [
        "recallstack's add is acknowledged once the event is on the log (embedding included), before the read models "
        "apply it; 'last_ack_to_searchable_ms' is the wait after the last add of a user until a search with its "
        "consistency token answers. mem0's add returns after the vector is stored in-process.",
        "recallstack is a service on HTTP through the gateway (auth, JSON, a network hop) fusing dense, BM25, temporal "
        "and graph sources with reference_time; mem0 is a library called in-process, semantic search only "
        "(its BM25 needs fastembed models and spaCy, which would be downloaded: not installed).",
        "recallstack searches send cache: false (no answer cache), mem0 has none; mem0 searches use threshold 0 so both "
        "return k results. Quality (hit@k) comes from one pass of the questions as they are; the latency passes send "
        "texts neither side has seen (each question phrased anew and tagged with the run), because recallstack keeps "
        "query vectors in an embedding cache and mem0 embeds every query.",
        f"'{args.clients} clients': for recallstack, {args.clients} concurrent HTTP connections (closed loop) to the "
        f"base URL; for mem0, {args.clients} threads calling Memory.search in its one Python process (a library "
        "has no server: the caller's threads are its concurrency).",
        "Both run on the same machine at the same time as nothing else of the bench; the stack's other processes "
        "(Kafka, Postgres, Neo4j, Redis, projectors) stay up during the mem0 pass.",
    ]
    (out_dir / "peer.json").write_text(json.dumps(result, indent=2))
    plot(result, out_dir / "peer.png")
    workload.unlink(missing_ok=True)
    raw.unlink(missing_ok=True)
    if args.json:  # the suite keeps stdout's JSON; the summary goes to stderr (its terminal and log)
        with contextlib.redirect_stdout(sys.stderr):
            print_summary(result)
        print(json.dumps(result, indent=2))
    else:
        print_summary(result)
    return 0


def print_summary(result: dict) -> None:
    rs, peer, c = result["recallstack"], result["mem0"], result["corpus"]
    print(f"machine: {result['machine'].get('cores')} cores, {result['machine'].get('ram_gib')} GiB RAM; "
          f"{c['memories']} memories of {c['conversations']} LoCoMo conversations, {c['questions']} questions; "
          f"latency passes: {c['latency_pass_searches']} searches")
    print(f"  {'':<34}{'recallstack':>22}{'mem0':>22}  ratio")
    r = result["ratios_recallstack_over_mem0"]

    def both(key: str) -> str:
        a, b = rs.get(key, {}).get("latency", {}), peer.get(key, {}).get("latency", {})
        return f"{a.get('p50_ms')} / {a.get('p99_ms'):>7}".rjust(22) + f"{b.get('p50_ms')} / {b.get('p99_ms'):>7}".rjust(22)

    print(f"  {'add p50 / p99 ms':<34}{both('add')}  p50 {r.get('add_p50_ms')}")
    print(f"  {'search p50 / p99 ms, 1 client':<34}{both('search')}  {r.get('search_p50_ms')} / {r.get('search_p99_ms')}")
    if "search_concurrent" in rs:
        print(f"  {'search p50 / p99 ms, 10 clients':<34}{both('search_concurrent')}  "
              f"{r.get('search_concurrent_p50_ms')} / {r.get('search_concurrent_p99_ms')}")
        print(f"  {'search QPS, 10 clients':<34}{rs['search_concurrent']['qps']:>22}{peer['search_concurrent']['qps']:>22}"
              f"  {r.get('search_concurrent_qps')}")
    print(f"  {'hit@10':<34}{rs['quality']['overall']['hit@10']:>22.3f}{peer['quality']['overall']['hit@10']:>22.3f}"
          f"  {r.get('hit@10')}")
    print(f"  recallstack answers with a source left out: quality pass {rs['quality_pass']['degraded_responses']}, "
          f"1 client {rs['search'].get('degraded_responses')}, "
          f"10 clients {rs.get('search_concurrent', {}).get('degraded_responses')}")
    for t in result["targets"]:
        print(f"  [{t['verdict']}] {t['target']}: {t['measured']}")


if __name__ == "__main__":
    sys.exit(main())
