"""Retrieval quality on LoCoMo: the service's search against BM25 alone and dense alone.

    python bench/locomo_bench.py [--base-url http://127.0.0.1:8080] [--conversations N]
        [--limit-questions N] [--extra-body JSON] [--with-adversarial] [--json]

Needs a running stack (`recallstack up --detach`). For each conversation of the LoCoMo
development split (../shared/bench/locomo/locomo10_dev.json, used in place), every dialog
turn becomes one memory of a fresh user `locomo-<sample_id>-<runid>`: text
"<speaker>: <text>[ [image: <caption>]]", occurred_at its session date (UTC), metadata
{dia_id, session, sample_id}, infer false, loaded through POST /v1/memories/batch. Each
question of categories 1-4 is then asked through POST /v1/memories/search (limit 20,
reference_time = the date of the conversation's last session with turns; the first search of
a conversation carries its last consistency token). Category 5 (adversarial) is skipped unless
--with-adversarial, which reports it apart and keeps it out of "overall".

Beside the service ("fused"), the bench ranks the very same memory texts itself, per
conversation: BM25 alone (Okapi, k1=1.5, b=0.75, bench/retrieval_metrics.py) and dense alone
(cosine over the project's MiniLM embedder, each text embedded once); plus, for reference only,
its own RRF (k=60) of those two. Metrics: hit@k and evidence recall@k for k = 1, 5, 10, 20, per
category and overall. Prints the machine, corpus size, tables, the fused-vs-baselines verdict
and the search latency; writes bench/results/locomo.json and bench/results/locomo.png. The run's
users' memories are deleted at the end (--keep-memories keeps them, e.g. to try queries by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from api_key import api_headers
from locomo_texts import locomo
from machine_info import machine
from percentiles import pct
from result_files import save_and_report
from retrieval_metrics import (BM25, KS, aggregate, memory_text, parse_session_date, question_metrics, rrf,
                               sessions, top_k, valid_evidence)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
METHODS = ("fused", "bm25", "dense")  # the service, then the two baselines the verdict compares against
REFERENCE_METHODS = ("rrf_bm25_dense",)  # the bench's own RRF of the two baselines, for reference only
LIMIT = 20
RETRY_SECONDS = 120

console = Console(stderr=True)
RETRY_REASONS: Counter = Counter()  # "POST <path>: <status or error>" -> retries, reported with the results


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Corpus

def build_corpus(samples: list[dict], runid: str, categories: set[int], limit_questions: int | None,
                 user_prefix: str = "locomo") -> list[dict]:
    """Per conversation: its user `<user_prefix>-<sample_id>-<runid>`, one memory per turn (dia_id,
    session, text, occurred_at), the questions of `categories` with valid evidence, reference_time."""
    convs = []
    for sample in samples:
        sid = sample["sample_id"]
        conv = {"sample_id": sid, "user_id": f"{user_prefix}-{sid}-{runid}", "memories": [], "questions": [],
                "skipped_questions": 0}
        found = sessions(sample["conversation"])
        for number, date_text, turns in found:
            when = parse_session_date(date_text)
            for turn in turns:
                conv["memories"].append({"dia_id": turn["dia_id"], "session": number, "text": memory_text(turn),
                                         "occurred_at": when.isoformat()})
        conv["reference_time"] = parse_session_date(found[-1][1]).isoformat()
        known = {m["dia_id"] for m in conv["memories"]}
        for qa in sample["qa"]:
            if qa.get("category") not in categories:
                continue
            evidence = valid_evidence(qa.get("evidence", []), known)
            if not evidence:
                conv["skipped_questions"] += 1
                continue
            if limit_questions is not None and len(conv["questions"]) >= limit_questions:
                break
            conv["questions"].append({"question": qa["question"], "category": qa["category"], "evidence": evidence})
        convs.append(conv)
    return convs


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)


# ---------------------------------------------------------------------------------------------
# HTTP with bounded retries on 429/503/connection errors; any other 4xx is fatal (a bench bug)

def post(client: httpx.Client, path: str, body: dict | None, headers: dict | None = None,
         method: str = "POST", params: dict | None = None) -> tuple[httpx.Response, float, int]:
    """The answer, the latency of the successful attempt in ms, and the number of retries.

    429, 5xx and connection errors are retried (honouring Retry-After) for up to RETRY_SECONDS,
    which rides out a restart of one API; any other 4xx is fatal (a bench bug or a refused field)."""
    last, deadline, attempt = None, time.monotonic() + RETRY_SECONDS, 0
    while True:
        began = time.perf_counter()
        try:
            answer = client.request(method, path, json=body, headers=headers, params=params)
        except httpx.TransportError as exc:
            answer, last = None, f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - began) * 1000
        if answer is not None and answer.status_code < 400:
            return answer, elapsed, attempt
        if answer is not None and answer.status_code not in (429,) and answer.status_code < 500:
            hint = ""
            if "reference_time" in answer.text:
                hint = " (this query API does not take reference_time yet: try --no-reference-time)"
            raise BenchError(f"{method} {path} -> {answer.status_code}: {answer.text[:600]}{hint}")
        if answer is not None:
            last = f"{answer.status_code} {answer.text[:300]}"
        RETRY_REASONS[f"{method} {path}: {answer.status_code if answer is not None else last.split(':')[0]}"] += 1
        wait = answer.headers.get("retry-after", "") if answer is not None else ""
        pause = min(float(wait) if wait.replace(".", "", 1).isdigit() else 0.25 * 2 ** min(attempt, 4), 10)
        if time.monotonic() + pause > deadline:
            raise BenchError(f"{method} {path} failed {attempt + 1} times in {RETRY_SECONDS} s; last: {last}")
        attempt += 1
        time.sleep(pause)


# ---------------------------------------------------------------------------------------------
# Phases

def load(client: httpx.Client, convs: list[dict], runid: str, batch_size: int, context_turns: int | None = None) -> dict:
    total = sum(len(c["memories"]) for c in convs)
    batch_ms, retries = [], 0
    began = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("loading memories", total=total, info="")
        for conv in convs:
            conv["token"] = None
            for start in range(0, len(conv["memories"]), batch_size):
                chunk = conv["memories"][start:start + batch_size]
                body = {"memories": [{"text": m["text"], "user_id": conv["user_id"], "occurred_at": m["occurred_at"],
                                      "infer": False,
                                      "metadata": {"dia_id": m["dia_id"], "session": m["session"],
                                                   "sample_id": conv["sample_id"]}} for m in chunk]}
                if context_turns is not None:
                    body["context_turns"] = context_turns
                key = f"locomo-{runid}-{conv['sample_id']}-{start}"
                answer, ms, tries = post(client, "/v1/memories/batch", body, headers={"Idempotency-Key": key})
                data = answer.json()
                if len(data.get("results", [])) != len(chunk):
                    raise BenchError(f"batch of {len(chunk)} answered {len(data.get('results', []))} results")
                conv["token"] = data["consistency_token"]
                batch_ms.append(ms)
                retries += tries
                bar.update(task, advance=len(chunk), info=f"conv {conv['sample_id']}")
    return {"seconds": round(time.perf_counter() - began, 2), "memories": total, "batches": len(batch_ms),
            "batch_size": batch_size, "batch_median_ms": round(statistics.median(batch_ms), 1),
            "batch_max_ms": round(max(batch_ms), 1), "retries": retries, "context_turns": context_turns}


def baselines(convs: list[dict]) -> dict:
    """BM25, dense and their RRF rankings (dia_ids, best first) for every question; timings."""
    from adapters.embedders import build_embedder

    began = time.perf_counter()
    embedder = build_embedder("minilm")
    load_s = time.perf_counter() - began
    texts = [m["text"] for c in convs for m in c["memories"]]
    queries = [q["question"] for c in convs for q in c["questions"]]
    everything = texts + queries
    vectors = []
    began = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("embedding (dense baseline)", total=len(everything), info="")
        for start in range(0, len(everything), 128):
            vectors.append(embedder.embed(everything[start:start + 128]))
            bar.update(task, advance=len(everything[start:start + 128]), info="")
    vectors = np.vstack(vectors)
    embed_s = time.perf_counter() - began
    doc_vecs, query_vecs = vectors[:len(texts)], vectors[len(texts):]
    began = time.perf_counter()
    d0 = q0 = 0
    for conv in convs:
        n, m = len(conv["memories"]), len(conv["questions"])
        docs, qs = doc_vecs[d0:d0 + n], query_vecs[q0:q0 + m]
        d0, q0 = d0 + n, q0 + m
        ids = [mem["dia_id"] for mem in conv["memories"]]
        bm25 = BM25([mem["text"] for mem in conv["memories"]])
        for question, qv in zip(conv["questions"], qs):
            sparse = top_k(bm25.scores(question["question"]), LIMIT, positive_only=True)
            dense = top_k(docs @ qv, LIMIT)
            question["ranked"] = {"bm25": [ids[i] for i in sparse], "dense": [ids[i] for i in dense],
                                  "rrf_bm25_dense": [ids[i] for i in rrf([sparse, dense], k=60, limit=LIMIT)]}
    return {"embedder": embedder.model_id, "embedder_load_s": round(load_s, 2), "texts_embedded": len(everything),
            "embed_s": round(embed_s, 2), "rank_s": round(time.perf_counter() - began, 2)}


def stored_dia_id(conv: dict, result: dict) -> str | None:
    """A search result's dia_id when every turn was stored as one memory (its metadata)."""
    return (result.get("metadata") or {}).get("dia_id")


