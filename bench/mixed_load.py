"""Mixed load through the gateway at the seeds' read:write ratio (5 searches : 1 add),
open loop: requests go out on a fixed schedule and latency is measured from the scheduled
send time, so a slow answer cannot hold the next request back and hide its own queueing
(coordinated omission).

    python bench/mixed_load.py --mode quick|full [--out DIR] [--rates 5,10,20] [--step-s 30]
                               [--sustained-s 60] [--users 8] [--base-url http://127.0.0.1:8080]

A rate ladder, a step per offered rate (quick: 2-40 req/s for 30 s each, stopping after two failed
steps in a row; full: 2-60 req/s for 60 s each), then a sustained run at the highest passing rate (quick 60 s, full
10 minutes). A step passes when search p99 < 100 ms with < 0.1 % errors. Texts and queries
are LoCoMo turns and questions (bench/locomo_texts.py), spread over several users each seeded
with turns first. Writes bench/results/mixed_load.json and mixed_load.png; progress on
stderr. The stack is the one of $RECALLSTACK_HOME (its admin key; admin keys are not rate
limited). `run(mode, out_dir)` is what bench/suite.py calls.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benches import each other from bench/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_key import api_headers  # noqa: E402

from locomo_texts import questions, turns  # noqa: E402

from machine_info import machine  # noqa: E402
from load_stats import (ADD, SEARCH, SUCCESS, errors_text, highest_passing_rate, operation_for, step_passes,  # noqa: E402
                        step_summary, windows)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
MODES = {
    "quick": {"rates": [2, 4, 6, 8, 10, 15, 20, 40], "step_s": 30, "sustained_s": 60, "warmup_s": 30},
    "full": {"rates": [2, 4, 6, 8, 10, 15, 20, 30, 40, 60], "step_s": 60, "sustained_s": 600, "warmup_s": 60},
}
P99_LIMIT_MS = 100.0
MAX_ERROR_RATIO = 0.001


def log(message: str) -> None:
    print(f"[mixed] {message}", file=sys.stderr, flush=True)


def new_marker() -> str:
    return "zx" + uuid.uuid4().hex[:16]


class OpenLoopLoad:
    """Sends the schedule's requests through one client; records every HTTP attempt and every
    acknowledged add. With `write_retry_s` > 0 an add that was not answered 202 is retried
    with the same Idempotency-Key and body (the documented client contract) until then."""

    def __init__(self, client: httpx.AsyncClient, users: list[str], texts: list[str], queries: list[str],
                 reads_per_write: int = 5, write_retry_s: float = 0.0, read_retry_s: float = 0.0):
        self.client, self.users, self.reads_per_write, self.write_retry_s = client, users, reads_per_write, write_retry_s
        self.read_retry_s = read_retry_s  # a search that failed retryably is sent again until then (the SDK's way)
        self.texts, self.queries = itertools.cycle(texts), itertools.cycle(queries)
        self.user_of = itertools.cycle(users)
        self.sequence = 0  # across steps, so the 5:1 mix holds over a whole run
        self.origin = time.perf_counter()
        self.attempts: list[dict] = []  # {op, sent_s, status, latency_ms}
        self.acknowledged: list[dict] = []  # {marker, memory_id, user, key, token, acked_s}
        self.abandoned: list[dict] = []  # adds never answered 202 (maybe stored: unknown)

    def now(self) -> float:
        return time.perf_counter() - self.origin

    async def _attempt(self, op: str, method: str, path: str, **kwargs) -> tuple[object, httpx.Response | None]:
        """One HTTP request; its status is the code, an error's "code error_code" (e.g. "503
        log_unavailable"), or the transport failure ("timeout", "ConnectError")."""
        sent = self.now()
        try:
            answer = await self.client.request(method, path, **kwargs)
            status: object = answer.status_code
            if answer.status_code != SUCCESS[op]:
                try:
                    status = f"{answer.status_code} {answer.json()['error']['code']}"
                except (ValueError, KeyError, TypeError):
                    pass
        except httpx.TimeoutException:
            answer, status = None, "timeout"
        except httpx.TransportError as exc:
            answer, status = None, type(exc).__name__
        self.attempts.append({"op": op, "sent_s": round(sent, 3), "status": status,
                              "latency_ms": round((self.now() - sent) * 1000, 1)})
        return status, answer

    async def search(self, user: str, scheduled_s: float | None = None) -> object:
        body = {"query": next(self.queries), "user_id": user, "limit": 10}
        while True:
            status, answer = await self._attempt(SEARCH, "POST", "/v1/memories/search", json=body)
            if status == SUCCESS[SEARCH] or scheduled_s is None or not _retryable(answer) \
                    or self.now() - scheduled_s > self.read_retry_s:
                return status
            await asyncio.sleep(_retry_delay(answer))

    async def add(self, user: str, scheduled_s: float, retry_s: float | None = None) -> object:
        """One add, retried with its key until `retry_s` (default `write_retry_s`) after it was due."""
        retry_s = self.write_retry_s if retry_s is None else retry_s
        marker, key = new_marker(), str(uuid.uuid4())
        body = {"text": f"{next(self.texts)} (ref {marker})", "user_id": user, "infer": False}
        while True:
            status, answer = await self._attempt(ADD, "POST", "/v1/memories", json=body,
                                                 headers={"Idempotency-Key": key})
            if status == SUCCESS[ADD]:
                payload = answer.json()
                self.acknowledged.append({"marker": marker, "memory_id": payload["results"][0]["id"], "user": user,
                                          "key": key, "token": payload["consistency_token"],
                                          "acked_s": round(self.now(), 3)})
                return status
            if not _retryable(answer) or self.now() - scheduled_s > retry_s:
                self.abandoned.append({"marker": marker, "user": user, "key": key, "status": status})
                return status
            await asyncio.sleep(_retry_delay(answer))

    async def _one(self, op: str, scheduled_s: float, samples: list[dict]) -> None:
        user = next(self.user_of)
        status = await (self.add(user, scheduled_s) if op == ADD else self.search(user, scheduled_s))
        samples.append({"op": op, "scheduled_s": round(scheduled_s, 3), "status": status,
                        "latency_ms": round((self.now() - scheduled_s) * 1000, 1)})

    async def run(self, rate: float, duration_s: float | None = None, stop: asyncio.Event | None = None) -> list[dict]:
        """Request i is due at start + i/rate; runs for `duration_s` or until `stop` is set,
        then waits for the requests in flight. Samples carry seconds since this load began."""
        samples: list[dict] = []
        in_flight: set[asyncio.Task] = set()
        start = self.now()
        for i in itertools.count():
            due = start + i / rate
            if (duration_s is not None and due - start >= duration_s) or (stop is not None and stop.is_set()):
                break
            if due > self.now():
                await asyncio.sleep(due - self.now())
            op = operation_for(self.sequence, self.reads_per_write)
            self.sequence += 1
            task = asyncio.create_task(self._one(op, due, samples))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight)
        return samples


