"""Fault injection under mixed load (`make chaos`): kill -9, in turn, the command API, each
projector, Kafka, Neo4j, Redis and Postgres while the open-loop mixed load (5 searches : 1
add, bench/mixed_load.py) runs at a moderate fixed rate; restart each after a short outage;
then check that every acknowledged write is searchable exactly once.

    python bench/chaos.py [--mode quick|full] [--rate 6] [--outage-s 5] [--settle-s 10]
                          [--components command-api,redis,...] [--out DIR]

Clients retry an add that was not answered 202 with the same Idempotency-Key and body (the
documented client contract); an add is acknowledged only by a 202, and each carries a
unique marker token. Per component: recovery from the restart to (a) the component
healthy (its own readiness probe), (b) the first add acknowledged after it and visible in
search (read-your-writes token), (c) every projector's lag back under a few events; and
what clients saw from the kill to (b), by status. Afterwards the projectors catch up (lag
0) and every acknowledged marker is looked up in the list of its user's memories and by
search (BM25 only, markers batched): missing and duplicated must both be 0 (exit status 1
otherwise). Writes bench/results/chaos.json and chaos.png. The stack is the one of
$RECALLSTACK_HOME; only the processes recorded in its process table are killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benches import each other from bench/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo_texts import questions, turns  # noqa: E402

from machine_info import machine  # noqa: E402
from load_stats import (ADD, SUCCESS, errors_between, errors_text, markers_by_memory, reconcile,  # noqa: E402
                        step_summary)
from mixed_load import DEFAULT_BASE_URL, OpenLoopLoad, client_for, projector_lags  # noqa: E402

COMPONENTS = ("command-api", "projector-postgres", "projector-neo4j", "projector-redis",
              "kafka", "neo4j", "redis", "postgres")
MODES = {"quick": {"rate": 6.0, "outage_s": 5.0, "settle_s": 10.0},
         "full": {"rate": 10.0, "outage_s": 15.0, "settle_s": 30.0}}
SDK_RETRY_S = 5.0  # searches are retried like the SDK does, for this long; "served within" counts to it
CAUGHT_UP_EVENTS = 5  # "caught up" under load: the gauge reads the last fetch's high watermark
RECOVERY_TIMEOUT_S = 180.0
MARKERS_PER_SEARCH = 10


def log(message: str) -> None:
    print(f"[chaos] {time.strftime('%H:%M:%S', time.gmtime())} {message}", file=sys.stderr, flush=True)


class Stack:
    """The processes of $RECALLSTACK_HOME's stack: kill -9 one, start it again."""

    def __init__(self):
        from bootstrap import settings
        from infra import stack

        self.cfg, self.stack = settings(), stack
        self.table = stack.table(self.cfg)

    def spec(self, name: str):
        """The spec of the process named `name` (an API's or Kafka's first process: the one killed)."""
        specs = (self.stack.infra_specs(self.cfg, (name,)) if name in self.stack.INFRA
                 else self.stack.service_specs(self.cfg, (name,)))
        return next(spec for spec in specs if spec.name == name)

    def kill9(self, name: str) -> int:
        """SIGKILL the recorded process and its process group (every server is started in a
        session of its own: Postgres' backends, a JVM's helpers die with it)."""
        pid = self.table.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running (no live pid in {self.table.run_dir})")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while self.table.pid(name) == pid and time.monotonic() < deadline:  # a supervisor may restart it at once
            time.sleep(0.05)
        try:
            os.waitpid(pid, os.WNOHANG)  # our own child when a previous round restarted it
        except ChildProcessError:
            pass
        return pid

    def start(self, name: str, spec=None) -> float:
        """Start it and wait for its readiness probe (one more try after a failed start)."""
        began = time.monotonic()
        try:
            self.stack.up([spec or self.spec(name)], self.table)
        except self.stack.StartError as exc:
            log(f"{name} did not start ({str(exc)[:200]}); trying once more")
            time.sleep(3)
            self.stack.up([self.spec(name)], self.table)
        return time.monotonic() - began

    def supervised(self) -> bool:
        """A supervisor (`recallstack up`) restarts what dies: the harness then only watches."""
        from infra import supervisor

        return self.table.pid(supervisor.NAME) is not None

    def await_restart(self, name: str, old_pid: int, spec, timeout_s: float) -> tuple[float, float]:
        """(seconds until the supervisor recorded a new process, seconds until it answered its probe)."""
        began = time.monotonic()
        deadline = began + timeout_s
        while self.table.pid(name) in (None, old_pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the supervisor did not restart {name} within {timeout_s:.0f} s")
            time.sleep(0.05)
        spawned = time.monotonic() - began
        while True:
            try:
                spec.probe()
                return spawned, time.monotonic() - began
            except Exception:  # noqa: BLE001 - not ready yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def projector_lags(self) -> dict[str, float | None]:
        return projector_lags(self.cfg.host)

    def ensure_running(self, names: list[str]) -> None:
        """Start every named component that is not running (however the run ended)."""
        for name in names:
            if self.table.pid(name) is None:
                log(f"{name} is not running: starting it")
                self.start(name)


async def wait_until(predicate, timeout_s: float, every_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(every_s)
    return False


async def probe_write_visible(load: OpenLoopLoad, user: str, timeout_s: float) -> float | None:
    """Add a marked memory (retrying with its key) until acknowledged, then search for its
    marker with the add's token until found; returns the load clock when found."""
    if await load.add(user, load.now(), retry_s=timeout_s) != SUCCESS[ADD]:
        return None
    write = next(w for w in reversed(load.acknowledged) if w["user"] == user)  # the load acks too, meanwhile

    async def visible() -> bool:
        try:
            answer = await load.client.post("/v1/memories/search", json={
                "query": write["marker"], "user_id": user, "sources": ["sparse"], "cache": False,
                "consistency_token": write["token"]})
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and any(write["marker"] in r["memory"] for r in answer.json()["results"])

    return load.now() if await wait_until(visible, timeout_s) else None


async def inject(stack: Stack, load: OpenLoopLoad, name: str, outage_s: float, probe_user: str) -> dict:
    spec = await asyncio.to_thread(stack.spec, name)  # built before the kill: not part of the outage
    log(f"kill -9 {name}")
    killed_at = load.now()
    pid = await asyncio.to_thread(stack.kill9, name)
    try:
        if stack.supervised():  # recovery is the supervisor's: from the kill to its new process answering
            spawned_s, start_s = await asyncio.to_thread(stack.await_restart, name, pid, spec, RECOVERY_TIMEOUT_S)
            restarted_at = killed_at + spawned_s
            log(f"{name} restarted by the supervisor after {spawned_s:.1f} s")
        else:
            await asyncio.sleep(outage_s)
            restarted_at = load.now()
            log(f"restarting {name}")
            start_s = await asyncio.to_thread(stack.start, name, spec)
    except Exception as exc:  # noqa: BLE001 - recorded, and the run goes on to verify what it has
        log(f"{name} failed to restart: {exc}")
        return {"component": name, "pid": pid, "killed_s": killed_at, "restarted_s": load.now(),
                "error": str(exc)[:500]}
    healthy_at = load.now()
    visible_at = await probe_write_visible(load, probe_user, RECOVERY_TIMEOUT_S)

    async def caught_up() -> bool:
        lags = await asyncio.to_thread(stack.projector_lags)
        return all(v is not None and v <= CAUGHT_UP_EVENTS for v in lags.values())

    caught = await wait_until(caught_up, RECOVERY_TIMEOUT_S, every_s=0.5)
    caught_at = load.now() if caught else None
    end = visible_at if visible_at is not None else load.now()
    row = {"component": name, "pid": pid, "killed_s": round(killed_at, 2), "restarted_s": round(restarted_at, 2),
           "healthy_s": round(healthy_at, 2), "start_s": round(start_s, 2),
           "healthy_after_restart_s": round(healthy_at - restarted_at, 2),
           "write_visible_after_restart_s": None if visible_at is None else round(visible_at - restarted_at, 2),
           "write_visible_after_kill_s": None if visible_at is None else round(visible_at - killed_at, 2),
           "projectors_caught_up_after_restart_s": None if caught_at is None else round(caught_at - restarted_at, 2),
           "client_errors": errors_between(load.attempts, killed_at, end)}
    log(f"{name}: healthy {row['healthy_after_restart_s']} s, write visible {row['write_visible_after_restart_s']} s, "
        f"projectors caught up {row['projectors_caught_up_after_restart_s']} s after restart; "
        f"client errors {row['client_errors'] or 0}")
    return row


async def list_user(client: httpx.AsyncClient, user: str, token: str | None, timeout_s: float = 120) -> list[dict]:
    """Every memory of the user (paged), once the Postgres read model applied `token`."""
    found, page, deadline = [], 1, time.monotonic() + timeout_s
    while True:
        params = {"user_id": user, "page": page, "page_size": 1000}
        if token and page == 1:
            params["consistency_token"] = token
        answer = await client.get("/v1/memories", params=params)
        if answer.status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"listing {user}: {answer.status_code} {answer.text[:300]}")
            await asyncio.sleep(1)
            continue
        body = answer.json()
        found += body["results"]
        if not body["has_more"]:
            return found
        page += 1


async def searched_markers(client: httpx.AsyncClient, user: str, markers: list[str]) -> dict[str, list[str]]:
    """marker -> ids of the memories a BM25-only search found carrying it (markers batched)."""
    found: dict[str, list[str]] = {}
    for i in range(0, len(markers), MARKERS_PER_SEARCH):
        batch = markers[i:i + MARKERS_PER_SEARCH]
        for attempt in range(20):
            answer = await client.post("/v1/memories/search", json={
                "query": " ".join(batch), "user_id": user, "sources": ["sparse"], "cache": False, "limit": 100})
            if answer.status_code == 200:
                break
            await asyncio.sleep(1)
        answer.raise_for_status()
        for marker, ids in markers_by_memory((r["id"], r["memory"]) for r in answer.json()["results"]).items():
            if marker in batch:
                found.setdefault(marker, []).extend(ids)
    return found


def latest_token(writes: list[dict]) -> str | None:
    from domain.consistency import ConsistencyToken

    tokens = [ConsistencyToken.decode(w["token"]) for w in writes]
    if not tokens:
        return None
    return ConsistencyToken.of(tokens[0].topic, [p for t in tokens for p in t.offsets]).encode()


async def verify(stack: Stack, load: OpenLoopLoad, users: list[str]) -> dict:
    """After the load: projectors at lag 0, then every acknowledged marker in the list of its
    user's memories and in search exactly once, and nothing else in those users."""
    token = latest_token(load.acknowledged)

    async def lag_zero() -> bool:
        lags = await asyncio.to_thread(stack.projector_lags)
        return all(v == 0 for v in lags.values())

    began = time.monotonic()
    caught_up = await wait_until(lag_zero, RECOVERY_TIMEOUT_S, every_s=1)
    log(f"projectors at lag 0: {caught_up} ({time.monotonic() - began:.1f} s); verifying "
        f"{len(load.acknowledged)} acknowledged adds")
    listed: dict[str, list[str]] = {}
    searched: dict[str, list[str]] = {}
    per_user = {}
    abandoned = {w["marker"] for w in load.abandoned}
    acked_markers = {w["marker"] for w in load.acknowledged}
    for user in users:
        memories = await list_user(load.client, user, token)
        mine = markers_by_memory((m["id"], m["memory"]) for m in memories)
        for marker, ids in mine.items():
            listed.setdefault(marker, []).extend(ids)
        acked = [w["marker"] for w in load.acknowledged if w["user"] == user]
        searched.update(await searched_markers(load.client, user, acked))
        per_user[user] = {"acknowledged": len(acked), "listed": len(memories),
                          "listed_abandoned": sum(1 for m in mine if m in abandoned),
                          "listed_unknown": sum(1 for m in mine if m not in acked_markers and m not in abandoned)}
    by_list = reconcile(load.acknowledged, listed)
    by_search = reconcile(load.acknowledged, searched)
    # Each listed memory carries one marker: memories = acknowledged + abandoned adds that landed.
    counts_ok = all(u["listed"] == u["acknowledged"] + u["listed_abandoned"] and u["listed_unknown"] == 0
                    for u in per_user.values())
    ok = caught_up and counts_ok and all(not r[k] for r in (by_list, by_search)
                                         for k in ("missing", "duplicated", "wrong_id"))
    return {"projectors_lag_zero": caught_up, "per_user": per_user, "counts_match": counts_ok,
            "list": by_list, "search": by_search, "abandoned_adds": len(load.abandoned), "ok": ok}


async def chaos(base_url: str, components: list[str], rate: float, outage_s: float, settle_s: float,
                users: int, write_retry_s: float) -> dict:
    stack = Stack()
    run_id = uuid.uuid4().hex[:8]
    names = [f"chaos-{run_id}-u{n}" for n in range(users)]
    probe_user = f"chaos-{run_id}-probe"
    async with client_for(base_url) as client:
        load = OpenLoopLoad(client, names, turns(), questions(), write_retry_s=write_retry_s,
                            read_retry_s=SDK_RETRY_S)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(rate, stop=stop))
        rows = []
        try:
            log(f"load at {rate} req/s on {users} users (run {run_id}); {settle_s:.0f} s before the first kill")
            await asyncio.sleep(settle_s)
            for name in components:
                rows.append(await inject(stack, load, name, outage_s, probe_user))
                await asyncio.sleep(settle_s)
        finally:
            stop.set()
            samples = await running
            await asyncio.to_thread(stack.ensure_running, components)  # whatever happened above
        log(f"load stopped: {len(samples)} requests, {len(load.acknowledged)} adds acknowledged, "
            f"{len(load.abandoned)} abandoned")
        verdict = await verify(stack, load, [*names, probe_user])
    load_summary = step_summary(samples, rate, max(s["scheduled_s"] for s in samples) - min(
        s["scheduled_s"] for s in samples) if samples else 0.0)
    failed_attempts = sum(1 for a in load.attempts if a["status"] != SUCCESS[a["op"]])
    return {"run_id": run_id, "users": names + [probe_user], "recovery": rows, "verification": verdict,
            # A request counts as served when it succeeded in the end (an add after its retries).
            "availability_under_faults": round(1 - load_summary["error_ratio"], 5),
            # ... and within the SDK's retry window of it being due (the 99.9 %).
            "served_within_sdk_retry": round(sum(1 for s in samples if s["status"] == SUCCESS[s["op"]]
                                                 and s["latency_ms"] <= SDK_RETRY_S * 1000) / len(samples), 5)
            if samples else None,
            "attempt_success_ratio": round(1 - failed_attempts / len(load.attempts), 5) if load.attempts else None,
            "load": load_summary,
            "attempts": [[a["sent_s"], a["op"], a["status"], a["latency_ms"]] for a in load.attempts]}