@dataclass(frozen=True)
class Asker:
    """How one method is asked: as user conv[user_key], the first search of a conversation with
    conv[token_key]; dia_ids_of(conv, result) maps a result to its dia_id, several (a memory
    extracted from several turns) or None; stored_of(conv) is how many memories the user has (a
    shorter list than min(LIMIT, that) is counted as short)."""
    method: str = "fused"
    user_key: str = "user_id"
    token_key: str | None = "token"
    dia_ids_of: Callable[[dict, dict], str | Collection[str] | None] = stored_dia_id
    stored_of: Callable[[dict], int] = lambda conv: len(conv["memories"])


def ask(client: httpx.Client, convs: list[dict], extra_body: dict, reference_time: bool) -> dict:
    """The service's answers (method "fused") to every question."""
    return ask_each(client, convs, extra_body, reference_time, (Asker(),))["fused"]


def ask_each(client: httpx.Client, convs: list[dict], extra_body: dict, reference_time: bool,
             askers: tuple[Asker, ...]) -> dict[str, dict]:
    """Every question through the service once per asker, the askers in turn for each question
    (so a burst of load on the machine falls on all of them alike). The ranking (dia_ids per
    result, best first) goes to question["ranked"][method]; the report per method."""
    total = sum(len(c["questions"]) for c in convs)
    timing = {a.method: {"steady": [], "first": [], "seconds": 0.0} for a in askers}
    odds = {a.method: {"degraded": Counter(), "sources": Counter(), "results_without_dia_id": 0, "foreign_results": 0,
                       "short_result_lists": 0, "duplicate_ids": 0, "scores_not_descending": 0, "retries": 0,
                       "empty_results": 0, "searches_with_a_degraded_source": 0} for a in askers}
    label = "asking questions" + ("" if len(askers) == 1 else f" ({', '.join(a.method for a in askers)})")
    with progress_bar() as bar:
        task = bar.add_task(label, total=total, info="")
        for conv in convs:
            known = {m["dia_id"] for m in conv["memories"]}
            for i, question in enumerate(conv["questions"]):
                for asker in askers:
                    began = time.perf_counter()
                    _ask_one(client, conv, known, i, question, asker, extra_body, reference_time,
                             timing[asker.method], odds[asker.method])
                    timing[asker.method]["seconds"] += time.perf_counter() - began
                bar.update(task, advance=1, info=f"conv {conv['sample_id']}")
    out = {}
    for method, odd in odds.items():
        t = timing[method]
        odd["degraded"], odd["sources"] = dict(odd["degraded"]), dict(odd["sources"])
        out[method] = {"seconds": round(t["seconds"], 2), "searches": total,
                       "latency_ms": {"steady": summary(t["steady"]), "first_of_conversation_with_token": summary(t["first"])},
                       "observations": odd}
    return out


