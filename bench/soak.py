"""Soak: the mixed load (5 searches : 1 add, open loop) for a bounded time, recording the
memory of every stack process (RSS and PSS), the disk each server's data takes, and the errors
and latency, over time. Stops by itself.

    python bench/soak.py [--minutes 60] [--rate 10] [--sample-s 30] [--users 8] [--out DIR] [--json]

Needs the stack up (`make soak` starts it, runs this, stops it). At the end: disk growth per
1,000 memories for Kafka, Postgres (without its write-ahead log, a recycled ring), Neo4j and
Redis, first sample to last, and for each process whether its memory keeps growing: the slope of its PSS (shared
pages split among the processes sharing them) over the second half of the run, extrapolated
over an hour, against its mean. Writes
bench/results/soak.json and soak.png; a progress line per sample on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benches import each other from bench/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo_texts import questions, turns  # noqa: E402

from machine_info import machine  # noqa: E402
from load_stats import SEARCH, SUCCESS  # noqa: E402
from mixed_load import DEFAULT_BASE_URL, OpenLoopLoad, client_for  # noqa: E402
from process_memory import snapshot  # noqa: E402

DATA_DIRS = ("kafka", "postgres", "neo4j", "redis")  # under $RECALLSTACK_HOME
# A process "keeps growing" when its RSS slope over the run's second half, over an hour, is
# more than this share of its mean RSS and more than GROWTH_MIN_MB (allocator noise).
GROWTH_SHARE = 0.10
GROWTH_MIN_MB = 20.0


def log(message: str) -> None:
    print(f"[soak] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# Postgres's write-ahead log is a ring (recycled up to max_wal_size): its size says nothing of
# how the data grows, and a checkpoint that recycles it reads as shrinking data.
NOT_DATA = {"pg_wal"}


def dir_mb(path: Path) -> float | None:
    """Bytes on disk of every file under `path` (less NOT_DATA), in MB (None when it does not exist)."""
    if not path.exists():
        return None
    total = 0
    for root, dirs, files in os.walk(path, followlinks=True):  # Postgres' data is a link (infra/postgres_server.py)
        dirs[:] = [d for d in dirs if d not in NOT_DATA]
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:  # a segment deleted while we walk
                pass
    return round(total / 1e6, 2)


# --- analysis (pure) ------------------------------------------------------------------------

def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys against xs; None with fewer than 2 distinct xs."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def disk_per_thousand(samples: list[dict]) -> dict[str, float | None]:
    """MB of disk per 1,000 acknowledged adds, per server: from the first sample to the last.
    Not a slope through every sample: Redis's append-only file grows, then is rewritten
    smaller, a saw that tilts a least-squares line."""
    out = {}
    for name in DATA_DIRS:
        rows = [(s["acked"], s["disk_mb"][name]) for s in samples if s["disk_mb"].get(name) is not None]
        added = rows[-1][0] - rows[0][0] if rows else 0
        out[name] = round((rows[-1][1] - rows[0][1]) / added * 1000, 3) if added else None
    return out


def memory_growth(samples: list[dict], measure: str = "pss_mb") -> dict[str, dict]:
    """Per process: mean and last memory, the second half's slope in MB/hour, and the verdict.
    PSS by default: RSS counts a page every process that touched it holds (Postgres' shared
    buffers once per backend), so a Postgres warming its cache would look like a leak."""
    samples = [s for s in samples if measure in s]
    names = sorted({n for s in samples for n in s[measure]})
    half = samples[len(samples) // 2:]
    out = {}
    for name in names:
        rows = [(s["t_s"], s[measure][name]) for s in half if name in s[measure]]
        mean = sum(r for _, r in rows) / len(rows) if rows else 0.0
        per_s = slope([t for t, _ in rows], [r for _, r in rows])
        per_hour = None if per_s is None else per_s * 3600
        grows = per_hour is not None and per_hour > max(GROWTH_MIN_MB, GROWTH_SHARE * mean)
        out[name] = {"measure": measure, "mean_mb": round(mean, 1), "last_mb": rows[-1][1] if rows else None,
                     "first_mb": next((s[measure][name] for s in samples if name in s[measure]), None),
                     "mb_per_hour_second_half": None if per_hour is None else round(per_hour, 1),
                     "keeps_growing": grows}
    return out


def window_stats(samples: list[dict]) -> dict:
    """Search p50/p99 and error count of one sample window's HTTP attempts."""
    searches = sorted(s["latency_ms"] for s in samples if s["op"] == SEARCH and s["status"] == SUCCESS[SEARCH])
    errors = sum(1 for s in samples if s["status"] != SUCCESS[s["op"]])

    def pct(p: float) -> float | None:
        return searches[min(len(searches) - 1, int(p * len(searches)))] if searches else None

    return {"requests": len(samples), "errors": errors, "search_p50_ms": pct(0.5), "search_p99_ms": pct(0.99)}


