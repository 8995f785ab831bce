"""bench/results/REPORT.md and report.json from the JSON files of a suite run (bench/suite.py).

    python bench/report.py [--out bench/results]

Regenerates the report from the JSON already there (suite.json, embedder, slice, write,
visibility, replay, search, locomo, peer; mixed_load and chaos when the chaos helper's benches
ran: their sections come from bench.mixed_load.report_markdown / bench.chaos.report_markdown).
The headline table sets each claim of the seeds beside the figure measured here: met, not met,
or not measured in this mode. figures(), claims() and render() are pure (tests/unit).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the benches import each other from bench/

import search_report  # noqa: E402
import search_targets  # noqa: E402
from search_level import clients_axes  # noqa: E402
from search_targets import all_targets  # noqa: E402

SOURCES = ("suite", "embedder", "slice", "write", "visibility", "replay", "search", "locomo", "peer",
           "mixed_load", "chaos")
MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured in this mode"
FAST_MS = 100.0  # "sub-100 ms memory operations"
TARGET_QPS = 1000.0
AGENTS = 20
AGENT_P99_MS = 1000.0  # what "serves 20 concurrent agents" is taken to mean: no errors, p99 under 1 s
PER_USER = 1_000_000
AVAILABILITY = 0.999


RATIO_LABELS = {"add_per_s": "adds/s", "add_p50_ms": "add p50", "search_p50_ms": "search p50",
                "search_p99_ms": "search p99", "search_concurrent_qps": "search QPS at 10 clients",
                "search_concurrent_p50_ms": "search p50 at 10 clients",
                "search_concurrent_p99_ms": "search p99 at 10 clients", "add_concurrent_per_s": "adds/s at 10 clients"}


def load(out: Path) -> dict:
    run = {}
    for name in SOURCES:
        path = out / f"{name}.json"
        if path.exists():
            try:
                run[name] = json.loads(path.read_text())
            except ValueError:
                run[name] = {"_unreadable": str(path)}
    return run


# --- figures (pure) ---------------------------------------------------------------------------

def search_rows(search: dict, endpoint: str = "gateway", mode: str = "uncached") -> list[dict]:
    """Every measured level of one endpoint and mode, with the corpus per user."""
    rows = []
    for block in search.get("sizes", []):
        for r in block.get("levels", []):
            if r.get("endpoint") == endpoint and r.get("mode") == mode and "p50_ms" in r:
                rows.append(dict(r, size=block["size"], users=block["users"], per_user=block["size"] // max(1, block["users"])))
    return rows


def availability_of(result: dict | None) -> float | None:
    """A fraction from the chaos helper's JSON: the first numeric key that names availability."""
    if not isinstance(result, dict):
        return None
    stack = [result]
    while stack:
        d = stack.pop(0)
        for k, v in d.items():
            if "availability" in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool):
                return v / 100 if v > 1 else float(v)
            if isinstance(v, dict):
                stack.append(v)
    return None