def _ask_one(client: httpx.Client, conv: dict, known: set[str], i: int, question: dict, asker: Asker,
             extra_body: dict, reference_time: bool, timing: dict, odd: dict) -> None:
    method = asker.method
    body = {"query": question["question"], "user_id": conv[asker.user_key], "limit": LIMIT}
    if reference_time:
        body["reference_time"] = conv["reference_time"]
    if i == 0 and asker.token_key and conv.get(asker.token_key):
        body["consistency_token"] = conv[asker.token_key]
    body.update(extra_body)
    answer, ms, tries = post(client, "/v1/memories/search", body)
    timing["first" if i == 0 else "steady"].append(ms)
    odd["retries"] += tries
    data = answer.json()
    results = data.get("results", [])
    degraded = data.get("degraded") or []
    for name in degraded:
        odd["degraded"][json.dumps(name, sort_keys=True) if not isinstance(name, str) else name] += 1
    question["degraded" if method == "fused" else f"degraded_{method}"] = sorted(
        {d.get("source", "?") if isinstance(d, dict) else str(d) for d in degraded})
    odd["searches_with_a_degraded_source"] += bool(degraded)
    ranked = []
    for r in results:
        dia = asker.dia_ids_of(conv, r)
        ids = [dia] if isinstance(dia, str) else list(dia or ())
        if not ids:
            odd["results_without_dia_id"] += 1
        elif (any(d not in known for d in ids)
              or (r.get("metadata") or {}).get("sample_id", conv["sample_id"]) != conv["sample_id"]):
            odd["foreign_results"] += 1
        ranked.append(dia)
        odd["sources"].update((r.get("ranks") or {}).keys())
    if not results:
        odd["empty_results"] += 1
    if len(results) < min(LIMIT, asker.stored_of(conv)):
        odd["short_result_lists"] += 1
    if len({r.get("id") for r in results}) != len(results):
        odd["duplicate_ids"] += 1
    scores = [r.get("score") for r in results]
    if all(isinstance(s, (int, float)) for s in scores) and any(a < b for a, b in zip(scores, scores[1:])):
        odd["scores_not_descending"] += 1
    question.setdefault("ranked", {})[method] = ranked
    question[f"{method}_top3"] = ranked[:3]
    question[f"{method}_top3_text"] = [r.get("memory") for r in results[:3]]
    question[f"{method}_ids"] = [r.get("id") for r in results]


