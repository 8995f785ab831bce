"""The search part of REPORT.md (bench/report.py calls it): issue 20's targets, then per corpus
the closed-loop levels (QPS, p50/p99, degraded answers, CPU per search), the CPU of each stack
process per search, the Server-Timing entries (p50/p99) and the repeated-query tier.
Markdown from search.json's figures only (pure; tests/unit)."""

from __future__ import annotations

from search_targets import human

OTHER_ROWS = (("bench client (not in the total)", "client_ms_per_search"),
              ("other processes (not in the total)", "other_ms_per_search"))


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


INTRO = ("Through the base URL (the proxy), uncached (`cache: false`, every query text new), all four sources "
         "fused; the mem0 ratios in the same run (bench/search_targets.py).")


def targets_section(targets: list[dict], intro: str | None = INTRO) -> list[str]:
    if not targets:
        return ["not measured"]
    return ([intro, ""] if intro else []) + [table(["target", "measured here", "verdict"],
                                                   [[t["target"], t["measured"], f"**{t['verdict']}**"]
                                                    for t in targets])]


def level_name(r: dict) -> str:
    return f"{r['mode']} {r['clients']}c" + ("" if r.get("endpoint", "gateway") == "gateway" else " direct")


def degraded_pct(r: dict) -> str | None:
    d = r.get("degraded") or {}
    if d.get("answers"):
        return f"{100 * d['degraded_answers'] / d['answers']:.1f}"
    return None


def misses(r: dict) -> str:
    by_source = (r.get("degraded") or {}).get("by_source") or {}
    return ", ".join(f"{s} {k.get('budget', 0)}/{k.get('failed', 0)}" for s, k in by_source.items()) or "none"


def timing_cell(r: dict, entry: str) -> str | None:
    t = r["server_timing"].get(entry)
    if t is None:
        return None
    return f"{t['p50_ms']:g} / {t['p99_ms']:g}" + (f" (n={t['n']})" if t["n"] < r["requests"] else "")


def size_section(block: dict) -> list[str]:
    levels = [r for r in block.get("levels", []) if "p50_ms" in r]
    title = f"### {block['size']:,} memories in {block['users']} user(s)"
    if not levels:
        return [title, "", "no level answered"]
    md = [title, ""]
    load = block.get("load") or {}
    if load:
        md += [f"Corpus {'reused' if block.get('reused') else 'loaded'} ({load.get('loaded_at')}); graph lag "
               f"{(block.get('graph_lag_events') or {}).get('before')} events before the levels. The stack idle: "
               f"{(block.get('idle_cpu') or {}).get('stack_pct', '-')} % of a core.", ""]
    md += [table(["level", "searches", "QPS", "p50 ms", "p90 ms", "p99 ms", "errors %", "degraded %",
                  "misses budget/failed", "CPU ms per search (stack)", "machine busy %"],
                 [[level_name(r), r["requests"], r["qps"], r["p50_ms"], r.get("p90_ms"), r["p99_ms"],
                   r.get("error_pct"), degraded_pct(r), misses(r), (r.get("cpu") or {}).get("total_ms_per_search"),
                   (r.get("cpu") or {}).get("machine_pct")] for r in levels])]
    uncached = [r for r in levels if r["mode"] == "uncached"]
    if uncached:
        best = max(uncached, key=lambda r: r["qps"])
        md += ["", f"QPS at saturation (uncached): {best['qps']} at {best['clients']} clients "
               f"(p50 {best['p50_ms']} / p99 {best['p99_ms']} ms)."]
    with_cpu = [r for r in levels if r.get("cpu")]
    if with_cpu:
        names = list(dict.fromkeys(n for r in with_cpu for n in r["cpu"]["ms_per_search"]))
        names.sort(key=lambda n: -max(r["cpu"]["ms_per_search"].get(n, 0) for r in with_cpu))
        md += ["", "CPU ms per search of each stack process (utime+stime from /proc, children included: Postgres "
               "backends, nginx workers), over the level's answered searches:", "",
               table(["process"] + [level_name(r) for r in with_cpu],
                     [[n] + [r["cpu"]["ms_per_search"].get(n) for r in with_cpu] for n in names]
                     + [["**all stack processes**"] + [f"**{r['cpu']['total_ms_per_search']}**" for r in with_cpu]]
                     + [[label] + [r["cpu"].get(key) for r in with_cpu] for label, key in OTHER_ROWS])]
    with_timing = [r for r in levels if r.get("server_timing")]
    if with_timing:
        entries = list(dict.fromkeys(e for r in with_timing for e in r["server_timing"]))
        md += ["", "Server-Timing of the query API, p50 / p99 ms per entry (sources run concurrently), beside "
               "the client's; n: the answers with the entry when not all had it (temporal runs only for a query "
               "with a time phrase):", "",
               table(["entry"] + [level_name(r) for r in with_timing],
                     [["client (through the proxy)"] + [f"{r['p50_ms']} / {r['p99_ms']}" for r in with_timing]]
                     + [[e] + [timing_cell(r, e) for r in with_timing] for e in entries])]
    return md


def search_section(search: dict) -> list[str]:
    blocks = search.get("sizes") or []
    if not blocks:
        return ["not run"]
    md = [f"Closed loop through the base URL, {search.get('duration_s')} s per level; uncached levels send "
          "`cache: false` and a query text never sent before, repeated levels 20 questions over and over (the "
          "answer cache). Sizes: " + ", ".join(f"{human(b['size'])} in {b['users']} user(s)" for b in blocks) + "."]
    for block in blocks:
        md += [""] + size_section(block)
    return md