# --- the run ------------------------------------------------------------------------------

async def soak(base_url: str, home: Path, minutes: float, rate: float, sample_s: float, users: int) -> dict:
    run_id = uuid.uuid4().hex[:6]
    names = [f"soak-{run_id}-{k}" for k in range(users)]
    samples: list[dict] = []
    async with client_for(base_url) as client:
        load = OpenLoopLoad(client, names, turns(), questions(), write_retry_s=30.0)
        stop = asyncio.Event()
        runner = asyncio.create_task(load.run(rate, stop=stop))
        began = time.monotonic()
        deadline = began + minutes * 60
        seen = 0
        while True:
            window = load.attempts[seen:]  # every HTTP attempt since the last sample (retries too)
            seen += len(window)
            memory = await asyncio.to_thread(snapshot, home)
            sample = {"t_s": round(time.monotonic() - began, 1), "acked": len(load.acknowledged),
                      "rss_mb": {n: m["rss_mb"] for n, m in memory.items()},
                      "pss_mb": {n: m["pss_mb"] for n, m in memory.items()},
                      "disk_mb": {n: await asyncio.to_thread(dir_mb, home / n) for n in DATA_DIRS},
                      **window_stats(window)}
            samples.append(sample)
            top = sorted(sample["rss_mb"].items(), key=lambda kv: -kv[1])[:3]
            log(f"{sample['t_s'] / 60:5.1f}/{minutes:.0f} min: {sample['acked']:,} adds acknowledged, "
                f"{sample['requests']} requests ({sample['errors']} errors), search p99 {sample['search_p99_ms']} ms; "
                f"RSS {', '.join(f'{n} {mb:.0f} MB' for n, mb in top)}; "
                f"disk {', '.join(f'{n} {mb:.0f} MB' for n, mb in sample['disk_mb'].items() if mb is not None)}")
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(sample_s, max(0.0, deadline - time.monotonic())))
        stop.set()
        await runner
    statuses: dict[str, int] = {}
    for attempt in load.attempts:
        if attempt["status"] != SUCCESS[attempt["op"]]:
            key = f"{attempt['op']} {attempt['status']}"
            statuses[key] = statuses.get(key, 0) + 1
    return {"samples": samples, "acknowledged": len(load.acknowledged), "abandoned": len(load.abandoned),
            "requests": len(load.attempts), "failed_attempts": statuses,
            "disk_mb_per_1000_memories": disk_per_thousand(samples), "memory": memory_growth(samples)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    fig, (rss, disk, lat) = plt.subplots(3, 1, figsize=(10, 11), sharex=True)
    measure = "pss_mb" if all("pss_mb" in s for s in samples) else "rss_mb"
    for name in sorted({n for s in samples for n in s[measure]}):
        rss.plot(minutes, [s[measure].get(name) for s in samples], label=name, linewidth=1)
    rss.set_ylabel(f"{measure[:3].upper()} (MB)")
    rss.legend(fontsize=7, ncol=3)
    rss.set_title(f"Soak: {result['params']['rate']} req/s (5 searches : 1 add) for {result['params']['minutes']} min")
    for name in DATA_DIRS:
        disk.plot(minutes, [s["disk_mb"].get(name) for s in samples], label=name)
    disk.set_ylabel("disk (MB)")
    disk.legend(fontsize=8)
    lat.plot(minutes, [s["search_p50_ms"] for s in samples], label="search p50")
    lat.plot(minutes, [s["search_p99_ms"] for s in samples], label="search p99")
    errors = lat.twinx()
    errors.bar(minutes, [s["errors"] for s in samples], width=0.3, color="tab:red", alpha=0.4, label="errors")
    errors.set_ylabel("errors per sample")
    lat.set_ylabel("ms")
    lat.set_xlabel("minutes")
    lat.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_markdown(result: dict) -> str:
    p, m = result["params"], result["machine"]
    lines = ["### Soak (`make soak`)", "",
             f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('ram_gib', '?')} GiB. "
             f"{p['rate']} req/s (5 searches : 1 add, open loop) for {p['minutes']} min: {result['requests']:,} "
             f"requests, {result['acknowledged']:,} adds acknowledged ({result['abandoned']} given up after 30 s "
             f"of retries). Failed attempts: "
             + (", ".join(f"{k}: {v}" for k, v in sorted(result["failed_attempts"].items())) or "none") + ".", "",
             "| server | disk per 1,000 memories |", "| --- | ---: |"]
    for name, mb in result["disk_mb_per_1000_memories"].items():
        lines.append(f"| {name} | {'-' if mb is None else f'{mb:.2f} MB'} |")
    measure = next(iter(result["memory"].values()), {}).get("measure", "pss_mb")[:3].upper()
    lines += ["", f"| process | {measure} first | {measure} last | mean (2nd half) | MB/hour (2nd half) | keeps growing |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, row in result["memory"].items():
        lines.append(f"| {name} | {row['first_mb']} MB | {row['last_mb']} MB | {row['mean_mb']} MB | "
                     f"{row['mb_per_hour_second_half']} | {'**yes**' if row['keeps_growing'] else 'no'} |")
    growing = [n for n, r in result["memory"].items() if r["keeps_growing"]]
    lines += ["", f"Processes whose memory keeps growing: {', '.join(growing) if growing else 'none'}.", "",
              "![soak](soak.png)"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=10.0, help="offered req/s")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    parser.add_argument("--out", default=os.environ.get("RECALLSTACK_BENCH_OUT")
                        or str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--report", metavar="SOAK_JSON", help="no load: the report (and plot) of a saved run again")
    args = parser.parse_args()
    if args.report:
        result = json.loads(Path(args.report).read_text())
        result.update(disk_mb_per_1000_memories=disk_per_thousand(result["samples"]),
                      memory=memory_growth(result["samples"], "pss_mb" if all(
                          "pss_mb" in s for s in result["samples"]) else "rss_mb"))
        plot(result, Path(args.report).with_suffix(".png"))
        print(report_markdown(result))
        return 0
    if args.minutes <= 0 or args.rate <= 0 or args.sample_s <= 0:
        parser.error("--minutes, --rate and --sample-s must be positive")
    from bootstrap import settings

    home = settings().home
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"{args.rate} req/s for {args.minutes} min against {args.base_url}; a sample every {args.sample_s} s")
    result = asyncio.run(soak(args.base_url, home, args.minutes, args.rate, args.sample_s, args.users))
    result.update(params={"minutes": args.minutes, "rate": args.rate, "sample_s": args.sample_s,
                          "users": args.users}, machine=machine())
    (out / "soak.json").write_text(json.dumps(result, indent=2))
    plot(result, out / "soak.png")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2) if args.json
          else report_markdown(result))
    return 0 if not any(r["keeps_growing"] for r in result["memory"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
