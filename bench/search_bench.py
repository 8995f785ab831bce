"""Search latency, throughput and CPU per search against a running stack (`recallstack up --detach`).

    python bench/search_bench.py [--sizes 10000,100000] [--clients 1,2,4,10] [--repeated-clients 1,10]
                                 [--duration 20] [--base-url http://127.0.0.1:8080] [--endpoints gateway]
                                 [--one-user] [--quick] [--json]

Corpus. N memories per size, appended as MemoryCreated events straight to the live log
(EventPublisher; the embedder is not what is loaded): the ~3,400 LoCoMo turns are embedded
once with the project's MiniLM embedder (vectors cached in bench/results/.cache), memory i
is turn i, then two turns joined (the vector the normalised sum of theirs), every vector
with a little noise so the HNSW graph holds no exact duplicates; `happened_at` spread over
the last year, metadata with three keys. 10k and 100k go to one user each, 1M is spread
over 100 users (--one-user: 1M in one). The projectors apply them live; the benchmark waits
for every read model but the graph (progress with rate and ETA), gives Neo4j up to
--graph-wait seconds, and reports what the graph still lags. A loaded corpus is listed in
bench/results/.cache/search_corpus.json (per RECALLSTACK_HOME) and reused by the next run
(checked against the Postgres row count).

Load. Closed loop: each client (a keep-alive connection, bench/raw_http.py: little CPU of its
own) sends its next POST /v1/memories/search as soon as the last one answers, for --duration
seconds per level, through the base URL (the proxy; --endpoints query-api adds the query API
direct). "uncached": every query text is used once in the whole run (phrased variants of the
LoCoMo questions) with `"cache": false`, at --clients; "repeated": 20 questions asked over and
over after a warm-up, so the answer cache serves them, at --repeated-clients. Reported per
(size, mode, clients): p50/p90/p99/max and QPS, the QPS at saturation, the answers that left
a source out (per source: missed budget or failed), the Server-Timing entries of the query API
(p50/p99 per entry beside the client-observed latency), and the CPU of every stack process per
search from /proc (bench/cpu_accounting.py: Postgres with its backends, nginx with its workers,
Neo4j, Redis, Kafka, the APIs, the projectors and workers; the bench client and the rest of
the machine apart). Then issue 20's targets, met or not (bench/search_targets.py). Results:
bench/results/search.json, search_latency.png, search_breakdown.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import cpu_accounting
import raw_http
from api_key import api_headers
from locomo_texts import questions, turns
from machine_info import machine
from search_level import (clients_axes, degraded_counts, latency_summary, mean_split, parse_server_timing,
                          per_request_split, timing_percentiles)
from search_targets import CPU_MS_PER_SEARCH, HEADLINE_SIZE, P99_AT_10_MS, QPS_AT_10, REPEATED_P99_MS, search_targets
from search_targets import ONE_CLIENT as ONE_CLIENT_TARGETS
from stack_processes import recorded, stack_processes

import bootstrap
from settings import EVENTS_TOPIC

# bench/suite.py points RECALLSTACK_BENCH_OUT at the run's folder.
RESULTS = Path(os.environ.get("RECALLSTACK_BENCH_OUT") or Path(__file__).parent / "results")
CACHE = Path(__file__).parent / "results" / ".cache"  # shared by every output folder
MANIFEST = CACHE / "search_corpus.json"
QUERY_STATE = CACHE / "search_queries.json"
SOURCES = ("dense", "sparse", "temporal", "graph")  # run concurrently by the query API (contract)
NOISE = 0.1  # norm of the noise added to each unit vector (cosine to the clean vector ~0.995)
REPEATED = 20  # distinct queries of the "repeated" mode
IDLE_S = 3.0  # seconds the stack's idle CPU is sampled before a size's levels
STALL_S = 120.0  # a read model that applies nothing of a load for this long is not waited for
PREFIXES = ("", "Remind me: ", "Do you remember, ", "Quick question: ", "I forgot - ", "From our chats, ",
            "Can you recall: ", "Tell me again: ", "Going back to earlier, ", "One more thing: ", "Hey, ",
            "Sorry to ask again, ")


def log(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


# --- corpus ----------------------------------------------------------------------------


def turn_vectors() -> tuple[list[str], np.ndarray, str]:
    """The LoCoMo turns and their MiniLM vectors (embedded once, cached on disk)."""
    from adapters.embedders import build_embedder

    texts = turns()
    embedder = build_embedder("minilm")
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    path = CACHE / f"locomo_turns_{embedder.model_id.replace('/', '_')}_{digest}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape == (len(texts), embedder.dim):
            return texts, vectors, embedder.model_id
    log(f"embedding {len(texts):,} LoCoMo turns once with {embedder.model_id} (cached in {path.parent})...")
    began = time.perf_counter()
    vectors = np.concatenate([np.asarray(embedder.embed(texts[i:i + 256]), dtype=np.float32)
                              for i in range(0, len(texts), 256)])
    log(f"  {len(texts) / (time.perf_counter() - began):,.0f} texts/s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return texts, vectors, embedder.model_id


def memory_content(g: int, texts: list[str], vectors: np.ndarray, rng: np.random.Generator):
    """Memory number g of a corpus: turn g, then pairs (a, a+k) of turns joined."""
    n = len(texts)
    if g < n:
        parts = (g,)
    else:
        j = g - n
        a, k = j % n, 1 + (j // n) % (n - 1)
        parts = (a, (a + k) % n)
    text = "\n".join(texts[p] for p in parts)
    vec = vectors[list(parts)].sum(axis=0)
    vec = vec / np.linalg.norm(vec)
    vec = vec + rng.normal(scale=NOISE / np.sqrt(vec.size), size=vec.size)
    vec = vec / np.linalg.norm(vec)
    speaker = texts[parts[0]].split(":", 1)[0]
    return text, tuple(vec.astype(np.float32).tolist()), speaker, "turn" if len(parts) == 1 else "exchange"


def load_manifest() -> dict:
    """The corpora loaded into this stack (one section per RECALLSTACK_HOME): {size: {users, load}}."""
    try:
        everything = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        everything = {}
    home = str(bootstrap.settings().home)
    legacy = {k: everything.pop(k) for k in list(everything) if k.isdigit()}  # written before the sections
    return {**legacy, **everything.get(home, {})}


def save_manifest(manifest: dict) -> None:
    try:
        everything = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        everything = {}
    everything = {k: v for k, v in everything.items() if not k.isdigit()}
    everything[str(bootstrap.settings().home)] = manifest
    CACHE.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(everything, indent=2))


async def pg_counts(users: list[str]) -> int:
    import asyncpg

    conn = await asyncpg.connect(bootstrap.settings().pg_dsn)
    try:
        # Archived too: the consolidation worker merges the corpus's near-duplicates (memory i is
        # LoCoMo turn i mod ~3,400 with a little noise): 17,803 of the 1M tier's memories were
        # archived into summaries within an hour, and a count of the active ones alone made the
        # next run load the whole tier again.
        return await conn.fetchval("SELECT count(*) FROM memories WHERE user_id = ANY($1::text[])"
                                   " AND state IN ('active', 'archived')", users)
    finally:
        await conn.close()


async def positions_of(name: str) -> dict[int, int]:
    async with bootstrap.read_model(name) as versions:
        return await versions.projection().positions(EVENTS_TOPIC)


class Watcher:
    """Polls one read model's applied positions against the targets of a load."""

    def __init__(self, name: str, start: dict[int, int], events: int):
        self.name, self.start, self.events = name, start, events
        self.target: dict[int, int] = {}
        self.done_at: float | None = None
        self.fraction = 0.0
        self.applied = 0
        self._cm = None
        self._projection = None

    async def open(self):
        self._cm = bootstrap.read_model(self.name)
        self._projection = (await self._cm.__aenter__()).projection()

    async def close(self):
        if self._cm is not None:
            await self._cm.__aexit__(None, None, None)

    async def poll(self, published: bool) -> None:
        if not self.target:
            return
        positions = await self._projection.positions(EVENTS_TOPIC)
        total = sum(t - self.start.get(p, -1) for p, t in self.target.items())
        got = sum(max(0, min(positions.get(p, -1), t) - self.start.get(p, -1)) for p, t in self.target.items())
        self.applied = min(self.events, got)  # log records (a few transaction markers included)
        self.fraction = got / max(1, total)
        if published and self.done_at is None and all(positions.get(p, -1) >= t for p, t in self.target.items()):
            self.done_at = time.perf_counter()
            self.fraction, self.applied = 1.0, self.events