def figures(run: dict) -> dict:
    """Every headline figure of a run in one flat dict (None when the step did not run)."""
    f: dict = {}
    write = run.get("write", {})
    one = next((r for r in write.get("single_add", []) if r.get("clients") == 1), None)
    f["add_p50_ms"], f["add_p99_ms"] = (one or {}).get("median_ms"), (one or {}).get("p99_ms")
    f["add_per_s_max"] = max((r.get("throughput_per_s", 0) for r in write.get("single_add", [])), default=None)
    f["batch_ingest_per_s"] = write.get("batch_ingest", {}).get("memories_per_s")
    vis = {r["projection"]: r for r in run.get("visibility", {}).get("visibility", [])}
    f["visible_p50_ms"] = {k: v.get("p50_ms") for k, v in vis.items()} or None
    f["visible_p99_ms"] = {k: v.get("p99_ms") for k, v in vis.items()} or None
    f["replay_events_per_s"] = {f"{r['projection']}@{r['events']}": r.get("overall_events_per_s")
                                for r in run.get("replay", {}).get("replay", [])} or None
    rows = search_rows(run.get("search", {}))
    f["search_sizes"] = sorted({r["size"] for r in rows})
    largest = max(rows, key=lambda r: r["size"])["size"] if rows else None
    single = [r for r in rows if r["clients"] == 1 and r["size"] == largest]
    f["search_size"] = largest
    f["search_p50_ms"] = single[0]["p50_ms"] if single else None
    f["search_p99_ms"] = single[0]["p99_ms"] if single else None
    f["search_qps_max"] = max((r["qps"] for r in rows), default=None)
    cached = search_rows(run.get("search", {}), mode="repeated")
    f["search_qps_max_repeated"] = max((r["qps"] for r in cached), default=None)
    crowd = sorted((r for r in rows if r["clients"] >= AGENTS and r["size"] == largest), key=lambda r: r["clients"])
    f["agents_clients"] = crowd[0]["clients"] if crowd else None
    f["agents_p99_ms"] = crowd[0]["p99_ms"] if crowd else None
    f["agents_error_pct"] = crowd[0].get("error_pct") if crowd else None
    f["per_user_max"] = max((r["per_user"] for r in rows), default=None)
    big = [r for r in rows if r["per_user"] == f["per_user_max"] and r["clients"] == 1]
    f["per_user_max_p99_ms"] = big[0]["p99_ms"] if big else None
    every = rows + cached
    answered = sum(r.get("requests", 0) for r in every)
    failed = sum(sum((r.get("errors") or {}).values()) for r in every)
    f["search_success_rate"] = answered / (answered + failed) if answered + failed else None
    # Only make chaos injects faults; the mixed load's share of answered requests is without them.
    f["availability_under_faults"] = availability_of(run.get("chaos"))
    f["mixed_load_success_rate"] = availability_of(run.get("mixed_load"))
    loc = run.get("locomo", {}).get("metrics", {}).get("fused", {}).get("overall", {})
    f["locomo"] = {k: round(v, 3) for k, v in loc.items() if k.startswith(("hit@", "recall@"))} or None
    peer = run.get("peer", {})
    f["peer_ratios"] = peer.get("ratios_recallstack_over_mem0")
    f["targets"] = all_targets(run)
    return f


def claims(f: dict) -> list[dict]:
    """The seeds' claims, each with the figure measured and a verdict."""
    out = []

    def row(claim, measured, verdict, basis):
        out.append({"claim": claim, "measured": measured, "verdict": verdict, "basis": basis})

    if f.get("add_p99_ms") is None or f.get("search_p99_ms") is None:
        row("sub-100 ms memory operations", "-", NOT_MEASURED, "write and search steps")
    else:
        ok = f["add_p99_ms"] < FAST_MS and f["search_p99_ms"] < FAST_MS
        row("sub-100 ms memory operations",
            f"add p50 {f['add_p50_ms']} / p99 {f['add_p99_ms']} ms; search p50 {f['search_p50_ms']} / p99 "
            f"{f['search_p99_ms']} ms ({f['search_size']:,} memories)", MET if ok else NOT_MET,
            "p99 under 100 ms, one client, through the gateway, search uncached")
    if f.get("search_qps_max") is None:
        row("1000 QPS", "-", NOT_MEASURED, "search step")
    else:
        extra = (f"; repeated queries (answer cache) {f['search_qps_max_repeated']} QPS"
                 if f.get("search_qps_max_repeated") is not None else "")
        extra += f"; batch ingest {f['batch_ingest_per_s']} memories/s" if f.get("batch_ingest_per_s") else ""
        row("1000 QPS", f"search {f['search_qps_max']} QPS uncached{extra}",
            MET if f["search_qps_max"] >= TARGET_QPS else NOT_MET, "best uncached search QPS over the client levels")
    if f.get("agents_clients") is None:
        row("20 concurrent agents", "-", NOT_MEASURED, f"a search level of {AGENTS}+ clients")
    else:
        ok = (f.get("agents_error_pct") or 0) == 0 and f["agents_p99_ms"] < AGENT_P99_MS
        row("20 concurrent agents", f"{f['agents_clients']} clients searching: p99 {f['agents_p99_ms']} ms, "
            f"errors {f.get('agents_error_pct') or 0} %", MET if ok else NOT_MET,
            f"no errors and p99 under {AGENT_P99_MS:.0f} ms at {AGENTS} closed-loop clients")
    if not f.get("per_user_max") or f["per_user_max"] < PER_USER:
        largest = f"largest corpus per user searched: {f['per_user_max']:,}" if f.get("per_user_max") else "-"
        row("1M memories per user", largest, NOT_MEASURED, "a search tier of 1M memories in one user")
    else:
        ok = f["per_user_max_p99_ms"] is not None and f["per_user_max_p99_ms"] < FAST_MS
        row("1M memories per user", f"{f['per_user_max']:,} in one user: search p99 {f['per_user_max_p99_ms']} ms",
            MET if ok else NOT_MET, "search p99 under 100 ms, one client")
    if f.get("availability_under_faults") is not None:
        a = f["availability_under_faults"]
        row("99.9% availability", f"{100 * a:.3f} % of requests answered while each component was killed in turn",
            MET if a >= AVAILABILITY else NOT_MET, "`make chaos` (bench/chaos.py): every request of its mixed load")
    elif f.get("mixed_load_success_rate") is not None or f.get("search_success_rate") is not None:
        a = f["mixed_load_success_rate"] if f.get("mixed_load_success_rate") is not None else f["search_success_rate"]
        row("99.9% availability", f"{100 * a:.3f} % of searches answered (no fault injected)",
            MET if a >= AVAILABILITY else NOT_MET, "no faults injected here; `make chaos` measures it under faults")
    else:
        row("99.9% availability", "-", NOT_MEASURED, "`make chaos`")
    return out


