"""Issue 20's search targets, each judged from a run's JSON (search.json, peer.json, locomo.json).
Pure (tests/unit): figures in, rows {target, measured, verdict} out.

Every search figure is through the base URL (the proxy), uncached (`cache: false`, a query text
never sent before), all four sources fused. The uncached tiers are one user with 10k and with
100k memories; 1M over 100 users is reported, not judged. The throughput, CPU and
repeated-query targets are judged on the 10k tier.
"""

from __future__ import annotations

MET, NOT_MET, NOT_MEASURED, REPORTED = "met", "not met", "not measured", "reported"
ONE_CLIENT = {10_000: (10.0, 25.0), 100_000: (15.0, 40.0)}  # memories in one user: p50, p99 ms
CPU_MS_PER_SEARCH = 10.0
QPS_AT_10, P99_AT_10_MS = 150.0, 150.0
REPEATED_P99_MS = 5.0
PEER_P50_RATIO, PEER_P99_RATIO, PEER_HIT10_RATIO = 0.6, 0.8, 1.2
LOCOMO_HIT10 = 0.70
HEADLINE_SIZE = 10_000
SOURCES = ("dense", "sparse", "temporal", "graph")


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


def level(search: dict, size: int, users: int, clients: int, mode: str = "uncached",
          endpoint: str = "gateway") -> dict | None:
    """One measured level of search.json, None when it was not run (or had no answer)."""
    for block in search.get("sizes", []):
        if block.get("size") == size and block.get("users") == users:
            for r in block.get("levels", []):
                if (r.get("endpoint") == endpoint and r.get("mode") == mode and r.get("clients") == clients
                        and "p50_ms" in r):
                    return r
    return None


def _row(target: str, measured: str | None, ok: bool | None, verdict: str | None = None) -> dict:
    if verdict is None:
        verdict = NOT_MEASURED if ok is None else (MET if ok else NOT_MET)
    return {"target": target, "measured": measured or "-", "verdict": verdict}


def _budget_misses(r: dict) -> int:
    return sum(kinds.get("budget", 0) for kinds in (r.get("degraded") or {}).get("by_source", {}).values())


def search_targets(search: dict) -> list[dict]:
    out = []
    for size, (p50, p99) in ONE_CLIENT.items():
        r = level(search, size, 1, 1)
        out.append(_row(f"{human(size)} memories in one user, one client: p50 <= {p50:g} ms, p99 <= {p99:g} ms",
                        r and f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms ({r['requests']} searches)",
                        r and (r["p50_ms"] <= p50 and r["p99_ms"] <= p99)))
    r = level(search, 1_000_000, 100, 1)
    out.append(_row("1M memories over 100 users, one client: measured and reported",
                    r and f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms ({r['requests']} searches)", None,
                    REPORTED if r else NOT_MEASURED))
    size = human(HEADLINE_SIZE)
    ten = level(search, HEADLINE_SIZE, 1, 10)
    cpu = (ten or {}).get("cpu", {}).get("total_ms_per_search")
    out.append(_row(f"CPU per uncached search, all stack processes together, <= {CPU_MS_PER_SEARCH:g} ms "
                    f"({size}, 10 clients)",
                    cpu is not None and f"{cpu} ms ({', '.join(f'{k} {v:g}' for k, v in list(ten['cpu']['ms_per_search'].items())[:5])})",
                    None if cpu is None else cpu <= CPU_MS_PER_SEARCH))
    out.append(_row(f">= {QPS_AT_10:g} uncached QPS at 10 clients with p99 <= {P99_AT_10_MS:g} ms ({size})",
                    ten and f"{ten['qps']} QPS, p50 {ten['p50_ms']} / p99 {ten['p99_ms']} ms",
                    ten and (ten["qps"] >= QPS_AT_10 and ten["p99_ms"] <= P99_AT_10_MS)))
    rep = level(search, HEADLINE_SIZE, 1, 1, mode="repeated")
    out.append(_row(f"repeated query, one client: p99 <= {REPEATED_P99_MS:g} ms ({size})",
                    rep and f"p50 {rep['p50_ms']} / p99 {rep['p99_ms']} ms", rep and rep["p99_ms"] <= REPEATED_P99_MS))
    for size in ONE_CLIENT:
        r = level(search, size, 1, 1)
        d = (r or {}).get("degraded")
        measured = None
        if r and d:
            misses = {s: k["budget"] for s, k in d["by_source"].items() if k.get("budget")}
            failed = {s: k["failed"] for s, k in d["by_source"].items() if k.get("failed")}
            measured = (f"{d['degraded_answers']} of {d['answers']} answers degraded; budget misses: "
                        + (", ".join(f"{s} {n}" for s, n in misses.items()) or "none")
                        + (f"; failures: {', '.join(f'{s} {n}' for s, n in failed.items())}" if failed else ""))
        out.append(_row(f"no source misses its budget in an idle one-client run ({human(size)})", measured,
                        None if not (r and d) else (_budget_misses(r) == 0 and d["degraded_answers"] == 0)))
    return out


