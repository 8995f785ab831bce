"""The offline extractor ("infer on") against raw turns, on LoCoMo, side by side in one run.

    python bench/extraction_bench.py [--base-url http://127.0.0.1:8080] [--conversations N]
        [--limit-questions N] [--keep-memories] [--json]

Needs a running stack with its extraction worker (`recallstack up --detach` starts
`worker-extract`). For each conversation of the LoCoMo development split
(../shared/bench/locomo/locomo10_dev.json, bench/locomo_texts.py) the bench makes two fresh users:

- `raw-<sample_id>-<runid>`: every turn one memory, exactly as bench/locomo_bench.py loads it
  (POST /v1/memories/batch, infer false, metadata {dia_id, session, sample_id});
- `infer-<sample_id>-<runid>`: one POST /v1/memories per session with `messages` = every turn
  as {"role": "user", "content": "<Speaker>: <text>[ [image: <caption>]]"} (the raw memory's
  text), `infer: true`, `occurred_at` = the session date, metadata {sample_id, session}. The
  answer names the session's `conversation_id` and its ConversationReceived's log position;
  the bench keeps conversation_id -> the session's dia_ids in message order.

It then waits for the extraction worker (consumer group `recallstack.worker.extract`) to have
committed past every one of those ConversationReceived events (its events and its offset
commit are one Kafka transaction, so what it appended is then in the log), and for the
Postgres projector (group `recallstack.projector.postgres`) to have applied the log up to
where it ended at that moment. A consistency token of the adds would not do: it points at the
conversations, the worker appends later.

Mapping a memory back to turns: an extracted memory's `metadata.source` is
{conversation_id, message_indexes, reason}; message_indexes index the session's messages, so
they give dia_ids. This is the causation route: the worker's MemoryCreated has causation_id =
the event id of the ConversationReceived whose conversation_id is in metadata.source (the
bench checks that on the log). An UPDATE keeps the memory's metadata (and so its source turns)
while taking the new fact's text; a DELETE removes it.

Every question of categories 1-4 (limit 20, reference_time = the conversation's last session
date, as locomo_bench) is asked through POST /v1/memories/search of both users, one right after
the other (a burst of load on a shared machine falls on both alike). A result's
dia_ids: its metadata dia_id (raw) or its mapped dia_ids (infer). hit@k: any evidence dia_id
among the top-k results' dia_ids; evidence recall@k: the fraction of the evidence dia_ids
they cover; k = 1, 5, 10, 20, overall and per category.

Also reported: turns vs memories stored per conversation, the turns and the evidence turns
some stored memory maps back to (the ceiling of infer's recall), the worker's decisions
(ADD / UPDATE / DELETE counted on the log for the run's users; NONE from the worker's
/metrics counter over the run, exact only when nobody else used the worker meanwhile), the
extraction throughput (sessions and turns per second from the first infer add until the
worker passed the last one), search latency, the machine and the corpus. Tables on stdout
(or --json), bench/results/extraction.json and bench/results/extraction.png. The run's users
are deleted at the end unless --keep-memories. Also the graph each infer user ends up with
(GET /v1/graph, measured as bench/graph_bench.py measures a conversation's).

The LLM path: `make bench-extraction-llm` starts bench/canned_llm.py (an OpenAI-compatible
endpoint with scripted answers: no model runs here), starts the stack with
RECALLSTACK_LLM_BASE_URL pointing at it, so the worker extracts and reconciles through the
real LLM client, prompts and JSON validation, and runs this bench with --canned-llm-url, which
reports the endpoint's requests by prompt. The facts are then the canned model's, so the run
proves the path and measures its cost, not a model's quality.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from consolidation.extraction import ACTOR as WORKER_ACTOR
from consolidation.extraction import GROUP as EXTRACT_GROUP
from consolidation.extraction import PG_GROUP
from api_key import api_headers
from graph_bench import conversation_figures, read_graph
from locomo_texts import locomo
from machine_info import machine
from result_files import save_and_report
from locomo_bench import (LIMIT, RETRY_REASONS, Asker, BenchError, ask_each, build_corpus, cleanup, evaluate,
                          failed, group_label, load, post, progress_bar)
from retrieval_metrics import KS, question_metrics
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("raw", "infer")
EXAMPLES = 12
SHORT_WORDS = 5  # memories of at most this many words (after "Speaker:") are listed apart: filler kept?

console = Console(stderr=True)


# ---------------------------------------------------------------------------------------------
# Corpus: the raw bench's corpus, plus the sessions as conversations

def add_sessions(conv: dict, runid: str) -> None:
    """conv["sessions"]: per session its messages (the raw memory texts, in turn order), dia_ids, date."""
    by_number: dict[int, dict] = {}
    for m in conv["memories"]:
        s = by_number.setdefault(m["session"], {"session": m["session"], "occurred_at": m["occurred_at"],
                                                "dia_ids": [], "messages": []})
        s["dia_ids"].append(m["dia_id"])
        s["messages"].append({"role": "user", "content": m["text"]})
    conv["sessions"] = list(by_number.values())
    conv["infer_user_id"] = f"infer-{conv['sample_id']}-{runid}"
    conv["sources"] = {}  # conversation_id -> the session's dia_ids in message order


def extracted_dia_ids(conv: dict, result: dict) -> tuple[str, ...] | None:
    """The dia_ids an extracted memory came from (metadata.source), None when it has no source."""
    source = (result.get("metadata") or {}).get("source") or {}
    dia_ids = conv["sources"].get(source.get("conversation_id"))
    if dia_ids is None:
        return None
    return tuple(dia_ids[i] for i in source.get("message_indexes") or () if isinstance(i, int) and 0 <= i < len(dia_ids))


# ---------------------------------------------------------------------------------------------
# Phases

def load_conversations(client: httpx.Client, convs: list[dict], runid: str) -> dict:
    """One infer add per session; keeps each session's conversation_id and log position."""
    from domain.consistency import ConsistencyToken

    total = sum(len(c["sessions"]) for c in convs)
    began = time.perf_counter()
    ms_all, retries = [], 0
    with progress_bar() as bar:
        task = bar.add_task("adding sessions (infer: true)", total=total, info="")
        for conv in convs:
            for s in conv["sessions"]:
                body = {"user_id": conv["infer_user_id"], "messages": s["messages"], "infer": True,
                        "occurred_at": s["occurred_at"],
                        "metadata": {"sample_id": conv["sample_id"], "session": s["session"]}}
                answer, ms, tries = post(client, "/v1/memories", body,
                                         headers={"Idempotency-Key": f"extract-{runid}-{conv['sample_id']}-{s['session']}"})
                data = answer.json()
                if data.get("status") != "queued" or not data.get("conversation_id"):
                    raise BenchError(f"an add with infer: true was not queued: {json.dumps(data)[:400]} "
                                     "(is this command API older than the extraction worker?)")
                token = ConsistencyToken.decode(data["consistency_token"])
                if len(token.offsets) != 1:
                    raise BenchError(f"one ConversationReceived expected, token {data['consistency_token']}")
                s["conversation_id"], s["position"] = data["conversation_id"], token.offsets[0]
                s["sent_s"] = time.perf_counter() - began
                conv["sources"][data["conversation_id"]] = s["dia_ids"]
                ms_all.append(ms)
                retries += tries
                bar.update(task, advance=1, info=f"conv {conv['sample_id']} session {s['session']}")
    return {"began": began, "seconds": round(time.perf_counter() - began, 2), "adds": total,
            "add_median_ms": round(sorted(ms_all)[len(ms_all) // 2], 1), "add_max_ms": round(max(ms_all), 1),
            "retries": retries}


async def _drain(bootstrap: str, convs: list[dict], began: float, timeout_s: float, stall_s: float) -> dict:
    from adapters.kafka_log import GroupProgress

    sessions = [s for c in convs for s in c["sessions"]]
    extract, projected = GroupProgress(bootstrap, EXTRACT_GROUP), GroupProgress(bootstrap, PG_GROUP)
    await extract.start()
    await projected.start()
    try:
        pending, last_progress = list(sessions), time.perf_counter()
        deadline = time.perf_counter() + timeout_s
        with progress_bar() as bar:
            task = bar.add_task("extraction worker", total=len(sessions), info="")
            while pending:
                committed = await extract.committed()
                now = time.perf_counter()
                still = []
                for s in pending:
                    partition, offset = s["position"]
                    if committed.get(partition, 0) > offset:
                        s["extracted_s"] = now - began
                    else:
                        still.append(s)
                if len(still) < len(pending):
                    last_progress = now
                    bar.update(task, advance=len(pending) - len(still))
                pending = still
                done = sum(all("extracted_s" in s for s in c["sessions"]) for c in convs)
                bar.update(task, info=f"{done}/{len(convs)} conversations")
                if not pending:
                    break
                if now > deadline or now - last_progress > stall_s:
                    first = pending[0]
                    raise BenchError(
                        f"the extraction worker has not passed {len(pending)} of {len(sessions)} sessions after "
                        f"{now - began:.0f} s ({'no progress for ' + str(round(now - last_progress)) + ' s' if now <= deadline else 'timeout'}); "
                        f"first pending at partition {first['position'][0]} offset {first['position'][1]}, group "
                        f"{EXTRACT_GROUP} committed {committed.get(first['position'][0])}: is worker-extract running "
                        "(`recallstack status`)?")
                await asyncio.sleep(0.2)
            extracted_s = time.perf_counter() - began
            # Everything the worker appended for these sessions is before the log's end now.
            partitions = sorted({s["position"][0] for s in sessions})
            ends = await projected.ends()
            wanted = {p: ends[p] for p in partitions}
            start = await projected.committed()
            total = sum(max(0, wanted[p] - start.get(p, 0)) for p in partitions)
            task = bar.add_task("postgres projector", total=max(total, 1), info="")
            while True:
                done = await projected.committed()
                left = sum(max(0, wanted[p] - done.get(p, 0)) for p in partitions)
                bar.update(task, completed=max(total, 1) - left if total else 1, info=f"{left} records behind")
                if left == 0:
                    break
                if time.perf_counter() > deadline:
                    raise BenchError(f"the Postgres projector is still {left} records behind on partitions {partitions}")
                await asyncio.sleep(0.2)
        return {"extracted_s": extracted_s, "projected_s": time.perf_counter() - began, "ends": wanted}
    finally:
        await extract.close()
        await projected.close()


async def _backlog(bootstrap: str) -> dict:
    """How far the extraction worker is behind before the run (records, markers included)."""
    from adapters.kafka_log import GroupProgress

    extract = GroupProgress(bootstrap, EXTRACT_GROUP)
    await extract.start()
    try:
        ends, committed = await extract.ends(), await extract.committed()
    finally:
        await extract.close()
    if not committed:
        raise BenchError(f"consumer group {EXTRACT_GROUP} has no offsets: the extraction worker never ran "
                         "(`recallstack up --detach` starts worker-extract)")
    return {"records_behind": sum(max(0, ends[p] - committed.get(p, 0)) for p in ends), "log_records": sum(ends.values())}


async def _decisions_on_log(bootstrap: str, convs: list[dict], ends: dict[int, int]) -> dict:
    """The worker's events for the run's infer users, read back from the log; the causation check."""
    import logging

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from adapters import kafka_codec
    from settings import EVENTS_TOPIC

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    users = {c["infer_user_id"]: c for c in convs}
    keys = {u.encode() for u in users}
    first: dict[int, int] = {}
    for c in convs:
        for s in c["sessions"]:
            p, o = s["position"]
            first[p] = min(first.get(p, o), o)
    import bootstrap as wiring

    keyring = wiring.keyring()  # `keys` are the users' record keys
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", max_poll_records=2000)
    await consumer.start()
    conversations: dict[str, str] = {}  # ConversationReceived event_id -> conversation_id
    memory_events = []
    try:
        parts = [TopicPartition(EVENTS_TOPIC, p) for p in sorted(first)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, first[tp.partition])
        deadline = time.perf_counter() + 120
        while True:
            records = await consumer.getmany(timeout_ms=500)
            for messages in records.values():
                for m in messages:
                    if m.key not in keys:
                        continue
                    kind = dict(m.headers or ()).get(kafka_codec.TYPE_HEADER, b"").decode()
                    if kind not in ("ConversationReceived", "MemoryCreated", "MemoryUpdated", "MemoryDeleted"):
                        continue
                    event = await keyring.decode(m.value, m.headers)  # sealed (docs/security.md)
                    if kind == "ConversationReceived":
                        conversations[event.event_id] = event.conversation_id
                    elif event.actor.startswith(WORKER_ACTOR):
                        memory_events.append((kind, event))
            positions = {tp.partition: await consumer.position(tp) for tp in parts}
            if all(positions[p] >= ends.get(p, 0) for p in positions):
                break
            if time.perf_counter() > deadline:
                raise BenchError(f"reading the worker's events back from the log took over 120 s (at {positions})")
    finally:
        await consumer.stop()
        await keyring.store.close()
    out = {"actions": Counter(), "actors": Counter(), "per_user": {u: Counter() for u in users},
           "causation_checked": 0, "causation_ok": 0, "causation_failures": [], "updates": [], "deletes": []}
    texts: dict[str, str] = {}
    sources: dict[str, dict] = {}  # memory id -> metadata.source of its MemoryCreated
    for kind, event in memory_events:
        action = {"MemoryCreated": "ADD", "MemoryUpdated": "UPDATE", "MemoryDeleted": "DELETE"}[kind]
        out["actions"][action] += 1
        out["actors"][event.actor] += 1
        out["per_user"][event.user_id][action] += 1
        conv = users[event.user_id]
        cause = conversations.get(event.causation_id)
        if kind == "MemoryCreated":
            texts[event.memory_id] = event.text
            source = (event.metadata or {}).get("source") or {}
            sources[event.memory_id] = source
            out["causation_checked"] += 1
            if cause is not None and cause == source.get("conversation_id") and cause in conv["sources"]:
                out["causation_ok"] += 1
            elif len(out["causation_failures"]) < EXAMPLES:
                out["causation_failures"].append({"memory_id": event.memory_id, "causation_id": event.causation_id,
                                                  "caused_by_conversation": cause, "source": source})
        else:
            session = next((s["session"] for s in conv["sessions"] if s.get("conversation_id") == cause), None)
            row = {"sample_id": conv["sample_id"], "memory_id": event.memory_id, "by_session": session,
                   "before": texts.get(event.memory_id), "reason": event.reason,
                   "source": {k: v for k, v in sources.get(event.memory_id, {}).items() if k != "reason"}}
            if kind == "MemoryUpdated":
                row["after"] = event.text
                texts[event.memory_id] = event.text
                out["updates"].append(row)
            else:
                out["deletes"].append(row)
    out["actions"], out["actors"] = dict(out["actions"]), dict(out["actors"])
    out["per_user"] = {u: dict(v) for u, v in out["per_user"].items()}
    out["conversations_on_log"] = len(conversations)
    return out


_METRIC = re.compile(r'^recallstack_extraction_decisions_total\{action="([A-Z]+)"\}\s+([0-9.e+]+)$', re.M)


def worker_decisions(url: str) -> dict | None:
    """The worker's decision counters (process lifetime), None when /metrics is not reachable."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None
    return {action: float(value) for action, value in _METRIC.findall(text)}


def stored_memories(client: httpx.Client, user_id: str) -> list[dict]:
    rows, page = [], 1
    while True:
        answer, _, _ = post(client, "/v1/memories", None, method="GET",
                            params={"user_id": user_id, "page": page, "page_size": 1000})
        data = answer.json()
        rows += data.get("results", [])
        if not data.get("has_more"):
            return rows
        page += 1


# ---------------------------------------------------------------------------------------------
# What was stored

def storage(client: httpx.Client, convs: list[dict]) -> dict:
    per_conv = []
    for conv in convs:
        raw_total = post(client, "/v1/memories", None, method="GET",
                         params={"user_id": conv["user_id"], "page_size": 1})[0].json().get("total")
        rows = stored_memories(client, conv["infer_user_id"])
        conv["infer_stored"] = len(rows)
        conv["infer_rows"] = rows
        turns_covered: set[str] = set()
        unmapped = 0
        for r in rows:
            ids = extracted_dia_ids(conv, r)
            if not ids:
                unmapped += 1
            turns_covered.update(ids or ())
        conv["covered"] = turns_covered
        evidence = {e for q in conv["questions"] for e in q["evidence"]}
        per_conv.append({
            "sample_id": conv["sample_id"], "sessions": len(conv["sessions"]), "turns": len(conv["memories"]),
            "raw_memories": raw_total, "infer_memories": len(rows),
            "ratio": round(len(rows) / len(conv["memories"]), 3),
            "turns_covered": len(turns_covered), "turns_covered_share": round(len(turns_covered) / len(conv["memories"]), 3),
            "evidence_turns": len(evidence), "evidence_turns_covered": len(evidence & turns_covered),
            "evidence_covered_share": round(len(evidence & turns_covered) / max(1, len(evidence)), 3),
            "memories_without_source": unmapped,
            "memories_from_several_turns": sum(len(extracted_dia_ids(conv, r) or ()) > 1 for r in rows)})
    totals = {key: sum(row[key] for row in per_conv) for key in
              ("sessions", "turns", "raw_memories", "infer_memories", "turns_covered", "evidence_turns",
               "evidence_turns_covered", "memories_without_source", "memories_from_several_turns")}
    totals["ratio"] = round(totals["infer_memories"] / max(1, totals["turns"]), 3)
    totals["turns_covered_share"] = round(totals["turns_covered"] / max(1, totals["turns"]), 3)
    totals["evidence_covered_share"] = round(totals["evidence_turns_covered"] / max(1, totals["evidence_turns"]), 3)
    return {"per_conversation": per_conv, "total": totals}


def strict_rankings(convs: list[dict], updated: set[str]) -> None:
    """question["ranked"]["infer_strict"]: infer's ranking with the UPDATEd memories mapping to no turn."""
    for conv in convs:
        dia_ids = {r["id"]: extracted_dia_ids(conv, r) for r in conv["infer_rows"]}
        for q in conv["questions"]:
            q["ranked"]["infer_strict"] = [None if i in updated else dia_ids.get(i) for i in q.get("infer_ids", [])]


def uncovered_turns(convs: list[dict], updates: list[dict], deletes: list[dict]) -> dict:
    """Why a turn maps back to no stored memory, per turn: the offline extractor (re-run here on
    the turn alone) keeps nothing of it; or its memory was DELETEd; or a fact of it became an
    UPDATE of an older memory (which keeps the older memory's source turns); or it was NONE (a
    repeat of a memory or of an earlier fact of its session). conv["why_uncovered"]: dia_id -> reason."""
    from domain.events import ChatMessage
    from domain.extraction import extract_facts

    counts: Counter = Counter()
    for conv in convs:
        sample = conv["sample_id"]
        afters = {u.get("after") for u in updates if u["sample_id"] == sample}
        deleted = set()
        for d in deletes:
            if d["sample_id"] == sample:
                deleted.update(extracted_dia_ids(conv, {"metadata": {"source": d.get("source") or {}}}) or ())
        conv["why_uncovered"] = {}
        for m in conv["memories"]:
            if m["dia_id"] in conv["covered"]:
                continue
            facts = [f.text for f in extract_facts([ChatMessage(role="user", content=m["text"])])]
            if not facts:
                why = "extractor keeps nothing"
            elif m["dia_id"] in deleted:
                why = "its memory was deleted"
            elif any(f in afters for f in facts):
                why = "became an UPDATE of an older memory"
            else:
                why = "NONE (a repeat)"
            conv["why_uncovered"][m["dia_id"]] = why
            counts[why] += 1
    return dict(counts)


def examples(convs: list[dict], seed: int = 7) -> dict:
    """Concrete cases to read: evidence turns no memory maps back to, questions raw finds and
    infer misses (with infer's top 3), a sample of turns beside what became of them, and the
    very short memories (kept filler?)."""
    rng = random.Random(seed)
    dropped, misses, sample = [], [], []
    for conv in convs:
        text = {m["dia_id"]: m["text"] for m in conv["memories"]}
        made: dict[str, list[str]] = {}
        for r in conv["infer_rows"]:
            for d in extracted_dia_ids(conv, r) or ():
                made.setdefault(d, []).append(r.get("memory"))
        seen = set()
        for q in conv["questions"]:
            for e in q["evidence"]:
                if e not in conv["covered"] and e not in seen:
                    seen.add(e)
                    dropped.append({"sample_id": conv["sample_id"], "dia_id": e, "turn": text[e],
                                    "why": conv["why_uncovered"].get(e), "question": q["question"],
                                    "category": q["category"]})
            raw = question_metrics(q["ranked"]["raw"], q["evidence"], (10,))["hit@10"]
            inf = question_metrics(q["ranked"]["infer"], q["evidence"], (10,))["hit@10"]
            if raw and not inf:
                misses.append({"sample_id": conv["sample_id"], "question": q["question"], "category": q["category"],
                               "evidence": {e: text[e] for e in q["evidence"]},
                               "evidence_memories": {e: made.get(e, []) for e in q["evidence"]},
                               "infer_top3": q.get("infer_top3_text")})
        for d in rng.sample(sorted(text), min(8, len(text))):
            sample.append({"sample_id": conv["sample_id"], "dia_id": d, "turn": text[d], "memories": made.get(d, [])})
    short = [{"sample_id": conv["sample_id"], "memory": r.get("memory"), "turns": extracted_dia_ids(conv, r)}
             for conv in convs for r in conv["infer_rows"]
             if len((r.get("memory") or "").split(":", 1)[-1].split()) <= SHORT_WORDS]
    rng.shuffle(dropped)
    rng.shuffle(misses)
    rng.shuffle(short)
    return {"short_memories": len(short), "short_memory_sample": short[:EXAMPLES * 2],
            "evidence_turns_dropped": len(dropped),
            "evidence_turns_dropped_why": dict(Counter(row["why"] for row in dropped)), "dropped_evidence_turns": dropped[:EXAMPLES * 2],
            "raw_hit_infer_miss_at_10": len(misses), "raw_hit_infer_miss": misses[:EXAMPLES],
            "turn_sample": sample[:EXAMPLES * 2]}


# ---------------------------------------------------------------------------------------------
# Report

def infer_graphs(client: httpx.Client, convs: list[dict]) -> list[dict]:
    """The graph of each infer user (GET /v1/graph), measured as bench/graph_bench.py measures a
    raw conversation's: relations per 20 memories (its stored memories) and hygiene faults."""
    return [conversation_figures({"sample_id": c["sample_id"], "user_id": c["infer_user_id"],
                                  "memories": [None] * c["infer_stored"]},
                                 read_graph(client, {"user_id": c["infer_user_id"], "token": None}))
            for c in convs]


def print_report(result: dict) -> None:
    out = Console(width=None if sys.stdout.isatty() else 160)
    c, st = result["corpus"], result["storage"]["total"]
    how = "extraction through the LLM path (canned endpoint)" if result.get("llm") else "offline extraction"
    out.print(f"[bold]LoCoMo: {how} (infer on) vs raw turns[/bold]  {result['base_url']}  run {result['runid']}")
    out.print(f"machine: {result['machine']}")
    out.print(f"corpus: {c['conversations']} conversations, {c['sessions']} sessions, {c['turns']} turns, "
              f"{c['questions']} questions (categories 1-4; {c['skipped_no_valid_evidence']} skipped for no valid evidence)")
    table = Table(title="stored per conversation", title_justify="left")
    for col in ("conversation", "sessions", "turns (raw memories)", "infer memories", "ratio", "turns covered",
                "evidence turns covered", "ADD", "UPDATE", "DELETE"):
        table.add_column(col, justify="left" if col == "conversation" else "right")
    per_user = result["decisions"]["log"]["per_user"]
    for row, user in zip(result["storage"]["per_conversation"], result["corpus"]["infer_users"].values()):
        d = per_user.get(user, {})
        table.add_row(str(row["sample_id"]), str(row["sessions"]), str(row["turns"]), str(row["infer_memories"]),
                      f"{row['ratio']:.2f}", f"{row['turns_covered']} ({row['turns_covered_share']:.0%})",
                      f"{row['evidence_turns_covered']}/{row['evidence_turns']} ({row['evidence_covered_share']:.0%})",
                      str(d.get("ADD", 0)), str(d.get("UPDATE", 0)), str(d.get("DELETE", 0)))
    a = result["decisions"]["log"]["actions"]
    table.add_row("all", str(st["sessions"]), str(st["turns"]), str(st["infer_memories"]), f"{st['ratio']:.2f}",
                  f"{st['turns_covered']} ({st['turns_covered_share']:.0%})",
                  f"{st['evidence_turns_covered']}/{st['evidence_turns']} ({st['evidence_covered_share']:.0%})",
                  str(a.get("ADD", 0)), str(a.get("UPDATE", 0)), str(a.get("DELETE", 0)), style="bold")
    out.print(table)
    dec = result["decisions"]
    metric = dec.get("worker_metrics_delta")
    out.print(f"decisions on the log for the run's users: {json.dumps(a)} (actors {json.dumps(dec['log']['actors'])}); "
              + (f"worker /metrics over the run: {json.dumps(metric)}"
                 + (" (only this run's conversations)" if dec.get("metrics_exact") else " (includes other users' conversations)")
                 if metric is not None else "worker /metrics not reachable (no NONE count)"))
    log = dec["log"]
    out.print(f"causation: {log['causation_ok']}/{log['causation_checked']} created memories have causation_id = the "
              "ConversationReceived whose conversation_id is their metadata.source.conversation_id")
    for kind in ("hit", "recall"):
        table = Table(title=f"{'hit' if kind == 'hit' else 'evidence recall'}@k, raw turns vs extracted (infer)",
                      title_justify="left")
        table.add_column("category")
        table.add_column("n", justify="right")
        for k in KS:
            table.add_column(f"raw@{k}", justify="right")
            table.add_column(f"infer@{k}", justify="right")
        for group, m in result["metrics"]["raw"].items():
            i = result["metrics"]["infer"][group]
            table.add_row(group_label(group), str(m["n"]),
                          *[f"{v[f'{kind}@{k}']:.3f}" for k in KS for v in (m, i)],
                          style="bold" if group == "overall" else None)
        out.print(table)
    t = result["timings"]
    out.print(f"raw load: {t['raw_load']['memories']} memories in {t['raw_load']['seconds']} s; infer adds: "
              f"{t['infer_adds']['adds']} sessions in {t['infer_adds']['seconds']} s (median {t['infer_adds']['add_median_ms']} ms)")
    ex = t["extraction"]
    out.print(f"extraction: worker backlog before the run {ex['backlog_before']['records_behind']} records; the worker "
              f"passed every session {ex['extracted_s']} s after the first add ({ex['sessions_per_s']} sessions/s, "
              f"{ex['turns_per_s']} turns/s, {ex['conversations_per_s']} conversations/s); Postgres applied it all at "
              f"{ex['projected_s']} s")
    for method in METHODS:
        lat = t["ask"][method]["latency_ms"]["steady"]
        out.print(f"search ({method}): {t['ask'][method]['searches']} in {t['ask'][method]['seconds']} s, median "
                  f"{lat.get('median')} ms, p99 {lat.get('p99')} ms; observations "
                  f"{json.dumps(t['ask'][method]['observations'])}")
    if result.get("metrics_without_degraded_searches"):
        clean = result["metrics_without_degraded_searches"]
        out.print(f"[yellow]searches with a degraded source: raw {t['ask']['raw']['observations']['searches_with_a_degraded_source']}, "
                  f"infer {t['ask']['infer']['observations']['searches_with_a_degraded_source']}[/yellow]; on the "
                  f"{clean['raw']['n']} questions where neither was (overall): " + "; ".join(
                      f"{m} hit@10 {v['hit@10']:.3f} recall@10 {v['recall@10']:.3f}" for m, v in clean.items()))
    strict = result["metrics_infer_updated_uncredited"]
    out.print(f"infer with the {result['decisions']['memories_updated']} UPDATEd memories credited to no turn "
              f"(overall): hit@10 {strict['hit@10']:.3f}, recall@10 {strict['recall@10']:.3f}")
    e = result["examples"]
    out.print(f"evidence turns no stored memory maps back to: {e['evidence_turns_dropped']}; questions raw hits at 10 "
              f"and infer misses: {e['raw_hit_infer_miss_at_10']}; memories of at most {SHORT_WORDS} words: "
              f"{e['short_memories']} (examples of each in the JSON)")
    out.print(f"why turns map back to no memory: all turns {json.dumps(result['storage']['uncovered_turns_why'])}; "
              f"evidence turns {json.dumps(e['evidence_turns_dropped_why'])}")
    for row in e["dropped_evidence_turns"][:6]:
        out.print(f"  {row['sample_id']} {row['dia_id']} ({row['why']}): {row['turn'][:140]!r}")
    for g in result.get("graph", []):
        out.print(f"graph of infer {g['sample_id']}: {g['entities']} entities, {g['relations']} relations "
                  f"({g['distinct_relations']} distinct), {g['relations_per_20_memories']} per 20 memories, "
                  f"{g['co_mentioned_pairs']} co-mentioned pairs, {len(g['faults'])} faults; {g['relation_types']}")
    if result.get("llm"):
        out.print(f"LLM endpoint {result['llm']['endpoint']}: requests {json.dumps(result['llm']['requests'])}")
    if result["retry_reasons"]:
        out.print(f"[yellow]retried: {json.dumps(result['retry_reasons'])}[/yellow]")
    out.print(f"written: {result['files']['json']}, {result['files']['plot']}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    colours = {"raw": "tab:blue", "infer": "tab:orange"}
    for ax, kind in zip(axes, ("hit", "recall")):
        for method in METHODS:
            metrics = result["metrics"][method]
            for group, m in metrics.items():
                ys = [m[f"{kind}@{k}"] for k in KS]
                if group == "overall":
                    ax.plot(KS, ys, "-o", color=colours[method], lw=2.2, label=f"{method}, overall (1-4)")
                    for x, y in zip(KS, ys):
                        left = method == "raw"
                        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(-5 if left else 5, 4),
                                    ha="right" if left else "left", fontsize=7, color=colours[method])
                else:
                    ax.plot(KS, ys, ":", color=colours[method], lw=0.9, alpha=0.6)
        ax.set_xticks(KS)
        ax.set_xlabel("k")
        ax.set_ylim(0, 1)
        ax.set_title(f"{'hit' if kind == 'hit' else 'evidence recall'}@k (dotted: per category)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    rows = result["storage"]["per_conversation"]
    xs = range(len(rows))
    axes[2].bar([x - 0.2 for x in xs], [r["turns"] for r in rows], 0.4, label="raw: turns", color=colours["raw"])
    bars = axes[2].bar([x + 0.2 for x in xs], [r["infer_memories"] for r in rows], 0.4, label="infer: memories",
                       color=colours["infer"])
    axes[2].bar_label(bars, labels=[f"{r['ratio']:.2f}" for r in rows], fontsize=7)
    axes[2].set_xticks(list(xs), [str(r["sample_id"]) for r in rows], rotation=30, fontsize=8)
    axes[2].set_title("memories stored per conversation (label: ratio)")
    axes[2].legend(fontsize=8)
    c = result["corpus"]
    title = (f"LoCoMo, offline extraction vs raw turns: {c['conversations']} conversations, {c['turns']} turns, "
             f"{c['questions']} questions")
    observed = {m: result["timings"]["ask"][m]["observations"]["searches_with_a_degraded_source"] for m in METHODS}
    if any(observed.values()):
        title += "\nsearches with a degraded source: " + ", ".join(f"{m} {n}" for m, n in observed.items())
        clean = result.get("metrics_without_degraded_searches")
        if clean:
            title += f"; on the {clean['raw']['n']} questions with neither: " + ", ".join(
                f"{m} hit@10 {v['hit@10']:.2f} recall@10 {v['recall@10']:.2f}" for m, v in clean.items())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--kafka-bootstrap", default=os.environ.get("RECALLSTACK_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                    help="to follow the worker's and the projector's consumer groups")
    ap.add_argument("--worker-metrics-url", default="http://127.0.0.1:9104/metrics",
                    help="the extraction worker's /metrics (decision counters, NONE included)")
    ap.add_argument("--conversations", type=int, default=None, help="only the first N conversations (quick run)")
    ap.add_argument("--limit-questions", type=int, default=None, help="at most N questions per conversation")
    ap.add_argument("--batch-size", type=int, default=250, help="raw memories per POST /v1/memories/batch")
    ap.add_argument("--wait-timeout", type=float, default=3600, help="seconds to wait for the worker and the projector")
    ap.add_argument("--stall-seconds", type=float, default=300, help="fail when the worker passes no session this long")
    ap.add_argument("--keep-memories", action="store_true", help="do not delete the run's users' memories at the end")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    ap.add_argument("--out", default=str(RESULTS), help="folder for extraction.json and extraction.png")
    ap.add_argument("--canned-llm-url", default=None,
                    help="the canned LLM the stack's worker calls (bench/canned_llm.py), to report its requests")
    args = ap.parse_args()

    runid = uuid.uuid4().hex[:8]
    samples = locomo()[:args.conversations] if args.conversations else locomo()
    convs = build_corpus(samples, runid, {1, 2, 3, 4}, args.limit_questions, user_prefix="raw")
    for conv in convs:
        add_sessions(conv, runid)
    out_dir = Path(args.out)
    result = {
        "benchmark": "locomo_extraction", "runid": runid, "base_url": args.base_url, "machine": machine(),
        "corpus": {"conversations": len(convs), "sessions": sum(len(c["sessions"]) for c in convs),
                   "turns": sum(len(c["memories"]) for c in convs),
                   "questions": sum(len(c["questions"]) for c in convs),
                   "questions_per_category": dict(sorted(Counter(str(q["category"]) for c in convs for q in c["questions"]).items())),
                   "skipped_no_valid_evidence": sum(c["skipped_questions"] for c in convs),
                   "limit_questions_per_conversation": args.limit_questions,
                   "raw_users": {str(c["sample_id"]): c["user_id"] for c in convs},
                   "infer_users": {str(c["sample_id"]): c["infer_user_id"] for c in convs},
                   "reference_times": {str(c["sample_id"]): c["reference_time"] for c in convs}},
        "search": {"limit": LIMIT, "reference_time": True},
        "methods": list(METHODS),
        "files": {"json": str(out_dir / "extraction.json"), "plot": str(out_dir / "extraction.png")},
        "timings": {},
    }
    timings = result["timings"]
    loaded: list[str] = []
    updates: list[dict] = []  # the worker's UPDATE and DELETE events for the run's users (log order)
    deletes: list[dict] = []
    try:
        with httpx.Client(headers=api_headers(), base_url=args.base_url, timeout=httpx.Timeout(120.0, connect=5.0)) as client:
            probe = {"query": "preflight", "user_id": f"extract-preflight-{runid}", "limit": LIMIT,
                     "reference_time": convs[0]["reference_time"]}
            post(client, "/v1/memories/search", probe)
            backlog = asyncio.run(_backlog(args.kafka_bootstrap))
            try:
                timings["raw_load"] = load(client, convs, runid, args.batch_size)
                loaded += [c["user_id"] for c in convs]
                before = worker_decisions(args.worker_metrics_url)
                loaded += [c["infer_user_id"] for c in convs]
                adds = load_conversations(client, convs, runid)
                began = adds.pop("began")
                timings["infer_adds"] = adds
                drained = asyncio.run(_drain(args.kafka_bootstrap, convs, began, args.wait_timeout, args.stall_seconds))
                after = worker_decisions(args.worker_metrics_url)
                c = result["corpus"]
                timings["extraction"] = {
                    "backlog_before": backlog, "extracted_s": round(drained["extracted_s"], 2),
                    "projected_s": round(drained["projected_s"], 2),
                    "sessions_per_s": round(c["sessions"] / drained["extracted_s"], 3),
                    "turns_per_s": round(c["turns"] / drained["extracted_s"], 2),
                    "conversations_per_s": round(c["conversations"] / drained["extracted_s"], 4),
                    "per_conversation_done_s": {str(cv["sample_id"]): round(max(s["extracted_s"] for s in cv["sessions"]), 2)
                                                for cv in convs}}
                log = asyncio.run(_decisions_on_log(args.kafka_bootstrap, convs, drained["ends"]))
                delta = None
                if before is not None and after is not None:
                    delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in ("ADD", "UPDATE", "DELETE", "NONE")}
                updates, deletes = log.pop("updates"), log.pop("deletes")
                updated = {u["memory_id"] for u in updates}
                result["decisions"] = {
                    "log": log, "worker_metrics_delta": delta,
                    "metrics_exact": delta is not None and all(delta[k] == log["actions"].get(k, 0)
                                                               for k in ("ADD", "UPDATE", "DELETE")),
                    "memories_updated": len(updated),
                    "update_examples": updates[:EXAMPLES * 2], "delete_examples": deletes[:EXAMPLES]}
                result["storage"] = storage(client, convs)
                result["graph"] = infer_graphs(client, convs)
                timings["ask"] = ask_each(client, convs, {}, True, (
                    Asker(method="raw"),
                    Asker(method="infer", user_key="infer_user_id", token_key=None, dia_ids_of=extracted_dia_ids,
                          stored_of=lambda conv: conv["infer_stored"])))
                strict_rankings(convs, updated)
            finally:
                if not args.keep_memories and loaded:
                    result["cleanup"] = cleanup(client, [{"user_id": u} for u in loaded])
    except (BenchError, httpx.TransportError) as exc:
        return failed("extraction bench", args.base_url, exc)
    except OSError as exc:  # Kafka unreachable (aiokafka raises KafkaConnectionError, an OSError subclass) and the like
        console.print(f"[red]extraction bench failed:[/red] {type(exc).__name__}: {exc} (Kafka at {args.kafka_bootstrap}?)")
        return 1
    result["retry_reasons"] = dict(RETRY_REASONS)
    if args.canned_llm_url:
        result["llm"] = {"endpoint": args.canned_llm_url,
                         "requests": httpx.get(args.canned_llm_url.rstrip("/") + "/stats", timeout=10).json()}
    result["metrics"] = evaluate(convs, METHODS)
    # The same infer searches, a memory whose text an UPDATE replaced credited to no turn: its
    # metadata.source still names the turns of the fact it was created from, not the new text's.
    result["metrics_infer_updated_uncredited"] = evaluate(convs, ("infer_strict",))["infer_strict"]["overall"]
    clean = [dict(c, questions=[q for q in c["questions"] if not q.get("degraded_raw") and not q.get("degraded_infer")])
             for c in convs]
    n_clean = sum(len(c["questions"]) for c in clean)
    if 0 < n_clean < result["corpus"]["questions"]:
        # A source that missed its budget changes a ranking: the same comparison on the questions
        # where both searches had every source, so quality and timeouts can be told apart.
        result["metrics_without_degraded_searches"] = {m: v["overall"] for m, v in evaluate(clean, METHODS).items()}
    result["storage"]["uncovered_turns_why"] = uncovered_turns(convs, updates, deletes)
    result["examples"] = examples(convs)
    result["per_question"] = [
        {"sample_id": c["sample_id"], "question": q["question"], "category": q["category"], "evidence": q["evidence"],
         "evidence_covered": [e in c["covered"] for e in q["evidence"]],
         "degraded": {m: q[f"degraded_{m}"] for m in METHODS if q.get(f"degraded_{m}")},
         "raw_top3": q.get("raw_top3"), "infer_top3": q.get("infer_top3"),
         **{f"{kind}@10": {m: question_metrics(q["ranked"][m], q["evidence"], (10,))[f"{kind}@10"] for m in METHODS}
            for kind in ("hit", "recall")}}
        for c in convs for q in c["questions"]]
    save_and_report(result, out_dir, plot, print_report, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
