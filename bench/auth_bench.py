"""What authentication costs, and how fast a revocation takes effect, on the running stack.

Measures, on this machine:
- the key check: KeyDirectory.principal from its cache and from Postgres (in process);
- the rate limit: RateLimiter.take, one Redis round trip (in process);
- a request end to end through the query API: GET /v1/me and a search, with a write key
  (checked and rate limited) beside an admin key (checked, not rate limited);
- revocation: DELETE /v1/keys/{id} through the gateway, then the time until both APIs
  refuse the key (polled every 5 ms), over N keys.

Needs `recallstack up` (the admin key in $RECALLSTACK_HOME/admin.key or
$RECALLSTACK_API_KEY). Prints medians and p99 with the machine; --json for the figures.

    .venv/bin/python bench/auth_bench.py [--requests 2000] [--revocations 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from api_key import api_headers  # noqa: E402

from machine_info import machine  # noqa: E402

from percentiles import pct  # noqa: E402


def summary(samples_ms: list[float]) -> dict:
    return {"n": len(samples_ms), "median_ms": round(statistics.median(samples_ms), 3),
            "p99_ms": round(pct(samples_ms, 99), 3), "max_ms": round(max(samples_ms), 3)}


async def in_process(cfg, n: int) -> dict:
    from adapters import postgres
    from adapters.key_directory import KeyDirectory
    from adapters.rate_limit import RateLimiter

    key = api_headers()["Authorization"].split()[1]
    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=2)
    try:
        directory = KeyDirectory(lambda: pool, ttl_s=3600)
        uncached = []
        for _ in range(n // 10):
            fresh = KeyDirectory(lambda: pool)
            began = time.perf_counter()
            assert await fresh.principal(key) is not None
            uncached.append((time.perf_counter() - began) * 1000)
        await directory.principal(key)
        cached = []
        for _ in range(n):
            began = time.perf_counter()
            await directory.principal(key)
            cached.append((time.perf_counter() - began) * 1000)
    finally:
        await pool.close()
    limiter = RateLimiter(cfg.redis_url, per_minute=10_000_000)
    taken = []
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    for _ in range(n):
        began = time.perf_counter()
        await limiter.admit("127.0.0.1", key_id=bucket, user_id=bucket)  # what a user key costs per request
        taken.append((time.perf_counter() - began) * 1000)
    await limiter.close()
    return {"key_check_cached": summary(cached), "key_check_postgres": summary(uncached),
            "rate_limit_redis": summary(taken)}


def end_to_end(cfg, n: int) -> dict:
    admin = api_headers()
    user = f"bench-auth-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=cfg.gateway_url, headers=admin, timeout=30) as gateway:
        issued = gateway.post("/v1/keys", json={"user_id": user, "scopes": ["write"]})
        issued.raise_for_status()
        writer = {"Authorization": f"Bearer {issued.json()['key']}"}
        token = gateway.post("/v1/memories", json={"text": "the bench likes green tea", "user_id": user}).json()
        gateway.get("/v1/memories", params={"user_id": user, "consistency_token": token["consistency_token"]})
    out = {}
    with httpx.Client(base_url=cfg.query_api_url, timeout=30) as api:
        for label, headers, params in (("admin_key", admin, {"user_id": user}), ("write_key", writer, {})):
            for name, call in (("me", lambda h=headers: api.get("/v1/me", headers=h)),
                               ("search", lambda h=headers, p=params: api.post(
                                   "/v1/memories/search", headers=h, json={"query": "green tea", **p,
                                                                            "cache": False}))):
                for _ in range(20):
                    call().raise_for_status()
                samples = []
                for _ in range(n if name == "me" else n // 4):
                    began = time.perf_counter()
                    call().raise_for_status()
                    samples.append((time.perf_counter() - began) * 1000)
                out[f"{name}_{label}"] = summary(samples)
    with httpx.Client(base_url=cfg.gateway_url, headers=admin, timeout=30) as gateway:
        gateway.delete(f"/v1/users/{user}", params={"confirm": "true", "reason": "bench"})
    return out


def revocations(cfg, n: int) -> dict:
    admin = api_headers()
    user = f"bench-revoke-{uuid.uuid4().hex[:8]}"
    took = []
    with httpx.Client(base_url=cfg.gateway_url, headers=admin, timeout=30) as gateway, httpx.Client(timeout=5) as raw:
        for i in range(n):
            issued = gateway.post("/v1/keys", json={"user_id": user, "scopes": ["read"]}).json()
            used = {"Authorization": f"Bearer {issued['key']}"}
            probes = (("GET", f"{cfg.query_api_url}/v1/me"),
                      ("DELETE", f"{cfg.command_api_url}/v1/memories/{uuid.uuid4()}"))
            raw.get(probes[0][1], headers=used).raise_for_status()  # now cached as valid in the query API
            began = time.perf_counter()
            gateway.delete(f"/v1/keys/{issued['key_id']}").raise_for_status()
            for method, url in probes:
                while raw.request(method, url, headers=used).status_code != 401:
                    time.sleep(0.005)
            took.append((time.perf_counter() - began) * 1000)
            print(f"\r  revocations {i + 1}/{n}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        gateway.delete(f"/v1/users/{user}", params={"confirm": "true", "reason": "bench"})
    return summary(took)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--revocations", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from settings import Settings

    cfg = Settings.from_env()
    if not api_headers():
        print("no API key: run `recallstack up` (it writes admin.key) or set RECALLSTACK_API_KEY", file=sys.stderr)
        return 2
    print("in-process checks…", file=sys.stderr)
    result = {"machine": machine(), "in_process": asyncio.run(in_process(cfg, args.requests))}
    print("end to end through the query API…", file=sys.stderr)
    result["end_to_end"] = end_to_end(cfg, args.requests)
    print("revocations…", file=sys.stderr)
    result["revocation_to_refusal"] = revocations(cfg, args.revocations)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["machine"]
    print(f"auth bench on {m.get('cores')} cores, {m.get('ram_gib')} GiB ({m.get('cpu', '')}), load {m['loadavg_1m_at_start']:.1f}")
    for section in ("in_process", "end_to_end"):
        for name, s in result[section].items():
            print(f"  {name:28s} median {s['median_ms']:8.3f} ms   p99 {s['p99_ms']:8.3f} ms   (n={s['n']})")
    s = result["revocation_to_refusal"]
    print(f"  {'revocation -> refused (both APIs)':28s} median {s['median_ms']:8.1f} ms   p99 {s['p99_ms']:8.1f} ms"
          f"   max {s['max_ms']:.1f} ms (n={s['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