# --- markdown (pure) --------------------------------------------------------------------------

def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def image(name: str, plots: set[str], alt: str) -> str:
    return f"\n![{alt}]({name})\n" if name in plots else ""


def corpus_sizes(run: dict) -> dict:
    """How much data each step worked on, for the machine-and-versions table."""
    out = {}
    blocks = run.get("search", {}).get("sizes", [])
    if blocks:
        out["search"] = ", ".join(f"{b['size']:,} memories in {b['users']} user(s)" for b in blocks)
    if run.get("write"):
        c = run["write"].get("corpus", {})
        out["write"] = f"{c.get('single_adds_per_level')} adds per client level, {c.get('batch_memories')} in batches"
    if run.get("replay", {}).get("replay"):
        out["replay"] = ", ".join(f"{n:,} events" for n in sorted({r["events"] for r in run["replay"]["replay"]}))
    if run.get("visibility"):
        out["visibility"] = f"{run['visibility'].get('events')} events"
    for name in ("locomo", "peer"):
        c = run.get(name, {}).get("corpus")
        if c:
            out[name] = f"{c.get('conversations')} LoCoMo conversations, {c.get('memories')} memories, {c.get('questions')} questions"
    return out


def ordered_phases(rss: dict) -> list[str]:
    """idle first, then the loads in the order the suite runs them."""
    known = ["idle", "ingest", "search", "mixed"]
    return [p for p in known if p in rss] + [p for p in rss if p not in known]


def busy_note(m: dict) -> str:
    """A warning when the machine was already busy when the run started (figures pessimistic)."""
    load, cores = m.get("loadavg_1m_at_start"), m.get("cores")
    if isinstance(load, (int, float)) and isinstance(cores, int) and load > cores:
        return (f" **The machine was busy with other work when the run started (load average {load:.1f} on {cores} "
                "cores): latencies and rates are pessimistic.**")
    return ""


def fmt_pair(latency: dict) -> str | None:
    return f"{latency['p50_ms']} / {latency['p99_ms']}" if latency.get("p50_ms") is not None else None


def diff_text(value) -> str:
    return f"{value:.1g}" if isinstance(value, (int, float)) else "not checked"


def spread(values: list[float] | None) -> str | None:
    """A few milliseconds as "a, b, c" (rounded), None when there are none."""
    return ", ".join(f"{v:.0f}" for v in values) if values else None