def read_models() -> list[str]:
    """The read models a search reads, each waited for after a load (Neo4j at most --graph-wait
    seconds): the stack's projectors (infra/stack.py), so a new one (the sparse index) counts too;
    of those, the ones whose projector runs in this stack when its process table names any."""
    from infra.stack import PROJECTOR_METRICS_PORTS

    running = {n.removeprefix("projector-") for n in recorded(bootstrap.settings().home) if n.startswith("projector-")}
    return [n for n in PROJECTOR_METRICS_PORTS if not running or n in running]


async def publish_corpus(size: int, users: list[str], model_id: str, texts, vectors, graph_wait: float) -> dict:
    from adapters.kafka_log import EventPublisher
    from domain.events import MemoryCreated, utcnow

    cfg = bootstrap.settings()
    watchers, stalled = {}, {}
    for n in read_models():
        try:
            w = Watcher(n, await positions_of(n), size)
            await w.open()
        except Exception as exc:  # noqa: BLE001 - a read model this stack has not: not waited for
            log(f"  {n}: positions unavailable ({type(exc).__name__}: {str(exc)[:120]}); not waited for")
            continue
        watchers[n] = w
    publisher = EventPublisher(cfg.kafka_bootstrap, timeout_s=60)
    await publisher.start()
    rng = np.random.default_rng(size)
    now = utcnow()
    target: dict[int, int] = {}
    began = time.perf_counter()
    published_at = None
    written = 0
    in_flight: set[asyncio.Task] = set()
    last_print = [0.0]

    def status(final: bool = False) -> str:
        elapsed = time.perf_counter() - began
        publish_s = (published_at or time.perf_counter()) - began
        parts = [f"published {written:,}/{size:,}" + (f" ({written / publish_s:,.0f}/s)" if publish_s > 0 else "")]
        for w in watchers.values():
            applied = w.applied
            if w.done_at is not None:
                parts.append(f"{w.name} done in {w.done_at - began:,.0f} s")
            else:
                rate = applied / elapsed if elapsed > 0 else 0
                eta = f"ETA {(size - applied) / rate:,.0f} s" if rate > 0 else "ETA ?"
                parts.append(f"{w.name} {applied:,} ({rate:,.0f}/s, {eta})")
        return " | ".join(parts)

    def tick(force: bool = False) -> None:
        if force or time.perf_counter() - last_print[0] > 1:
            last_print[0] = time.perf_counter()
            log("\r  " + status() + "   ", end="")

    async def send(batch):
        nonlocal written
        token = await publisher.publish(batch)
        written += len(batch)
        for p, o in token.offsets:
            target[p] = max(target.get(p, -1), o)

    async def poller():
        while True:
            for w in list(watchers.values()):
                w.target = target
                try:
                    await w.poll(published_at is not None)
                except Exception as exc:  # a read model down: keep polling the others
                    log(f"\n  {w.name}: positions unavailable ({type(exc).__name__})")
            tick()
            await asyncio.sleep(1)

    polling = asyncio.create_task(poller())
    try:
        for start in range(0, size, 1000):
            batch = []
            for g in range(start, min(size, start + 1000)):
                text, vec, speaker, kind = memory_content(g, texts, vectors, rng)
                happened = now - timedelta(seconds=float(rng.uniform(0, 365 * 86400)))
                batch.append(MemoryCreated(
                    user_id=users[g % len(users)], actor="worker:bench", memory_id=str(uuid.uuid4()), text=text,
                    embedding=vec, embedding_model=model_id, happened_at=happened,
                    metadata={"source": "locomo-bench", "speaker": speaker, "kind": kind}))
            task = asyncio.create_task(send(batch))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if len(in_flight) >= 4:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            tick()
            await asyncio.sleep(0)
        await asyncio.gather(*in_flight)
        published_at = time.perf_counter()
        for w in watchers.values():
            w.target = target
        deadline_graph = None
        progress = {n: (w.applied, time.perf_counter()) for n, w in watchers.items()}
        while True:
            await asyncio.sleep(0.5)
            for n, w in list(watchers.items()):
                if w.done_at is None and n != "neo4j":
                    if w.applied != progress[n][0]:
                        progress[n] = (w.applied, time.perf_counter())
                    elif time.perf_counter() - progress[n][1] > STALL_S:  # its projector is not running?
                        log(f"\n  {n}: no progress for {STALL_S:.0f} s; measuring without waiting for it")
                        del watchers[n]
                        stalled[n] = w
            if all(w.done_at is not None for n, w in watchers.items() if n != "neo4j"):
                if deadline_graph is None:
                    deadline_graph = time.perf_counter() + graph_wait
                if "neo4j" not in watchers or watchers["neo4j"].done_at is not None \
                        or time.perf_counter() > deadline_graph:
                    break
    finally:
        polling.cancel()
        await publisher.stop()
        for w in (*watchers.values(), *stalled.values()):
            await w.close()
    tick(force=True)
    log("")
    row = {"events": size, "users": len(users), "publish_s": round(published_at - began, 1),
           "publish_per_s": round(size / (published_at - began)), "stalled": sorted(stalled)}
    for n, w in {**watchers, **stalled}.items():
        row[f"{n}_applied_s"] = round(w.done_at - began, 1) if w.done_at else None
        row[f"{n}_per_s"] = round(size / (w.done_at - began)) if w.done_at else None
        row[f"{n}_applied_fraction"] = round(w.fraction, 4)
    row["targets"] = {str(p): o for p, o in target.items()}
    return row