def run(mode: str, out_dir: Path | str, base_url: str = DEFAULT_BASE_URL, components: list[str] | None = None,
        rate: float | None = None, outage_s: float | None = None, settle_s: float | None = None, users: int = 4,
        write_retry_s: float = 120.0) -> dict:
    params = {**MODES[mode]}
    params.update({k: v for k, v in {"rate": rate, "outage_s": outage_s, "settle_s": settle_s}.items() if v is not None})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    chosen = list(components or COMPONENTS)
    log(f"machine {info}; mode {mode} {params}; components {', '.join(chosen)}")
    began = time.time()
    try:
        params["supervised"] = Stack().supervised()
        outcome = asyncio.run(chaos(base_url, chosen, params["rate"], params["outage_s"], params["settle_s"], users,
                                    write_retry_s))
    finally:  # also on Ctrl-C mid-outage: never leave a component down
        Stack().ensure_running(chosen)
    result = {"mode": mode, "machine": info, "base_url": base_url, "params": params, "components": chosen,
              "write_retry_s": write_retry_s, "started_at": began, "seconds": round(time.time() - began, 1),
              **outcome, "files": {"json": str(out / "chaos.json"), "plot": str(out / "chaos.png")}}
    Path(result["files"]["json"]).write_text(json.dumps(result, indent=2, default=str))
    plot(result, Path(result["files"]["plot"]))
    v = result["verification"]
    log(f"acknowledged {v['list']['acknowledged']}: missing {len(v['list']['missing'])}/{len(v['search']['missing'])}, "
        f"duplicated {len(v['list']['duplicated'])}/{len(v['search']['duplicated'])} (list/search); "
        f"{'OK' if v['ok'] else 'FAILED'}; wrote {result['files']['json']}")
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(13, 5))
    attempts = result["attempts"]
    for op, colour in (("search", "tab:blue"), ("add", "tab:green")):
        ok = [(a[0], a[3]) for a in attempts if a[1] == op and a[2] == SUCCESS[op]]
        bad = [(a[0], a[3]) for a in attempts if a[1] == op and a[2] != SUCCESS[op]]
        ax.plot([p[0] for p in ok], [max(p[1], 1) for p in ok], ".", color=colour, markersize=2, label=f"{op} ok")
        ax.plot([p[0] for p in bad], [max(p[1], 1) for p in bad], "x", color="red" if op == "add" else "orange",
                markersize=4, label=f"{op} error")
    for row in result["recovery"]:
        ax.axvspan(row["killed_s"], row.get("healthy_s", row["restarted_s"]), color="grey", alpha=0.2)
        ax.axvline(row["killed_s"], color="black", linewidth=0.8)
        ax.text(row["killed_s"], 1.02, row["component"], rotation=45, fontsize=7, transform=ax.get_xaxis_transform())
    ax.set_yscale("log")
    ax.set_xlabel("seconds into the run (grey: from kill -9 to healthy again)")
    ax.set_ylabel("attempt latency (ms)")
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _s(value) -> str:
    return "-" if value is None else f"{value:.1f} s"


