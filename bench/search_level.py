"""The figures of one closed-loop search level, from what the answers carried (pure; tests/unit):
client-observed latency percentiles, the query API's Server-Timing entries per entry (p50/p99),
a request's time split into segments that add up to what the client saw, and the answers that
left a source out (`degraded`), per source and per kind (a missed budget or a failure)."""

from __future__ import annotations

import statistics

from percentiles import pct

SOURCES = ("dense", "sparse", "temporal", "graph")  # run concurrently by the query API (contract)


def parse_server_timing(value: str) -> dict[str, float]:
    """`embed;dur=3.1, dense;dur=5.2;desc="x", cache;desc=hit` -> {"embed": 3.1, "dense": 5.2, "cache=hit": 0}."""
    out: dict[str, float] = {}
    for entry in value.split(","):
        fields = [f.strip() for f in entry.split(";") if f.strip()]
        if not fields:
            continue
        name, dur, desc = fields[0], None, None
        for f in fields[1:]:
            k, _, v = f.partition("=")
            if k.strip().lower() == "dur":
                try:
                    dur = float(v.strip().strip('"'))
                except ValueError:
                    pass
            elif k.strip().lower() == "desc":
                desc = v.strip().strip('"')
        if dur is not None:
            out[name] = out.get(name, 0.0) + dur
        else:
            out[f"{name}={desc}" if desc else name] = 0.0  # a marker (e.g. a cache hit)
    return out


def latency_summary(latencies_ms: list[float]) -> dict:
    """p50/p90/p99/max/mean of the successful answers ({} when there were none)."""
    if not latencies_ms:
        return {}
    return {"p50_ms": round(statistics.median(latencies_ms), 1), "p90_ms": round(pct(latencies_ms, 90), 1),
            "p99_ms": round(pct(latencies_ms, 99), 1), "max_ms": round(max(latencies_ms), 1),
            "mean_ms": round(statistics.fmean(latencies_ms), 2)}


def timing_percentiles(timings: list[dict[str, float]]) -> dict[str, dict]:
    """Per Server-Timing entry (in the order first seen): n answers with it, p50, p99, mean."""
    names = list(dict.fromkeys(k for t in timings for k in t))
    out = {}
    for name in names:
        values = [t[name] for t in timings if name in t]
        out[name] = {"n": len(values), "p50_ms": round(statistics.median(values), 2),
                     "p99_ms": round(pct(values, 99), 2), "mean_ms": round(statistics.fmean(values), 3)}
    return out


def per_request_split(timing: dict[str, float], client_ms: float) -> dict[str, float]:
    """One request's time, in segments that add up to what the client saw: every Server-Timing
    entry, except that the sources (concurrent) count once, as the slowest of them; then the
    rest of the server's total and the rest of the client's time (HTTP, proxy, queueing)."""
    total = timing.get("total")
    split: dict[str, float] = {}
    sources = [v for k, v in timing.items() if k in SOURCES]
    if sources:
        split["sources (slowest)"] = max(sources)
    for k, v in timing.items():
        if k not in SOURCES and k != "total" and v > 0:
            split[k] = v
    if total is None:
        total = sum(split.values())
    else:
        split["server other"] = total - sum(split.values())  # negative: embedding overlapped the sources
    split["HTTP + queueing"] = client_ms - total
    return split


def mean_split(splits: list[dict[str, float]]) -> dict[str, float]:
    parts = list(dict.fromkeys(k for sp in splits for k in sp))
    return {k: round(sum(sp.get(k, 0.0) for sp in splits) / len(splits), 3) for k in parts} if splits else {}


def miss_kind(reason: str) -> str:
    """'budget' when the source ran out of its time budget (or Postgres cancelled it at the hard
    limit), else 'failed' (an error or an unavailable read model)."""
    text = reason.lower()
    return "budget" if "budget" in text or "cancelled" in text else "failed"


def degraded_counts(answers_degraded: list[list]) -> dict:
    """From each answer's `degraded` list: how many answers left a source out, and per source
    how often it missed its budget or failed, with one reason each as a sample."""
    by_source: dict[str, dict[str, int]] = {}
    samples: dict[str, str] = {}
    degraded = 0
    for entries in answers_degraded:
        degraded += bool(entries)
        for d in entries or ():
            source = d.get("source", "?") if isinstance(d, dict) else str(d)
            reason = str(d.get("reason", "") if isinstance(d, dict) else d)
            kinds = by_source.setdefault(source, {"budget": 0, "failed": 0})
            kinds[miss_kind(reason)] += 1
            samples.setdefault(source, reason[:200])
    n = len(answers_degraded)
    return {"answers": n, "degraded_answers": degraded, "degraded_ratio": round(degraded / n, 4) if n else None,
            "by_source": by_source, "reason_sample": samples}


def clients_axes(axes, ticks: list[int], label: str, fontsize: int) -> None:
    """Matplotlib axes whose x is a number of concurrent clients (log scale, one tick each)."""
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.legend(fontsize=fontsize)