async def ensure_corpus(size: int, graph_wait: float, tools: dict, one_user: bool = False) -> dict:
    """A corpus of `size` memories in the read models: reused when a previous run loaded it.
    1M and more go to 100 users unless one_user (the "1M memories per user" tier)."""
    from projectors.lag import projector_lag

    cfg = bootstrap.settings()
    manifest = load_manifest()
    key = f"{size}x1" if one_user and size >= 1_000_000 else str(size)
    entry = manifest.get(key)
    if entry:
        count = await pg_counts(entry["users"])
        if count < size and (await projector_lag(cfg.kafka_bootstrap, "postgres"))["behind"] > 0:
            log(f"corpus {human(size)}: Postgres still applying, waiting...")
            deadline = time.monotonic() + 3600
            while (await projector_lag(cfg.kafka_bootstrap, "postgres"))["behind"] > 0 and time.monotonic() < deadline:
                await asyncio.sleep(2)
            count = await pg_counts(entry["users"])
        if count >= size:  # more: consolidation summaries beside the archived originals
            log(f"corpus {human(size)}: reusing {count:,} memories of {len(entry['users'])} user(s) loaded "
                f"{entry['load'].get('loaded_at', 'earlier')}")
            return {**entry, "reused": True}
        log(f"corpus {human(size)}: listed but Postgres holds {count:,} of {size:,} memories; loading a new one")
    if "texts" not in tools:
        tools["texts"], tools["vectors"], tools["model_id"] = turn_vectors()
    tag = uuid.uuid4().hex[:6]
    n_users = 100 if size >= 1_000_000 and not one_user else 1
    users = [f"bench-search-{human(size)}-{tag}" + (f"-{u:03d}" if n_users > 1 else "") for u in range(n_users)]
    log(f"corpus {human(size)}: appending {size:,} MemoryCreated events for {n_users} user(s) ({users[0]}...)")
    manifest[key] = {"users": users, "load": {"loaded_at": "(loading, interrupted?)"}}
    save_manifest(manifest)
    load = await publish_corpus(size, users, tools["model_id"], tools["texts"], tools["vectors"], graph_wait)
    load["loaded_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    entry = {"users": users, "load": load}
    manifest = load_manifest()
    manifest[key] = entry
    save_manifest(manifest)
    return {**entry, "reused": False}


# --- queries ---------------------------------------------------------------------------


class DistinctQueries:
    """Query texts never sent before: phrased variants of the LoCoMo questions ("Remind me:
    when did ..."), never the bare questions (other benchmarks send those). The position is
    kept in bench/results/.cache across runs, because the query API keeps query embeddings
    in Redis for days: a text from an earlier run would not be uncached."""

    def __init__(self, seed: int = 7):
        base = list(dict.fromkeys(questions()))
        random.Random(seed).shuffle(base)
        # The repeated mode's questions are never sent as uncached ones (nor any variant of them).
        self.repeated, self.base = base[:REPEATED], base[REPEATED:]
        try:
            self.first = int(json.loads(QUERY_STATE.read_text())["next"])
        except (OSError, ValueError, KeyError):
            self.first = 0
        self.first = max(self.first, len(self.base))  # round 0 (the bare questions) is never used
        self.position = self.first

    @property
    def used(self) -> int:
        return self.position - self.first

    def next(self) -> str:
        i = self.position
        self.position += 1
        q = self.base[i % len(self.base)]
        round_ = i // len(self.base)
        if round_ == 0:
            return q
        prefix = PREFIXES[round_ % len(PREFIXES)]
        text = prefix + (q[0].lower() + q[1:] if prefix else q)
        return text if round_ < len(PREFIXES) else f"{text} (#{round_ // len(PREFIXES)})"

    def save(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        QUERY_STATE.write_text(json.dumps({"next": self.position}))


async def stats_of(query_url: str) -> dict:
    try:
        async with httpx.AsyncClient(headers=api_headers(), base_url=query_url, timeout=5) as client:
            answer = await client.get("/v1/stats/cache")
            return answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def stats_delta(before: dict, after: dict) -> dict:
    out = {}
    for name, now in after.items():
        if isinstance(now, dict) and "hits" in now:
            then = before.get(name) or {"hits": 0, "misses": 0}
            hits, misses = now["hits"] - then.get("hits", 0), now["misses"] - then.get("misses", 0)
            if hits < 0 or misses < 0:  # the process restarted in between
                hits, misses = now["hits"], now["misses"]
            out[name] = {"hits": hits, "misses": misses}
    return out


async def wait_ready(urls: list[str], limit_s: float = 180) -> bool:
    deadline, said = time.monotonic() + limit_s, False
    async with httpx.AsyncClient(headers=api_headers(), timeout=3) as client:
        while True:
            try:
                if all([(await client.get(f"{u}/readyz")).status_code == 200 for u in urls]):
                    if said:
                        log(" ready again")
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return False
            if not said:
                log("  (an endpoint is not ready; waiting up to 3 min)", end="")
                said = True
            await asyncio.sleep(2)


async def run_level(url: str, users: list[str], clients: int, duration: float, next_query, extra: dict,
                    cfg, query_url: str) -> dict:
    """`clients` closed loops for `duration` s: each sends its next search once the last one answered.
    The CPU of every stack process is sampled from /proc before the first and after the last answer."""
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    splits: list[dict[str, float]] = []
    degraded: list[list] = []
    errors: dict[str, int] = {}
    result_counts: list[int] = []
    cache_states: dict[str, int] = {}
    header_names: set[str] = set()
    rnd = random.Random(clients)
    stats0 = await stats_of(query_url)
    connections = [raw_http.Connection(url, api_headers()) for _ in range(clients)]
    end = [0.0]

    async def loop(conn: raw_http.Connection):
        while time.perf_counter() < end[0]:
            body = {"query": next_query(), "user_id": users[rnd.randrange(len(users))], "limit": 10, **extra}
            began = time.perf_counter()
            try:
                answer = await conn.post_json("/v1/memories/search", body)
            except (raw_http.HttpError, OSError, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.1)
                continue
            ms = (time.perf_counter() - began) * 1000
            if answer.status != 200:
                key = f"{answer.status}: {answer.text[:160]}"
                errors[key] = errors.get(key, 0) + 1
                continue
            latencies.append(ms)
            header_names.update(answer.headers)
            st = answer.headers.get("server-timing")
            if st:
                timing = parse_server_timing(st)
                timings.append(timing)
                splits.append(per_request_split(timing, ms))
            payload = answer.json()
            result_counts.append(len(payload.get("results", [])))
            state = str(payload.get("cache", "(no field)"))
            cache_states[state] = cache_states.get(state, 0) + 1
            degraded.append(payload.get("degraded") or [])

    roots = stack_processes(cfg.home, cfg)
    cpu0, t0 = cpu_accounting.read_sample(roots), time.perf_counter()
    end[0] = t0 + duration
    try:
        await asyncio.gather(*(loop(c) for c in connections))
        wall = time.perf_counter() - t0
        cpu1 = cpu_accounting.read_sample(roots)
    finally:
        for c in connections:
            await c.close()
    stats1 = await stats_of(query_url)
    n = len(latencies)
    failed = sum(errors.values())
    row = {"clients": clients, "requests": n, "errors": errors, "wall_s": round(wall, 1),
           "qps": round(n / wall, 1), "attempts_per_s": round((n + failed) / wall, 1),
           "error_pct": round(100 * failed / max(1, n + failed), 1), **latency_summary(latencies)}
    if n:
        row["results_mean"] = round(statistics.fmean(result_counts), 1)
    counts = degraded_counts(degraded)
    row.update({"answer_cache_field": cache_states, "degraded": counts,
                "degraded_responses": counts["degraded_answers"],
                "degraded_sources": {s: sum(k.values()) for s, k in counts["by_source"].items()},
                "query_api_cache_stats": stats_delta(stats0, stats1)})
    row["server_timing_responses"] = len(timings)
    row["server_timing"] = timing_percentiles(timings)
    if splits:
        row["split_mean_ms"] = mean_split(splits)
    cpu = cpu_accounting.usage(cpu0, cpu1, wall, n, cpu_accounting.CLK_TCK)
    row["cpu"] = cpu
    # Other work on the machine (tests, other benchmarks) took CPU the stack needed: the figures are pessimistic.
    row["contended"] = cpu["other_pct"] > 20
    # The stack itself went away (restarted by someone): not the search's doing, unlike a 503 of the query API.
    row["stack_interrupted"] = bool(cpu["restarted"]) or any(
        k in errors for k in ("HttpError", "ConnectionRefusedError", "TimeoutError")) or any(
        "service_unavailable" in k or k.startswith("502") for k in errors)
    row["response_headers"] = sorted(header_names)
    return row


async def probe_cache_flag(url: str, user: str, all_urls: list[str]) -> bool:
    await wait_ready(all_urls)
    async with httpx.AsyncClient(headers=api_headers(), base_url=url, timeout=30) as client:
        answer = await client.post("/v1/memories/search",
                                   json={"query": "cache flag probe", "user_id": user, "cache": False})
        if answer.status_code == 422:
            log(f"  {url}: \"cache\": false refused with 422 ({answer.text[:200]}); not sent")
            return False
        answer.raise_for_status()
        return True


async def graph_lag(bootstrap_servers: str) -> int | str:
    """Events the Neo4j projector is behind; a note instead when Kafka cannot be asked (a
    restart during the run), so the levels already measured are not lost."""
    from projectors.lag import projector_lag

    try:
        return (await projector_lag(bootstrap_servers, "neo4j"))["behind"]
    except Exception as exc:  # noqa: BLE001 - informative only
        return f"unknown ({type(exc).__name__})"


async def idle_cpu(cfg) -> dict:
    """What the stack's processes use with no search running (projectors polling, Kafka, the JVMs'
    housekeeping): the floor under every level's CPU per search."""
    roots = stack_processes(cfg.home, cfg)
    before, t0 = cpu_accounting.read_sample(roots), time.perf_counter()
    await asyncio.sleep(IDLE_S)
    return cpu_accounting.usage(before, cpu_accounting.read_sample(roots), time.perf_counter() - t0, 0,
                                cpu_accounting.CLK_TCK)


async def measure_size(size: int, corpus_entry: dict, args, pool: DistinctQueries) -> dict:
    cfg = bootstrap.settings()
    users = corpus_entry["users"]
    endpoints = {name: url for name, url in (("gateway", args.base_url), ("query-api", args.query_url))
                 if name in args.endpoints.split(",")}
    cache_flag = {name: await probe_cache_flag(url, users[0], list(endpoints.values()))
                  for name, url in endpoints.items()}
    graph_lag_before = await graph_lag(cfg.kafka_bootstrap)
    # Warm-up (pools, Postgres buffers): LoCoMo turns as queries, never used again.
    warm = itertools.cycle(turns()[::-1])
    log(f"size {human(size)}: warming up...")
    await run_level(args.base_url, users, 10, min(5.0, args.duration), lambda: next(warm), {}, cfg, args.query_url)
    idle = await idle_cpu(cfg)
    log(f"size {human(size)}: the stack idle for {IDLE_S:.0f} s: {idle['stack_pct']} % of a core "
        f"({cpu_accounting.top(idle['pct_of_a_core'])}); machine {idle['machine_pct']} %")
    repeated_texts = pool.repeated
    rows = []
    for endpoint, url in endpoints.items():
        for mode in ("uncached", "repeated"):
            if mode == "repeated":
                counter = iter(range(10**12))
                next_query = lambda: repeated_texts[next(counter) % REPEATED]  # noqa: E731
                await wait_ready(list(endpoints.values()))
                async with httpx.AsyncClient(headers=api_headers(), base_url=url, timeout=30) as client:
                    for _ in range(3):  # warm-up: every repeated query answered (and cached) before measuring
                        for q in repeated_texts:
                            for user in users[:5]:
                                try:
                                    await client.post("/v1/memories/search", json={"query": q, "user_id": user})
                                except httpx.HTTPError:
                                    await asyncio.sleep(0.5)
                extra = {}
                level_users = users[:5]  # 1M: 5 users x 20 queries = 100 entries, all warm
            else:
                next_query, extra, level_users = pool.next, ({"cache": False} if cache_flag[endpoint] else {}), users
            for clients in (args.clients if mode == "uncached" else args.repeated_clients):
                log(f"size {human(size)}: {endpoint} {mode}, {clients} client(s), {args.duration:.0f} s...", end="")
                if not await wait_ready([args.base_url, args.query_url]):
                    log(" the stack is down; skipping the level")
                    continue
                row = await run_level(url, level_users, clients, args.duration, next_query, extra, cfg, args.query_url)
                row.update({"size": size, "endpoint": endpoint, "mode": mode})
                rows.append(row)
                pool.save()
                log(f" p50 {row.get('p50_ms')} / p99 {row.get('p99_ms')} ms, {row['qps']} QPS, "
                    f"CPU {row['cpu']['total_ms_per_search']} ms/search"
                    + (f", errors {sum(row['errors'].values())}" if row["errors"] else "")
                    + f", cache {row['answer_cache_field']}"
                    + (f", degraded {row['degraded_responses']} {row['degraded_sources']}" if row["degraded_sources"]
                       else ""))
    graph_lag_after = await graph_lag(cfg.kafka_bootstrap)
    return {"size": size, "users": len(users), "cache_flag_sent": cache_flag, "idle_cpu": idle,
            "graph_lag_events": {"before": graph_lag_before, "after": graph_lag_after}, "levels": rows}


# --- output ----------------------------------------------------------------------------


def saturation(levels: list[dict]) -> dict:
    out = {}
    for endpoint in ("gateway", "query-api"):
        for mode in ("uncached", "repeated"):
            rows = [r for r in levels if r["endpoint"] == endpoint and r["mode"] == mode]
            if rows:
                best = max(rows, key=lambda r: r["qps"])
                out[f"{endpoint}/{mode}"] = {"qps": best["qps"], "clients": best["clients"], "p99_ms": best.get("p99_ms")}
    return out


def breakdown_of(row: dict) -> dict:
    """Mean ms per request in segments that add up to the client-observed mean (per_request_split)."""
    return row.get("split_mean_ms") or {"client-observed (no Server-Timing)": row.get("mean_ms", 0.0)}


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["sizes"]
    fig, axes = plt.subplots(2, len(sizes), figsize=(6 * len(sizes), 8.4), squeeze=False)
    for col, block in enumerate(sizes):
        ax, qx = axes[0][col], axes[1][col]
        for endpoint, style in (("gateway", "-"), ("query-api", ":")):
            for mode, color in (("uncached", "tab:blue"), ("repeated", "tab:orange")):
                rows = sorted((r for r in block["levels"] if r["endpoint"] == endpoint and r["mode"] == mode
                               and "p50_ms" in r), key=lambda r: r["clients"])
                if not rows:
                    continue
                xs = [r["clients"] for r in rows]
                ax.plot(xs, [r["p99_ms"] for r in rows], style, color=color, marker="o",
                        label=f"{mode} p99 ({endpoint})")
                ax.plot(xs, [r["p50_ms"] for r in rows], style, color=color, marker="x", alpha=0.5,
                        label=f"{mode} p50 ({endpoint})")
                qx.plot(xs, [r["qps"] for r in rows], style, color=color, marker="o", label=f"{mode} ({endpoint})")
        one = ONE_CLIENT_TARGETS.get(block["size"]) if block["users"] == 1 else None
        if one:
            ax.axhline(one[1], color="tab:blue", linestyle="--", linewidth=0.8, label=f"target p99 one client {one[1]:g}")
        ax.axhline(P99_AT_10_MS, color="tab:grey", linestyle="--", linewidth=0.8, label="target p99 at 10 clients")
        ax.axhline(REPEATED_P99_MS, color="tab:orange", linestyle="--", linewidth=0.8, label="target p99 repeated")
        if block["size"] == HEADLINE_SIZE:
            qx.axhline(QPS_AT_10, color="tab:grey", linestyle="--", linewidth=0.8, label="target QPS at 10 clients")
        ticks = sorted({r["clients"] for r in block["levels"]})
        clients_axes((ax, qx), ticks, "concurrent clients (closed loop)", 7)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{block['size']:,} memories, {block['users']} user(s)")
        qx.set_ylabel("searches/s")
    fig.suptitle("Search vs clients, base URL\n(dashed: issue 20's targets)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "search_latency.png", dpi=110)
    plt.close(fig)

    bars = [(f"{human(b['size'])} {r['mode'][:5]}\n{r['clients']}c {'gw' if r['endpoint'] == 'gateway' else 'direct'}",
             breakdown_of(r), r.get("cpu", {}).get("ms_per_search", {})) for b in sizes for r in b["levels"]
            if "mean_ms" in r]
    fig, (ax, cx) = plt.subplots(2, 1, figsize=(max(8, 0.75 * len(bars) + 2), 10))
    cmap = plt.get_cmap("tab20")
    for axis, which, ylabel in ((ax, 1, "mean ms per request (wall)"), (cx, 2, "CPU ms per search")):
        names = list(dict.fromkeys(k for bar in bars for k in bar[which]))
        bottom = [0.0] * len(bars)
        for i, name in enumerate(names):
            values = [max(0.0, bar[which].get(name, 0.0)) for bar in bars]
            axis.bar(range(len(bars)), values, bottom=bottom, label=name, color=cmap(i % 20))
            bottom = [b + v for b, v in zip(bottom, values)]
        axis.set_xticks(range(len(bars)), [bar[0] for bar in bars], fontsize=7)
        axis.set_ylabel(ylabel)
        axis.legend(fontsize=7, ncol=2)
    cx.axhline(CPU_MS_PER_SEARCH, color="black", linestyle="--", linewidth=0.8)
    missing = not any(r.get("server_timing_responses") for b in sizes for r in b["levels"])
    ax.set_title("Where the time goes: Server-Timing (sources run concurrently: the slowest counts)"
                 + (" -- no Server-Timing header: client-observed only" if missing else ""))
    cx.set_title("CPU of each stack process per search (dashed: the 10 ms target for all of them together)")
    fig.tight_layout()
    fig.savefig(RESULTS / "search_breakdown.png", dpi=110)
    plt.close(fig)


def machine_line(m: dict) -> str:
    return (f"machine: {m.get('cores')} cores ({m.get('cpu', '?')}), {m.get('ram_gib')} GiB RAM, "
            f"load average {m.get('loadavg_1m_at_start', 0):.2f} at start")


def level_label(r: dict) -> str:
    return f"{r['endpoint']:<10}{r['mode']:<9}{r['clients']:>3}c"


def print_report(result: dict) -> None:
    print(machine_line(result["machine"]))
    print("corpus sizes: " + ", ".join(f"{b['size']:,} memories in {b['users']} user(s)" for b in result["sizes"]))
    for b in result["sizes"]:
        load = b["load"]
        print(f"\n== {b['size']:,} memories, {b['users']} user(s) ==")
        how = "reused from an earlier run, loaded" if b["reused"] else "loaded"
        applied = ", ".join(
            f"{n} " + (f"{load[f'{n}_applied_s']} s" if load.get(f"{n}_applied_s")
                       else f"not finished ({load.get(f'{n}_applied_fraction', 0) * 100:.0f} %)")
            for n in ("postgres", "redis", "neo4j", "sparse") if f"{n}_applied_fraction" in load)
        print(f"load ({how} {load.get('loaded_at')}): publish {load.get('publish_s')} s "
              f"({load.get('publish_per_s')}/s); applied by {applied}")
        print(f"graph lag (Neo4j events behind the log): {b['graph_lag_events']['before']} before, "
              f"{b['graph_lag_events']['after']} after the measurements; "
              f"\"cache\": false sent: {b['cache_flag_sent']}")
        idle = b.get("idle_cpu") or {}
        if idle:
            print(f"the stack idle (no search): {idle['stack_pct']} % of a core "
                  f"({cpu_accounting.top(idle['pct_of_a_core'])}); the machine {idle['machine_pct']} %")
        print(f"  {'endpoint':<10}{'mode':<9}{'':>4}{'n':>7}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}"
              f"{'QPS':>8}{'err%':>6}{'hit%':>6}{'emb%':>6}{'degr%':>6}{'CPU ms':>8}  machine busy")
        for r in b["levels"]:
            n = max(1, r["requests"])
            hits = r["answer_cache_field"].get("hit", 0)
            emb = r["query_api_cache_stats"]
            lookups = emb.get("embedding_lru", {}).get("hits", 0) + emb.get("embedding_lru", {}).get("misses", 0)
            redis_emb = emb.get("embedding_redis", {})
            computed = f"{100 * redis_emb.get('misses', 0) / lookups:.0f}" if lookups and redis_emb else "?"
            print(f"  {level_label(r)}{r['requests']:>7}{r.get('p50_ms', '-'):>8}"
                  f"{r.get('p90_ms', '-'):>8}{r.get('p99_ms', '-'):>8}{r.get('max_ms', '-'):>8}{r['qps']:>8}"
                  f"{r['error_pct']:>6.0f}{100 * hits / n:>6.0f}{computed:>6}{100 * r['degraded_responses'] / n:>6.0f}"
                  f"{r['cpu']['total_ms_per_search']:>8}  {r['cpu']['machine_pct']:.0f} %"
                  + (" CONTENDED" if r["contended"] else "") + (" STACK-INTERRUPTED" if r["stack_interrupted"] else ""))
        print("  n = answered searches; QPS = answers/s; err% = requests answered with an error; hit% = answers from "
              "the answer cache; emb% = query embeddings the model computed (not from the LRU or Redis; the query "
              "API's /v1/stats/cache); degr% = answers with a source left out; CPU ms = CPU of all the stack's "
              "processes per answered search; machine busy: % of one core (2 cores = 200 %)")
        for r in b["levels"]:
            if r["errors"]:
                print(f"  errors {level_label(r)}: {r['errors']}")
            d = r.get("degraded", {})
            if d.get("degraded_answers"):
                print(f"  degraded {level_label(r)}: {d['degraded_answers']} of {d['answers']} answers; per source "
                      f"(budget / failed): " + ", ".join(f"{s} {k['budget']}/{k['failed']}"
                                                       for s, k in d["by_source"].items())
                      + f"; e.g. {d['reason_sample']}")
        print("  QPS at saturation: " + "; ".join(f"{k} {v['qps']} QPS at {v['clients']} clients (p99 {v['p99_ms']} ms)"
                                                for k, v in b["saturation"].items()))
        print("  CPU ms per search per process (the bench client and other processes are not in the total):")
        for r in b["levels"]:
            c = r["cpu"]
            print(f"    {level_label(r)}  total {c['total_ms_per_search']} = {cpu_accounting.top(c['ms_per_search'], 8)}"
                  f"; client {c['client_ms_per_search']}, other {c['other_ms_per_search']}"
                  + (f"; not found: {', '.join(c['not_found'])}" if c["not_found"] else ""))
        st_rows = [r for r in b["levels"] if r.get("server_timing")]
        if st_rows:
            print("  Server-Timing p50/p99 ms per entry (n = answers with it) beside the client's p50/p99:")
            for r in st_rows:
                entries = ", ".join(f"{k} {v['p50_ms']:g}/{v['p99_ms']:g}" + (f" (n={v['n']})" if v["n"] < r["requests"]
                                                                           else "")
                                    for k, v in r["server_timing"].items())
                print(f"    {level_label(r)}  client {r['p50_ms']}/{r['p99_ms']} | {entries}")
            print("  mean per request, in segments adding up to the client's mean (sources concurrent: the slowest):")
            for r in st_rows:
                split = ", ".join(f"{k} {v:.1f}" for k, v in r.get("split_mean_ms", {}).items())
                print(f"    {level_label(r)}  mean {r['mean_ms']:.1f} = {split}")
        else:
            print("  where the time goes: the query API sent no Server-Timing header (client-observed latency only)")
    print("\nissue 20's targets (through the base URL, uncached, all four sources fused):")
    for t in result["targets"]:
        print(f"  [{t['verdict']}] {t['target']}: {t['measured']}")
    q = result["queries"]
    print(f"uncached query texts: {q['distinct_used']:,} never sent before (LoCoMo questions and phrased variants, "
          f"from #{q['first_index']:,} of the sequence); repeated: {q['repeated_set']} questions")
    print(f"results: {RESULTS / 'search.json'}; plots: {RESULTS / 'search_latency.png'}, "
          f"{RESULTS / 'search_breakdown.png'}")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080"),
                    help="the gateway")
    ap.add_argument("--query-url", default="http://127.0.0.1:8082", help="the query API, direct")
    ap.add_argument("--sizes", default="10000,100000", help="corpus sizes, comma-separated (1000000: 100 users)")
    ap.add_argument("--clients", default="1,2,4,10", help="closed-loop clients of the uncached levels")
    ap.add_argument("--repeated-clients", default="1,10", help="clients of the repeated-query levels (answer cache)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per level")
    ap.add_argument("--graph-wait", type=float, default=300.0,
                    help="seconds to wait for Neo4j after Postgres and Redis applied a new corpus")
    ap.add_argument("--endpoints", default="gateway", help="gateway (the base URL) and/or query-api (direct)")
    ap.add_argument("--one-user", action="store_true", help="1M in one user instead of 100 (the 1M-per-user tier)")
    ap.add_argument("--quick", action="store_true", help="10k only, 5 s per level")
    ap.add_argument("--load-only", action="store_true", help="load (or check) the corpora, measure nothing")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.duration = "10000", 5.0
    args.clients = [int(c) for c in args.clients.split(",")]
    args.repeated_clients = [int(c) for c in args.repeated_clients.split(",") if c.strip()]
    sizes = [int(s) for s in args.sizes.split(",")]
    bootstrap.settings()  # a bad configuration fails here, before any load
    async with httpx.AsyncClient(headers=api_headers(), timeout=5) as client:
        for url in (args.base_url, args.query_url):
            try:
                (await client.get(f"{url}/readyz")).raise_for_status()
            except httpx.HTTPError as exc:
                log(f"{url}/readyz: {type(exc).__name__} {exc}; start the stack first: recallstack up --detach")
                return 1
    tools: dict = {}
    pool = DistinctQueries()
    result = {"machine": machine(), "clients": args.clients, "duration_s": args.duration, "sizes": []}
    corpora = {size: await ensure_corpus(size, args.graph_wait, tools, args.one_user) for size in sizes}
    if args.load_only:
        for size, entry in corpora.items():
            print(f"{size:,}: {entry['load']}")
        return 0
    for size in sizes:
        block = await measure_size(size, corpora[size], args, pool)
        block["load"] = {k: v for k, v in corpora[size]["load"].items() if k != "targets"}
        block["reused"] = corpora[size]["reused"]
        block["saturation"] = saturation(block["levels"])
        result["sizes"].append(block)
    pool.save()
    result["queries"] = {"questions": len(pool.base), "distinct_used": pool.used, "first_index": pool.first,
                         "repeated_set": REPEATED}
    result["targets"] = search_targets(result)
    result["server_timing_seen"] = any(r.get("server_timing_responses") for b in result["sizes"] for r in b["levels"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(result, indent=2))
    plot(result)
    if args.json:  # the suite keeps stdout's JSON; the tables go to stderr (its terminal and log)
        with contextlib.redirect_stdout(sys.stderr):
            print_report(result)
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