@contextmanager
def deleted_afterwards(client: httpx.Client, convs: list[dict], keep: bool, result: dict):
    """Whatever the run loaded (the conversations with a token) is deleted at the end, also
    after a failure, unless `keep`; the report goes to result["cleanup"]."""
    try:
        yield
    finally:
        if not keep and any(c.get("token") for c in convs):
            result["cleanup"] = cleanup(client, [c for c in convs if c.get("token")])


def failed(name: str, base_url: str, exc: Exception) -> int:
    """The exit status of a bench that failed: 1, with why on stderr."""
    if isinstance(exc, httpx.TransportError):
        console.print(f"[red]cannot reach {base_url}:[/red] {exc} (is the stack up? `recallstack up --detach`)")
    else:
        console.print(f"[red]{name} failed:[/red] {exc}")
    return 1


def cleanup(client: httpx.Client, convs: list[dict]) -> dict:
    """Delete the run's memories (one scope delete per bench user), so runs do not pile up."""
    deleted, failures = 0, []
    for conv in convs:
        try:
            post(client, "/v1/memories", None, method="DELETE", params={"user_id": conv["user_id"]})
            deleted += 1
        except BenchError as exc:
            failures.append(f"{conv['user_id']}: {exc}")
    for line in failures:
        console.print(f"[yellow]could not delete the memories of {line}[/yellow]")
    return {"users_deleted": deleted, "failed": failures}


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": round(statistics.median(values), 1), "p99": round(pct(values, 99), 1),
            "mean": round(statistics.fmean(values), 1), "max": round(max(values), 1)}