def report_markdown(result: dict) -> str:
    """The report's section: the recovery table per component, the exactly-once check, the plot."""
    v, p = result["verification"], result["params"]
    m = result["machine"]
    lines = ["### Fault injection (`make chaos`)", "",
             f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('ram_gib', '?')} GiB. Mixed load at "
             f"{p['rate']} req/s (5 searches : 1 add, open loop) throughout; each component is killed with "
             "kill -9 (its process group) and "
             + ("restarted by the supervisor of `recallstack up`" if p.get("supervised")
                else f"restarted by the harness {p['outage_s']:.0f} s later")
             + f", {p['settle_s']:.0f} s apart. Adds not answered 202 are retried with the same Idempotency-Key, "
             f"searches for {SDK_RETRY_S:.0f} s, as the SDK does. "
             "Recovery is counted from the restart (the supervisor's: when its new process was recorded).",
             "", "| component | healthy after | add acked + searchable after | projectors caught up after "
                 "| kill to searchable | client errors, kill to searchable |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in result["recovery"]:
        if "error" in r:
            lines.append(f"| {r['component']} | restart failed: {r['error'][:80]} | | | | |")
            continue
        errors = errors_text(r["client_errors"])
        lines.append(f"| {r['component']} | {_s(r['healthy_after_restart_s'])} | "
                     f"{_s(r['write_visible_after_restart_s'])} | {_s(r['projectors_caught_up_after_restart_s'])} "
                     f"| {_s(r.get('write_visible_after_kill_s'))} | {errors} |")
    lst, srch = v["list"], v["search"]
    load = result.get("load") or {}
    if load:
        errors = errors_text(load["errors"])
        within = result.get("served_within_sdk_retry")
        lines += ["", f"Over the whole run ({load['requests']} requests): served in the end "
                      f"{100 * result['availability_under_faults']:.2f} % (adds after their retries), "
                      + (f"within {SDK_RETRY_S:.0f} s of being due (the SDK's retry window) {100 * within:.2f} %, "
                         if within is not None else "") + "single attempts "
                      f"{100 * (result.get('attempt_success_ratio') or 0):.2f} %; search p50 {load['search']['p50_ms']} ms "
                      f"p99 {load['search']['p99_ms']} ms; requests failed in the end: {errors}."]
    lines += ["", f"Acknowledged adds: {lst['acknowledged']} (plus {v['abandoned_adds']} given up after "
                  f"{result['write_retry_s']:.0f} s of retries). After the projectors caught up "
                  f"(lag 0: {v['projectors_lag_zero']}):", "",
              "| check | exactly once | missing | duplicated | other id |", "| --- | ---: | ---: | ---: | ---: |",
              f"| `GET /v1/memories` per user | {lst['exactly_once']} | {len(lst['missing'])} | "
              f"{len(lst['duplicated'])} | {len(lst['wrong_id'])} |",
              f"| search (BM25, by marker) | {srch['exactly_once']} | {len(srch['missing'])} | "
              f"{len(srch['duplicated'])} | {len(srch['wrong_id'])} |", "",
              f"Per-user counts equal the acknowledged adds: {v['counts_match']}. "
              f"**{'Every acknowledged write is searchable exactly once.' if v['ok'] else 'FAILED: see chaos.json.'}**",
              "", "![fault injection timeline](chaos.png)", ""]
    return "\n".join(lines)


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupted)  # a CI timeout's TERM still restarts what was killed
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--out", default=os.environ.get("RECALLSTACK_BENCH_OUT")
                        or str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of markdown")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    parser.add_argument("--components", help=f"comma-separated, in order (default {','.join(COMPONENTS)})")
    parser.add_argument("--rate", type=float, help="offered req/s of the mixed load")
    parser.add_argument("--outage-s", type=float, help="seconds between the kill and the restart")
    parser.add_argument("--settle-s", type=float, help="seconds of load after each recovery")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--write-retry-s", type=float, default=120.0,
                        help="how long a client retries an add with its Idempotency-Key")
    args = parser.parse_args()
    components = args.components.split(",") if args.components else None
    unknown = set(components or []) - set(COMPONENTS)
    if unknown:
        parser.error(f"unknown components {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
    result = run(args.mode, args.out, args.base_url, components, args.rate, args.outage_s, args.settle_s,
                 args.users, args.write_retry_s)
    print(json.dumps({k: v for k, v in result.items() if k != "attempts"}, indent=2, default=str) if args.json
          else report_markdown(result))
    return 0 if result["verification"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