def helper_section(name: str, result: dict | None) -> str:
    """The chaos helper's markdown for mixed_load / chaos, or "not run"."""
    if result is None:
        return "not run"
    try:
        module = importlib.import_module(f"bench.{name}")
        return module.report_markdown(result)
    except (ImportError, AttributeError) as exc:
        return f"not run (bench.{name}.report_markdown unavailable: {exc})"
    except Exception as exc:  # noqa: BLE001 - one section must not sink the report
        return f"could not render {name}.json: {type(exc).__name__}: {exc}"


def render(run: dict, f: dict, verdicts: list[dict], plots: set[str]) -> str:
    suite = run.get("suite", {})
    m = suite.get("machine") or next((run[k]["machine"] for k in SOURCES if isinstance(run.get(k), dict)
                                      and "machine" in run[k]), {})
    v = suite.get("versions", {})
    md = [f"# recallstack benchmark report ({suite.get('mode', '?')} mode)", "",
          f"Run {suite.get('started_at_first') or suite.get('started_at', '?')} to {suite.get('finished_at', '?')}"
          + (f" (steps rerun from {suite['started_at']})" if suite.get("started_at_first") else "")
          + f", stack: {suite.get('stack', '?')} (start: the suite's own; running: a stack already up). "
          "Regenerate with `python bench/report.py`." + busy_note(m), "",
          "## Issue 20: search targets", "", *search_report.targets_section(f.get("targets") or []), "",
          "## Claims of the seeds", "",
          table(["claim", "measured here", "verdict", "how it is judged"],
                [[c["claim"], c["measured"], f"**{c['verdict']}**", c["basis"]] for c in verdicts])]
    ratios = f.get("peer_ratios")
    if ratios:
        md += ["", "Against mem0 (ratios recallstack / mem0; throughput and hit@k above 1 and latency below 1 favour "
               "recallstack): " + ", ".join(f"{RATIO_LABELS.get(k, k)} {val}" for k, val in ratios.items()
                                           if val is not None) + "."]
    steps = suite.get("steps", [])
    failed = [s for s in steps if s.get("status") != "ok"]
    md += ["", "## Steps", "", table(["step", "status", "seconds", "arguments"],
                                     [[s["name"], s.get("status"), s.get("seconds"), " ".join(s.get("argv", [])[1:])]
                                      for s in steps])]
    for s in failed:
        md += ["", f"**{s['name']} failed**: `{(s.get('error') or '')[:600]}`"]
    md += ["", "## Machine and versions", "",
           table(["what", "value"], [["CPU", m.get("cpu")], ["cores", m.get("cores")], ["RAM (GiB)", m.get("ram_gib")],
                                     ["load average at start (1 min)", round(m.get("loadavg_1m_at_start") or 0, 2)]]
                 + [[k, val] for k, val in v.items()]
                 + [[f"corpus: {k}", val] for k, val in corpus_sizes(run).items()])]
    write = run.get("write")
    md += ["", "## Ingest: throughput and ack latency", ""]
    if write:
        md += [table(["clients", "adds", "ack p50 ms", "ack p99 ms", "adds/s", "shed (429/503) %"],
                     [[r["clients"], r["requests"], r["median_ms"], r["p99_ms"], r["throughput_per_s"], r.get("error_pct")]
                      for r in write.get("single_add", [])])]
        b = write.get("batch_ingest", {})
        md += ["", f"Batch ingest: {b.get('memories_per_s')} memories/s ({b.get('memories')} memories, "
               f"{b.get('batch_size')} per call); embedder alone {write.get('split', {}).get('embedder_alone', {}).get('memories_per_s')}"
               f"/s, Kafka append alone {write.get('split', {}).get('kafka_append_alone', {}).get('memories_per_s')}/s."]
        md += [image("report_ingest.png", plots, "ingest")]
    else:
        md += ["not run"]
    sl = run.get("slice")
    if sl:
        ack, ryw = sl.get("add_ack", {}), sl.get("add_then_search_read_your_writes", {})
        md += ["", f"Add, then a search with its consistency token (read-your-writes; one client, "
               f"{sl.get('corpus', {}).get('memories_of_this_user')} memories): ack p50 {ack.get('median_ms')} / p99 "
               f"{ack.get('p99_ms')} ms; add to found p50 {ryw.get('median_ms')} / p99 {ryw.get('p99_ms')} ms."]
    vis = run.get("visibility")
    md += ["", "## Event-to-visible lag", ""]
    if vis:
        md += [f"{vis.get('events')} events at {vis.get('rate_per_s')}/s (achieved {vis.get('achieved_rate_per_s')}/s); "
               f"append p50 {vis.get('append_ms', {}).get('p50')} ms p99 {vis.get('append_ms', {}).get('p99')} ms.", "",
               table(["read model", "visible", "p50 ms", "p99 ms", "max ms"],
                     [[r["projection"], r["visible"], r["p50_ms"], r["p99_ms"], r["max_ms"]] for r in vis.get("visibility", [])]),
               image("visibility.png", plots, "visibility")]
    else:
        md += ["not run"]
    md += ["", "## Search: latency, QPS, CPU per search, Server-Timing", ""]
    md += search_report.search_section(run.get("search", {}))
    if search_rows(run.get("search", {})):
        md += [image("report_search_clients.png", plots, "search vs clients"),
               image("report_search_size.png", plots, "search vs corpus size"),
               image("search_latency.png", plots, "search latency and QPS vs clients"),
               image("search_breakdown.png", plots, "where the time and the CPU go")]
    rp = run.get("replay", {}).get("replay")
    md += ["", "## Replay speed", ""]
    md += [table(["read model", "events", "apply events/s", "index s", "overall events/s"],
                 [[r["projection"], f"{r['events']:,}", r.get("apply_events_per_s"), r.get("index_s"),
                   r.get("overall_events_per_s")] for r in rp]), image("replay.png", plots, "replay")] if rp else ["not run"]
    rss = suite.get("rss", {})
    md += ["", "## Memory (RSS) of each process", ""]
    if rss:
        names = sorted({n for phase in rss.values() for n in phase})
        phases = ordered_phases(rss)
        md += ["Peak RSS in MB of each stack process with its children (PSS in brackets: shared pages split), "
               "idle and while the write and search steps ran:", "",
               table(["process"] + phases, [[n] + [f"{rss[p][n]['rss_mb_peak']} ({rss[p][n]['pss_mb_peak']})"
                                                   if n in rss[p] else None for p in phases] for n in names]),
               image("report_rss.png", plots, "rss")]
    else:
        md += ["not run"]
    emb = run.get("embedder")
    if emb:
        md += ["", f"Embedder alone: load {emb.get('load_s')} s, one text p50 {emb.get('single', {}).get('median_ms')} ms, "
               f"batches {emb.get('batch64', {}).get('per_s')} texts/s, RSS after load {emb.get('rss_mib', {}).get('after_load')} MiB."]
    loc = run.get("locomo")
    md += ["", "## LoCoMo retrieval quality", ""]
    if loc:
        c = loc.get("corpus", {})
        md += [f"{c.get('conversations')} conversations, {c.get('memories')} memories, {c.get('questions')} questions "
               f"(categories 1-4), limit {loc.get('search', {}).get('limit')}:", "",
               table(["method", "hit@1", "hit@5", "hit@10", "recall@5", "recall@10"],
                     [[name] + [round(mt.get("overall", {}).get(k, 0), 3) for k in ("hit@1", "hit@5", "hit@10", "recall@5", "recall@10")]
                      for name, mt in loc.get("metrics", {}).items()]),
               image("locomo.png", plots, "locomo")]
    else:
        md += ["not run"]
    peer = run.get("peer")
    md += ["", "## Beside mem0", ""]
    if peer and peer.get("recallstack") and peer.get("mem0"):
        rs, p0 = peer["recallstack"], peer["mem0"]
        c = peer["corpus"]

        def lat(side, key):
            return side.get(key, {}).get("latency", {})

        md += [f"mem0ai {p0.get('version')} (`Memory`, {p0.get('store')} local store, infer off, telemetry off) and "
               f"recallstack on the same {c['memories']} memories and {c['questions']} questions "
               f"({c['conversations']} LoCoMo conversations, one user each, k = {peer.get('limit')}), the same MiniLM "
               f"code and weights (largest coordinate difference between the two sides' vectors of probe texts: "
               f"{diff_text(p0.get('embedder_max_abs_diff'))}):", "",
               table(["figure", "recallstack", "mem0", "ratio rs/mem0"],
                     [["adds/s, one client", rs["add"]["per_s"], p0["add"]["per_s"], ratios.get("add_per_s")],
                      ["add p50 ms (recallstack: ack)", lat(rs, "add").get("p50_ms"), lat(p0, "add").get("p50_ms"), ratios.get("add_p50_ms")],
                      ["add p99 ms", lat(rs, "add").get("p99_ms"), lat(p0, "add").get("p99_ms"), None],
                      ["last ack to searchable ms (per user)", spread(rs["add"].get("last_ack_to_searchable_ms")), "0 (synchronous)", None],
                      ["search p50 ms, one client", lat(rs, "search").get("p50_ms"), lat(p0, "search").get("p50_ms"), ratios.get("search_p50_ms")],
                      ["search p99 ms, one client", lat(rs, "search").get("p99_ms"), lat(p0, "search").get("p99_ms"), ratios.get("search_p99_ms")],
                      [f"search p50 ms, {rs.get('search_concurrent', {}).get('clients')} clients",
                       lat(rs, "search_concurrent").get("p50_ms"), lat(p0, "search_concurrent").get("p50_ms"), ratios.get("search_concurrent_p50_ms")],
                      [f"search p99 ms, {rs.get('search_concurrent', {}).get('clients')} clients",
                       lat(rs, "search_concurrent").get("p99_ms"), lat(p0, "search_concurrent").get("p99_ms"), ratios.get("search_concurrent_p99_ms")],
                      [f"search QPS, {rs.get('search_concurrent', {}).get('clients')} clients",
                       rs.get("search_concurrent", {}).get("qps"), p0.get("search_concurrent", {}).get("qps"), ratios.get("search_concurrent_qps")],
                      ["search p50 / p99 ms, quality pass (recallstack's query vectors may be cached)",
                       fmt_pair(lat(rs, "quality_pass")), fmt_pair(lat(p0, "quality_pass")), None],
                      [f"adds/s, {rs.get('add_concurrent', {}).get('clients')} clients",
                       rs.get("add_concurrent", {}).get("per_s"), p0.get("add_concurrent", {}).get("per_s"), ratios.get("add_concurrent_per_s")]]
                     + [["recallstack answers with a source left out (1 client / 10 clients / quality pass)",
                         " / ".join(str(rs.get(k, {}).get("degraded_responses", "-"))
                                    for k in ("search", "search_concurrent", "quality_pass")), "-", None]]
                     + [[f"LoCoMo hit@{k}", round(rs["quality"]["overall"][f"hit@{k}"], 3),
                         round(p0["quality"]["overall"][f"hit@{k}"], 3), ratios.get(f"hit@{k}")] for k in (1, 5, 10)]
                     + [[f"LoCoMo recall@{k}", round(rs["quality"]["overall"][f"recall@{k}"], 3),
                         round(p0["quality"]["overall"][f"recall@{k}"], 3), None] for k in (5, 10)]),
               "", *search_report.targets_section(search_targets.peer_targets(peer), intro=None),
               image("peer.png", plots, "peer"), "What differs:", ""]
        md += [f"- {d}" for d in peer.get("differences", [])]
    else:
        md += ["not run"]
    md += ["", "## Mixed load", "", helper_section("mixed_load", run.get("mixed_load")),
           "", "## Fault injection", "", helper_section("chaos", run.get("chaos")), ""]
    return "\n".join(md)