# ---------------------------------------------------------------------------------------------
# Report

def evaluate(convs: list[dict], methods: tuple[str, ...]) -> dict:
    out = {}
    for method in methods:
        rows = [(q["category"], question_metrics(q["ranked"][method], q["evidence"])) for c in convs for q in c["questions"]]
        out[method] = aggregate(rows)
    return out


def verdict(metrics: dict) -> dict:
    """Does fused beat both baselines (strictly) at k=5 and k=10, on hit and recall, overall and per category?"""
    checks, shortfalls = {}, []
    for group in metrics["fused"]:
        for k in (5, 10):
            for kind in ("hit", "recall"):
                key = f"{kind}@{k}"
                fused = metrics["fused"][group][key]
                best_name = max(("bm25", "dense"), key=lambda m: metrics[m][group][key])
                best = metrics[best_name][group][key]
                beats = fused > metrics["bm25"][group][key] and fused > metrics["dense"][group][key]
                if group == "overall":
                    checks[key] = beats
                if not beats:
                    shortfalls.append({"group": group, "metric": key, "fused": round(fused, 4),
                                       "best_baseline": best_name, "baseline": round(best, 4)})
    return {"fused_beats_both_overall": checks, "all_overall": all(checks.values()), "shortfalls": shortfalls}


def group_label(group: str) -> str:
    if group == "overall":
        return "overall (1-4)"
    return f"{group} {CATEGORY_NAMES.get(int(group), '')}"