def _retryable(answer: httpx.Response | None) -> bool:
    """What the SDK retries: no answer, 409 (the key's first request still running), 429, 5xx."""
    return answer is None or answer.status_code in (409, 429) or answer.status_code >= 500


def _retry_delay(answer: httpx.Response | None) -> float:
    retry_after = answer.headers.get("Retry-After") if answer is not None else None
    return min(2.0, float(retry_after)) if retry_after and retry_after.isdigit() else 0.5


def client_for(base_url: str, request_timeout_s: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers=api_headers(), timeout=request_timeout_s,
                             limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))


def projector_lags(host: str = "127.0.0.1") -> dict[str, float | None]:
    """Each projector's lag gauge (None when its metrics do not answer)."""
    from infra.stack import PROJECTOR_METRICS_PORTS

    lags: dict[str, float | None] = {}
    for name, port in PROJECTOR_METRICS_PORTS.items():
        try:
            text = httpx.get(f"http://{host}:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            lags[name] = None
            continue
        found = re.search(r'^recallstack_projector_lag_events\{projection="%s"\} (\S+)$' % name, text, re.M)
        lags[name] = float(found.group(1)) if found else None
    return lags


async def projectors_idle(timeout_s: float = 300) -> bool:
    """Wait until every projector reads lag 0 (the seed applied), so the ladder does not
    measure the seed's own projection."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(v == 0 for v in (await asyncio.to_thread(projector_lags)).values()):
            return True
        await asyncio.sleep(1)
    return False


async def seed_users(client: httpx.AsyncClient, users: list[str], per_user: int, texts: list[str]) -> None:
    """Give each user `per_user` turns (once: a user that has them already is left alone)."""
    for n, user in enumerate(users):
        for _ in range(30):  # a stack that is still settling answers 503 for a moment
            listed = await client.get("/v1/memories", params={"user_id": user, "page_size": 1})
            if listed.status_code != 503:
                break
            await asyncio.sleep(1)
        listed.raise_for_status()
        missing = per_user - listed.json()["total"]
        if missing <= 0:
            continue
        mine = texts[n * per_user:(n + 1) * per_user][:missing]
        answer = await client.post("/v1/memories/batch", timeout=300,
                                   json={"memories": [{"text": t, "user_id": user, "infer": False} for t in mine]})
        answer.raise_for_status()
        await client.get("/v1/memories", params={"user_id": user, "page_size": 1,
                                                 "consistency_token": answer.json()["consistency_token"]})
        log(f"seeded {user} with {len(mine)} turns")
    log(f"projectors caught up with the seed: {await projectors_idle()}")


async def ladder(base_url: str, rates: list[float], step_s: float, sustained_s: float, warmup_s: float,
                 users: list[str], seed_per_user: int, stop_after_failures: int) -> dict:
    texts, queries = turns(), questions()
    async with client_for(base_url) as client:
        await seed_users(client, users, seed_per_user, texts)
        load = OpenLoopLoad(client, users, texts[len(users) * seed_per_user:], queries)
        if warmup_s:
            log(f"warm-up {warmup_s:.0f} s at {rates[0]} req/s")
            await load.run(rates[0], warmup_s)
        steps, failures = [], 0
        for rate in rates:
            samples = await load.run(rate, step_s)
            step = step_summary(samples, rate, step_s)
            step["passed"] = step_passes(step, P99_LIMIT_MS, MAX_ERROR_RATIO)
            steps.append(step)
            log(f"{rate:>5} req/s offered, {step['achieved_rate']} achieved: search p50 {step[SEARCH]['p50_ms']} "
                f"p99 {step[SEARCH]['p99_ms']} ms, add p99 {step[ADD]['p99_ms']} ms, errors {step['errors'] or 0} "
                f"-> {'pass' if step['passed'] else 'FAIL'}")
            failures = 0 if step["passed"] else failures + 1
            if stop_after_failures and failures >= stop_after_failures:
                log(f"{failures} failed steps in a row: the ladder stops")
                break
        best = highest_passing_rate(steps)
        sustained = None
        if sustained_s:
            rate = best or rates[0]
            log(f"sustained {sustained_s:.0f} s at {rate} req/s")
            samples = await load.run(rate, sustained_s)
            first = min((s["scheduled_s"] for s in samples), default=0.0)
            sustained = step_summary(samples, rate, sustained_s)
            sustained["passed"] = step_passes(sustained, P99_LIMIT_MS, MAX_ERROR_RATIO)
            sustained["timeline"] = windows([{**s, "scheduled_s": s["scheduled_s"] - first} for s in samples],
                                            max(5.0, sustained_s / 60))
            log(f"sustained: search p50 {sustained[SEARCH]['p50_ms']} p99 {sustained[SEARCH]['p99_ms']} ms, "
                f"errors {sustained['errors'] or 0} -> {'pass' if sustained['passed'] else 'FAIL'}")
    return {"steps": steps, "highest_passing_rate": best, "sustained": sustained}


def run(mode: str, out_dir: Path | str, base_url: str = DEFAULT_BASE_URL, rates: list[float] | None = None,
        step_s: float | None = None, sustained_s: float | None = None, users: int = 8, seed_per_user: int = 200,
        stop_after_failures: int = 2) -> dict:
    """The ladder and the sustained run; writes <out_dir>/mixed_load.json and .png; returns the result."""
    params = {**MODES[mode]}
    params.update({k: v for k, v in {"rates": rates, "step_s": step_s, "sustained_s": sustained_s}.items()
                   if v is not None})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"chaos-mixed-u{n}" for n in range(users)]
    info = machine()
    log(f"machine {info}; {users} users x {seed_per_user} seeded turns; mode {mode} {params}")
    began = time.time()
    outcome = asyncio.run(ladder(base_url, params["rates"], params["step_s"], params["sustained_s"],
                                 params["warmup_s"], names, seed_per_user, stop_after_failures))
    result = {"mode": mode, "machine": info, "base_url": base_url, "users": users, "seed_per_user": seed_per_user,
              "corpus": {"memories_seeded": users * seed_per_user, "locomo_turns": len(turns()),
                         "locomo_questions": len(questions())},
              "reads_per_write": 5, "p99_limit_ms": P99_LIMIT_MS, "max_error_ratio": MAX_ERROR_RATIO,
              "params": params, "started_at": began,
              # Share of the sustained run's requests answered successfully (no faults injected here).
              "availability": None if not outcome["sustained"] else round(1 - outcome["sustained"]["error_ratio"], 5),
              "seconds": round(time.time() - began, 1), **outcome,
              "files": {"json": str(out / "mixed_load.json"), "plot": str(out / "mixed_load.png")}}
    Path(result["files"]["json"]).write_text(json.dumps(result, indent=2, default=str))
    plot(result, Path(result["files"]["plot"]))
    log(f"highest rate with search p99 < {P99_LIMIT_MS:.0f} ms: {result['highest_passing_rate']} req/s; "
        f"wrote {result['files']['json']}")
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sustained = result.get("sustained")
    fig, axes = plt.subplots(1, 2 if sustained else 1, figsize=(12 if sustained else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    steps = result["steps"]
    rates = [s["offered_rate"] for s in steps]
    for key, label, style in (("p50_ms", "search p50", "o-"), ("p99_ms", "search p99", "s-")):
        ax.plot(rates, [s[SEARCH][key] for s in steps], style, label=label)
    ax.plot(rates, [s[ADD]["p99_ms"] for s in steps], "^--", label="add p99")
    ax.axhline(result["p99_limit_ms"], color="red", linestyle=":", label=f"{result['p99_limit_ms']:.0f} ms")
    ax.set_xlabel("offered rate (req/s, 5 searches : 1 add)")
    ax.set_ylabel("latency from scheduled send (ms)")
    ax.set_yscale("log")
    ax.set_title("Mixed load ladder")
    ax.legend()
    if sustained:
        ax = axes[0][1]
        rows = sustained["timeline"]
        ax.plot([r["t_s"] for r in rows], [r["search_p50_ms"] for r in rows], label="search p50")
        ax.plot([r["t_s"] for r in rows], [r["search_p99_ms"] for r in rows], label="search p99")
        ax.plot([r["t_s"] for r in rows], [r["add_p99_ms"] for r in rows], "--", label="add p99")
        ax.axhline(result["p99_limit_ms"], color="red", linestyle=":")
        ax.set_xlabel("seconds into the sustained run")
        ax.set_yscale("log")
        ax.set_title(f"Sustained {sustained['duration_s']:.0f} s at {sustained['offered_rate']} req/s")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def report_markdown(result: dict) -> str:
    """The report's section: the ladder table, the verdict, the sustained run and the plot."""
    m = result["machine"]
    lines = ["### Mixed load (5 searches : 1 add, open loop)", "",
             f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('ram_gib', '?')} GiB, load average "
             f"{m.get('loadavg_1m_at_start', 0):.1f} at start. Corpus: {result['users']} users x "
             f"{result['seed_per_user']} LoCoMo turns seeded (plus the adds of the run); queries are LoCoMo questions. "
             f"Latency is measured from each request's scheduled send time (mode {result['mode']}).", "",
             "| offered req/s | sent/s | ok/s | search p50 | p90 | p99 | max | add p50 | add p99 | errors | verdict |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for s in result["steps"]:
        errors = errors_text(s["errors"], none="0")
        lines.append(f"| {s['offered_rate']} | {s['achieved_rate']} | {s['ok_rate']} | {_ms(s[SEARCH]['p50_ms'])} | "
                     f"{_ms(s[SEARCH]['p90_ms'])} | {_ms(s[SEARCH]['p99_ms'])} | {_ms(s[SEARCH]['max_ms'])} | "
                     f"{_ms(s[ADD]['p50_ms'])} | {_ms(s[ADD]['p99_ms'])} | {errors} | "
                     f"{'pass' if s['passed'] else 'fail'} |")
    best = result["highest_passing_rate"]
    lines += ["", f"**Highest rate with search p99 < {result['p99_limit_ms']:.0f} ms and < "
                  f"{100 * result['max_error_ratio']:.1f} % errors: {best if best is not None else 'none'} req/s.**"]
    sustained = result.get("sustained")
    if sustained:
        errors = errors_text(sustained["errors"], none="0")
        lines += ["", f"Sustained {sustained['duration_s']:.0f} s at {sustained['offered_rate']} req/s "
                      f"({sustained['requests']} requests): search p50 {_ms(sustained[SEARCH]['p50_ms'])} ms, "
                      f"p99 {_ms(sustained[SEARCH]['p99_ms'])} ms, add p99 {_ms(sustained[ADD]['p99_ms'])} ms, "
                      f"errors {errors}: {'pass' if sustained['passed'] else 'fail'}."]
    lines += ["", "![mixed load: latency vs offered rate](mixed_load.png)", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--out", default=os.environ.get("RECALLSTACK_BENCH_OUT")
                        or str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of markdown")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    parser.add_argument("--rates", help="comma-separated offered rates (req/s), e.g. 5,10,20")
    parser.add_argument("--step-s", type=float)
    parser.add_argument("--sustained-s", type=float, help="0: no sustained run")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seed-per-user", type=int, default=200)
    parser.add_argument("--stop-after-failures", type=int, default=2,
                        help="stop the ladder after this many failed steps in a row (0: never)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")] if args.rates else None
    result = run(args.mode, args.out, args.base_url, rates, args.step_s, args.sustained_s, args.users,
                 args.seed_per_user, args.stop_after_failures)
    print(json.dumps(result, indent=2, default=str) if args.json else report_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