# --- plots ------------------------------------------------------------------------------------

def plot_all(run: dict, out: Path) -> set[str]:
    """The report's own plots; returns the names of every PNG in `out` (the benches' too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write = run.get("write")
    if write and write.get("single_add"):
        rows = write["single_add"]
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        xs = [str(r["clients"]) for r in rows]
        a.plot(xs, [r["median_ms"] for r in rows], "o-", label="p50")
        a.plot(xs, [r["p99_ms"] for r in rows], "s--", label="p99")
        a.set_xlabel("clients")
        a.set_ylabel("ack ms")
        a.set_title("add ack latency")
        a.legend()
        bars = {f"{r['clients']} clients": r["throughput_per_s"] for r in rows}
        if write.get("batch_ingest"):
            bars["batch"] = write["batch_ingest"]["memories_per_s"]
        b.bar(list(bars), list(bars.values()), color="tab:green")
        b.set_ylabel("memories/s")
        b.set_title("ingest throughput")
        fig.tight_layout()
        fig.savefig(out / "report_ingest.png", dpi=100)
        plt.close(fig)
    rows = search_rows(run.get("search", {}))
    if rows:
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        for size in sorted({r["size"] for r in rows}):
            level = sorted((r for r in rows if r["size"] == size), key=lambda r: r["clients"])
            line, = a.plot([r["clients"] for r in level], [r["p50_ms"] for r in level], "o-", label=f"{size:,} p50")
            a.plot([r["clients"] for r in level], [r["p99_ms"] for r in level], "s--", color=line.get_color(), label=f"{size:,} p99")
            b.plot([r["clients"] for r in level], [r["qps"] for r in level], "o-", label=f"{size:,}")
        ticks = sorted({r["clients"] for r in rows})
        clients_axes((a, b), ticks, "concurrent clients", 8)
        a.set_yscale("log")
        a.set_ylabel("ms")
        a.set_title("search latency vs clients (uncached, gateway)")
        b.set_ylabel("QPS")
        b.set_title("search throughput vs clients")
        fig.tight_layout()
        fig.savefig(out / "report_search_clients.png", dpi=100)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for clients in sorted({r["clients"] for r in rows}):
            level = sorted((r for r in rows if r["clients"] == clients), key=lambda r: r["size"])
            if len(level) > 1 or len({r['size'] for r in rows}) == 1:
                ax.plot([r["size"] for r in level], [r["p99_ms"] for r in level], "o-", label=f"{clients} clients p99")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(FAST_MS, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("memories in the corpus")
        ax.set_ylabel("p99 ms")
        ax.set_title("search p99 vs corpus size (uncached, gateway)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "report_search_size.png", dpi=100)
        plt.close(fig)
    rss = run.get("suite", {}).get("rss", {})
    if rss:
        names = sorted({n for phase in rss.values() for n in phase})
        fig, ax = plt.subplots(figsize=(11, 4.5))
        width = 0.8 / len(rss)
        for i, phase in enumerate(ordered_phases(rss)):
            ax.bar([x + i * width for x in range(len(names))], [rss[phase].get(n, {}).get("pss_mb_peak", 0) for n in names],
                   width, label=phase)
        ax.set_xticks([x + width * (len(rss) - 1) / 2 for x in range(len(names))], names, rotation=30, ha="right")
        ax.set_ylabel("peak PSS MB (with children; shared pages split)")
        ax.set_title("memory of each process")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "report_rss.png", dpi=100)
        plt.close(fig)
    return {p.name for p in out.glob("*.png")}


def write(out: Path) -> Path:
    out = Path(out)
    sys.path[:0] = [str(BENCH.parent)]  # bench.mixed_load / bench.chaos
    run = load(out)
    f = figures(run)
    verdicts = claims(f)
    try:
        plots = plot_all(run, out)
    except Exception as exc:  # noqa: BLE001 - the tables still go out
        print(f"plots failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        plots = set()
    (out / "REPORT.md").write_text(render(run, f, verdicts, plots))
    (out / "report.json").write_text(json.dumps({"targets": f["targets"], "figures": f, "claims": verdicts, "runs": {
        k: v for k, v in run.items() if k != "locomo"} | {"locomo": {k: v for k, v in run.get("locomo", {}).items()
                                                                     if k != "per_question"}}}, indent=2, default=str))
    return out / "REPORT.md"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(BENCH / "results"))
    args = ap.parse_args()
    print(write(Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