def print_report(result: dict) -> None:
    out = Console(width=None if sys.stdout.isatty() else 150)  # piped (make ... | tee): keep tables unwrapped
    c = result["corpus"]
    out.print(f"[bold]LoCoMo retrieval[/bold]  {result['base_url']}  run {result['runid']}")
    out.print(f"machine: {result['machine']}")
    out.print(f"corpus: {c['conversations']} conversations, {c['memories']} memories, {c['questions']} questions "
              f"(categories {c['categories']}; {c['skipped_no_valid_evidence']} skipped for no valid evidence; "
              f"category 5 adversarial {'reported apart, not in overall' if 5 in c['categories'] else 'skipped'})")
    out.print(f"search body extras: {json.dumps(result['search']['extra_body'])}  "
              f"reference_time: {'sent' if result['search']['reference_time'] else 'NOT sent (--no-reference-time)'}")
    for method in result["methods"]:
        label = {"fused": "fused (the service's search)", "bm25": "BM25 alone (bench)", "dense": "dense alone (bench, MiniLM cosine)",
                 "rrf_bm25_dense": "RRF(BM25, dense), k=60 (bench, reference only)"}[method]
        table = Table(title=label, title_justify="left")
        table.add_column("category")
        table.add_column("n", justify="right")
        for kind in ("hit", "recall"):
            for k in KS:
                table.add_column(f"{kind}@{k}", justify="right")
        for group, m in result["metrics"][method].items():
            table.add_row(group_label(group), str(m["n"]), *[f"{m[f'{kind}@{k}']:.3f}" for kind in ("hit", "recall") for k in KS])
        out.print(table)
    table = Table(title="overall (categories 1-4), side by side", title_justify="left")
    table.add_column("method")
    for kind in ("hit", "recall"):
        for k in KS:
            table.add_column(f"{kind}@{k}", justify="right")
    for method in result["methods"]:
        m = result["metrics"][method]["overall"]
        table.add_row(method, *[f"{m[f'{kind}@{k}']:.3f}" for kind in ("hit", "recall") for k in KS])
    out.print(table)
    v = result["verdict"]
    checks = ", ".join(f"{key} {'yes' if ok else 'NO'}" for key, ok in v["fused_beats_both_overall"].items())
    out.print(f"[bold]fused beats BOTH baselines at k=5 and k=10 overall: {'YES' if v['all_overall'] else 'NO'}[/bold] ({checks})")
    if v["shortfalls"]:
        out.print("where fused does not beat both baselines:")
        for s in v["shortfalls"]:
            out.print(f"  {group_label(s['group']):22} {s['metric']:10} fused {s['fused']:.3f} <= {s['best_baseline']} {s['baseline']:.3f}")
    else:
        out.print("fused beats both baselines in every category at k=5 and k=10")
    a, lo = result["ask"], result["load"]
    lat = a["latency_ms"]
    out.print(f"loading: {lo['memories']} memories in {lo['batches']} batches of up to {lo['batch_size']}: {lo['seconds']} s "
              f"(batch median {lo['batch_median_ms']} ms, max {lo['batch_max_ms']} ms, retries {lo['retries']})")
    out.print(f"asking: {a['searches']} searches in {a['seconds']} s, one client, sequential, through the gateway")
    out.print(f"search latency: median {lat['steady'].get('median')} ms, p99 {lat['steady'].get('p99')} ms, "
              f"max {lat['steady'].get('max')} ms (n={lat['steady']['n']}); first search of each conversation "
              f"(waits for its consistency token): median {lat['first_of_conversation_with_token'].get('median')} ms, "
              f"max {lat['first_of_conversation_with_token'].get('max')} ms")
    if result.get("metrics_without_degraded_searches"):
        clean = result["metrics_without_degraded_searches"]
        n = next(iter(clean.values()))["n"]
        out.print(f"[yellow]{result['corpus']['questions'] - n} searches had a degraded source[/yellow]; on the {n} "
                  "where every source answered (overall): " + "; ".join(
                      f"{m} hit@5 {v['hit@5']:.3f} hit@10 {v['hit@10']:.3f} recall@5 {v['recall@5']:.3f} recall@10 {v['recall@10']:.3f}"
                      for m, v in clean.items()))
    b = result["baselines"]
    out.print(f"baselines: {b['texts_embedded']} texts embedded in {b['embed_s']} s ({b['embedder']}), ranked in {b['rank_s']} s")
    out.print(f"observations: {json.dumps(a['observations'])}")
    if result["retry_reasons"]:
        out.print(f"[yellow]retried (an API restarting or overloaded?): {json.dumps(result['retry_reasons'])}[/yellow]")
    out.print(f"written: {result['files']['json']}, {result['files']['plot']}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = result["methods"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    width = 0.8 / len(methods)
    for ax, kind in zip(axes, ("hit", "recall")):
        for i, method in enumerate(methods):
            values = [result["metrics"][method]["overall"][f"{kind}@{k}"] for k in KS]
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(KS))]
            bars = ax.bar(xs, values, width, label=method)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(len(KS)), [f"{kind}@{k}" for k in KS])
        ax.set_ylim(0, 1)
        ax.set_title(f"{'hit' if kind == 'hit' else 'evidence recall'}@k, categories 1-4")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    c = result["corpus"]
    fig.suptitle(f"LoCoMo retrieval: {c['conversations']} conversations, {c['memories']} memories, {c['questions']} questions")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--conversations", type=int, default=None, help="only the first N conversations (quick run)")
    ap.add_argument("--limit-questions", type=int, default=None, help="at most N questions per conversation")
    ap.add_argument("--extra-body", default="{}", help='JSON merged into every search body, e.g. \'{"sources": ["dense"]}\'')
    ap.add_argument("--with-adversarial", action="store_true", help="also ask category 5, reported apart (not in overall)")
    ap.add_argument("--no-reference-time", action="store_true", help="do not send reference_time (older query APIs)")
    ap.add_argument("--batch-size", type=int, default=250, help="memories per POST /v1/memories/batch (1-1000)")
    ap.add_argument("--context-turns", type=int, default=None,
                    help="the batches' context_turns (turns before each memory it carries; default: the server's)")
    ap.add_argument("--keep-memories", action="store_true", help="do not delete the run's users' memories at the end")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    ap.add_argument("--out", default=str(RESULTS), help="folder for locomo.json and locomo.png")
    args = ap.parse_args()
    try:
        extra_body = json.loads(args.extra_body)
    except json.JSONDecodeError as exc:
        ap.error(f"--extra-body is not JSON: {exc}")
    if not isinstance(extra_body, dict):
        ap.error("--extra-body must be a JSON object")
    if not 1 <= args.batch_size <= 1000:
        ap.error("--batch-size must be 1-1000")

    runid = uuid.uuid4().hex[:8]
    categories = {1, 2, 3, 4} | ({5} if args.with_adversarial else set())
    samples = locomo()[:args.conversations] if args.conversations else locomo()
    convs = build_corpus(samples, runid, categories, args.limit_questions)
    out_dir = Path(args.out)
    result = {
        "benchmark": "locomo_retrieval", "runid": runid, "base_url": args.base_url, "machine": machine(),
        "corpus": {"conversations": len(convs), "memories": sum(len(c["memories"]) for c in convs),
                   "questions": sum(len(c["questions"]) for c in convs),
                   "questions_per_category": dict(sorted(Counter(str(q["category"]) for c in convs for q in c["questions"]).items())),
                   "categories": sorted(categories), "skipped_no_valid_evidence": sum(c["skipped_questions"] for c in convs),
                   "limit_questions_per_conversation": args.limit_questions,
                   "users": {str(c["sample_id"]): c["user_id"] for c in convs},
                   "reference_times": {str(c["sample_id"]): c["reference_time"] for c in convs}},
        "search": {"limit": LIMIT, "extra_body": extra_body, "reference_time": not args.no_reference_time},
        "methods": list(METHODS + REFERENCE_METHODS),
        "files": {"json": str(out_dir / "locomo.json"), "plot": str(out_dir / "locomo.png")},
    }
    try:
        with httpx.Client(headers=api_headers(), base_url=args.base_url, timeout=httpx.Timeout(120.0, connect=5.0)) as client:
            # A search before loading: a body the query API refuses fails here, not after the load.
            # Its own user: a search of a conversation's user before its load could leave
            # per-user state (corpus statistics, caches) behind that the bench would then measure.
            probe = {"query": "preflight", "user_id": f"locomo-preflight-{runid}", "limit": LIMIT}
            if not args.no_reference_time:
                probe["reference_time"] = convs[0]["reference_time"]
            post(client, "/v1/memories/search", probe | extra_body)
            with deleted_afterwards(client, convs, args.keep_memories, result):
                result["load"] = load(client, convs, runid, args.batch_size, args.context_turns)
                result["baselines"] = baselines(convs)
                result["ask"] = ask(client, convs, extra_body, not args.no_reference_time)
    except (BenchError, httpx.TransportError) as exc:
        return failed("locomo bench", args.base_url, exc)
    result["retry_reasons"] = dict(RETRY_REASONS)
    result["metrics"] = evaluate(convs, tuple(result["methods"]))
    result["verdict"] = verdict({m: result["metrics"][m] for m in METHODS})
    clean = [dict(c, questions=[q for q in c["questions"] if not q.get("degraded")]) for c in convs]
    if 0 < sum(len(c["questions"]) for c in clean) < result["corpus"]["questions"]:
        # Sources that missed their budget change the fused ranking: the same comparison on
        # the searches where every source answered, so quality and timeouts can be told apart.
        result["metrics_without_degraded_searches"] = {
            m: v["overall"] for m, v in evaluate(clean, tuple(result["methods"])).items()}
    result["per_question"] = [{"sample_id": c["sample_id"], "question": q["question"], "category": q["category"],
                               "evidence": q["evidence"], "fused_top3": q.get("fused_top3"),
                               "degraded": q.get("degraded", []),
                               "hit@10": {m: question_metrics(q["ranked"][m], q["evidence"])["hit@10"] for m in result["methods"]}}
                              for c in convs for q in c["questions"]]
    save_and_report(result, out_dir, plot, print_report, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
