"""Pure computations of the mixed-load and fault-injection benchmarks (no I/O): the
arrival schedule, percentiles, a ladder step's summary and verdict, and the
exactly-once reconciliation of acknowledged writes against what a read found."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from percentiles import pct

ADD, SEARCH = "add", "search"
SUCCESS = {ADD: 202, SEARCH: 200}
# A unique token per write: letters then hex, so neither BM25's parser nor trigram
# similarity confuses two of them.
MARKER = re.compile(r"\bzx[0-9a-f]{16}\b")


def operation_for(index: int, reads_per_write: int = 5) -> str:
    """The i-th request of the schedule: `reads_per_write` searches, then one add."""
    return ADD if index % (reads_per_write + 1) == reads_per_write else SEARCH


def arrival_offsets(rate: float, duration_s: float) -> list[float]:
    """Open loop: request i is due at i / rate seconds, whatever happened to the earlier ones."""
    return [i / rate for i in range(int(rate * duration_s))]


def percentile(values: Iterable[float], p: float) -> float | None:
    """bench/percentiles.pct (nearest rank on the sorted values), None when empty."""
    ordered = list(values)
    return pct(ordered, p) if ordered else None


def latency_summary(latencies_ms: list[float]) -> dict:
    def rounded(p: float) -> float | None:
        value = percentile(latencies_ms, p)
        return None if value is None else round(value, 1)

    return {"count": len(latencies_ms), "p50_ms": rounded(50), "p90_ms": rounded(90), "p99_ms": rounded(99),
            "max_ms": round(max(latencies_ms), 1) if latencies_ms else None}


def step_summary(samples: list[dict], offered_rate: float, duration_s: float) -> dict:
    """One ladder step. A sample is {op, status, latency_ms} with latency measured from the
    scheduled send time; a status other than the op's success (202 add, 200 search) is an
    error, counted by status (a timeout or a refused connection is a string)."""
    per_op, errors = {}, Counter()
    for op in (SEARCH, ADD):
        mine = [s for s in samples if s["op"] == op]
        ok = [s["latency_ms"] for s in mine if s["status"] == SUCCESS[op]]
        failed = Counter(f"{op} {s['status']}" for s in mine if s["status"] != SUCCESS[op])
        errors.update(failed)
        per_op[op] = {**latency_summary(ok), "errors": sum(failed.values())}
    total = len(samples)
    return {"offered_rate": offered_rate, "duration_s": duration_s, "requests": total,
            "achieved_rate": round(total / duration_s, 2) if duration_s else 0.0,
            "ok_rate": round((total - sum(errors.values())) / duration_s, 2) if duration_s else 0.0,
            "error_ratio": round(sum(errors.values()) / total, 5) if total else 0.0,
            "errors": dict(sorted(errors.items())), **per_op}


def step_passes(summary: dict, p99_limit_ms: float = 100.0, max_error_ratio: float = 0.001) -> bool:
    """Search p99 under the limit, and fewer errors than the ratio (an empty step fails)."""
    p99 = summary[SEARCH]["p99_ms"]
    return p99 is not None and p99 < p99_limit_ms and summary["error_ratio"] < max_error_ratio


def highest_passing_rate(steps: list[dict]) -> float | None:
    """The highest offered rate among the steps that passed (each step carries `passed`)."""
    rates = [s["offered_rate"] for s in steps if s["passed"]]
    return max(rates) if rates else None


def reconcile(acknowledged: list[dict], found: dict[str, list[str]]) -> dict:
    """Exactly once: every acknowledged write (`marker`, `memory_id`) against the memory ids
    a read found carrying its marker. Missing: found nowhere; duplicated: in more than one
    memory; wrong id: found once, but not under the id the 202 named."""
    missing, duplicated, wrong_id = [], [], []
    for write in acknowledged:
        ids = sorted(set(found.get(write["marker"], [])))
        if not ids:
            missing.append(write["marker"])
        elif len(ids) > 1:
            duplicated.append(write["marker"])
        elif write.get("memory_id") and ids[0] != write["memory_id"]:
            wrong_id.append(write["marker"])
    return {"acknowledged": len(acknowledged), "exactly_once": len(acknowledged) - len(missing) - len(duplicated)
            - len(wrong_id), "missing": missing, "duplicated": duplicated, "wrong_id": wrong_id}


def markers_by_memory(memories: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(memory_id, text) pairs -> marker -> the ids of the memories whose text carries it."""
    found: dict[str, list[str]] = {}
    for memory_id, text in memories:
        for marker in set(MARKER.findall(text)):
            found.setdefault(marker, []).append(memory_id)
    return found


def errors_between(attempts: list[dict], start_s: float, end_s: float) -> dict[str, int]:
    """Unsuccessful attempts sent in [start, end], by "op status" (what clients saw in an outage)."""
    seen = Counter(f"{a['op']} {a['status']}" for a in attempts
                   if start_s <= a["sent_s"] <= end_s and a["status"] != SUCCESS[a["op"]])
    return dict(sorted(seen.items()))


def windows(samples: list[dict], width_s: float) -> list[dict]:
    """Latency over time: per `width_s` window of scheduled send times, the search p50/p99,
    the add p99 and the error count (the sustained run's plot)."""
    buckets: dict[int, list[dict]] = {}
    for s in samples:
        buckets.setdefault(int(s["scheduled_s"] // width_s), []).append(s)
    rows = []
    for index in sorted(buckets):
        mine = buckets[index]
        search = [s["latency_ms"] for s in mine if s["op"] == SEARCH and s["status"] == SUCCESS[SEARCH]]
        add = [s["latency_ms"] for s in mine if s["op"] == ADD and s["status"] == SUCCESS[ADD]]
        rows.append({"t_s": index * width_s, "requests": len(mine),
                     "search_p50_ms": percentile(search, 50), "search_p99_ms": percentile(search, 99),
                     "add_p99_ms": percentile(add, 99),
                     "errors": sum(1 for s in mine if s["status"] != SUCCESS[s["op"]])})
    return rows


def errors_text(counts: dict[str, int], none: str = "none") -> str:
    """Error counts as "kind: n, kind: n" for a report (`none` when there were none)."""
    return ", ".join(f"{kind}: {n}" for kind, n in counts.items()) or none