def peer_targets(peer: dict) -> list[dict]:
    """The mem0 comparison: one client and ten (for mem0, ten threads in its process; for
    recallstack, ten concurrent HTTP clients), in the same run."""
    ratios = peer.get("ratios_recallstack_over_mem0") or {}
    rs, m0 = peer.get("recallstack") or {}, peer.get("mem0") or {}
    out = []
    for label, key, p50_key, p99_key in (("one client", "search", "search_p50_ms", "search_p99_ms"),
                                         ("ten clients", "search_concurrent", "search_concurrent_p50_ms",
                                          "search_concurrent_p99_ms")):
        a, b = rs.get(key, {}).get("latency", {}), m0.get(key, {}).get("latency", {})
        for pkey, rkey, limit in (("p50_ms", p50_key, PEER_P50_RATIO), ("p99_ms", p99_key, PEER_P99_RATIO)):
            ratio = ratios.get(rkey)
            out.append(_row(f"beside mem0, {label}: search {pkey[:3]} ratio recallstack/mem0 <= {limit:g}",
                            ratio is not None and f"{ratio} ({a.get(pkey)} vs {b.get(pkey)} ms)",
                            None if ratio is None else ratio <= limit))
    ratio = ratios.get("hit@10")
    q = (rs.get("quality") or {}).get("overall", {}), (m0.get("quality") or {}).get("overall", {})
    out.append(_row(f"beside mem0: hit@10 ratio >= {PEER_HIT10_RATIO:g}",
                    ratio is not None and f"{ratio} ({q[0].get('hit@10', 0):.3f} vs {q[1].get('hit@10', 0):.3f})",
                    None if ratio is None else ratio >= PEER_HIT10_RATIO))
    return out


def locomo_targets(locomo: dict) -> list[dict]:
    """LoCoMo dev hit@10 of the fused search, and every source in some answer's `ranks`."""
    hit = locomo.get("metrics", {}).get("fused", {}).get("overall", {}).get("hit@10")
    corpus = locomo.get("corpus", {})
    subset = corpus.get("conversations") and corpus.get("limit_questions_per_conversation")
    where = (f" on {corpus.get('conversations')} conversations, {corpus.get('questions')} questions"
             + (" (a subset: quick mode)" if subset else "")) if corpus else ""
    sources = (locomo.get("ask") or {}).get("observations", {}).get("sources")
    silent = [s for s in SOURCES if not (sources or {}).get(s)]
    return [_row(f"LoCoMo dev hit@10 >= {LOCOMO_HIT10:.2f}", hit is not None and f"{hit:.3f}{where}",
                 None if hit is None else hit >= LOCOMO_HIT10),
            _row("every source still contributing (LoCoMo results ranked by each; temporal only answers a query "
                 "that names a time)",
                 sources is not None and (", ".join(f"{s} {sources.get(s, 0)}" for s in SOURCES) + " results"),
                 None if sources is None else not silent)]


def all_targets(run: dict) -> list[dict]:
    return (search_targets(run.get("search") or {}) + peer_targets(run.get("peer") or {})
            + locomo_targets(run.get("locomo") or {}))
