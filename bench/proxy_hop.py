"""The hop the reverse proxy adds: the same cheap request straight to the query API and through
the base URL (nginx), one client, one kept-alive connection each, interleaved (so both see the
same machine load), many times. The request is an authenticated GET of a memory that does not
exist (404): authentication, a Postgres lookup, the JSON error; the API's work is the same on
both paths, so the difference is the proxy.

    python bench/proxy_hop.py                       # against the running local stack
    python bench/proxy_hop.py --requests 5000 --json

Target (issue 19): under 0.5 ms p50 added (the Python proxy it replaced added about 5 ms).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benches import each other from bench/
from machine_info import machine  # noqa: E402
from percentiles import pct  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from settings import Settings  # noqa: E402


class Target:
    """One kept-alive HTTP/1.1 connection (the stdlib client: little overhead of its own)."""

    def __init__(self, name: str, base_url: str, headers: dict[str, str]):
        parts = urlsplit(base_url)
        self.name, self.headers = name, headers
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.ms: list[float] = []

    def once(self, path: str, record: bool = True) -> int:
        began = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        answer = self.conn.getresponse()
        answer.read()
        took = (time.perf_counter() - began) * 1000
        if record:
            self.ms.append(took)
        return answer.status

    def summary(self) -> dict:
        return {"p50_ms": round(statistics.median(self.ms), 3), "p90_ms": round(pct(self.ms, 90), 3),
                "p99_ms": round(pct(self.ms, 99), 3), "mean_ms": round(statistics.fmean(self.ms), 3),
                "requests": len(self.ms)}


def main() -> int:
    cfg = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per path (default 3000)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--proxy", default=cfg.gateway_url, help="the base URL (default %(default)s)")
    parser.add_argument("--direct", default=cfg.query_api_url, help="the query API (default %(default)s)")
    parser.add_argument("--path", default=None, help="another request path (default: GET of a missing memory); "
                        "both ways must answer it with the same status")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()

    key = os.environ.get("RECALLSTACK_API_KEY") or (cfg.admin_key_file.read_text().strip()
                                                    if cfg.admin_key_file.exists() else "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    path = args.path or f"/v1/memories/{uuid.uuid4()}?user_id=bench-proxy-hop"
    targets = [Target("direct", args.direct, headers), Target("proxy", args.proxy, headers)]
    statuses = [target.once(path, record=False) for target in targets]
    if statuses[0] != statuses[1] or (args.path is None and statuses[0] != 404):
        print(f"direct and proxy answered {statuses[0]} and {statuses[1]} (expected the same, 404 for a missing "
              f"memory: is the stack up, a key in {cfg.admin_key_file} or RECALLSTACK_API_KEY?)", file=sys.stderr)
        return 1
    for i in range(args.warmup):
        targets[i % 2].once(path, record=False)
    for i in range(2 * args.requests):  # interleaved: direct, proxy, direct, ...
        targets[i % 2].once(path)
    direct, proxy = targets[0].summary(), targets[1].summary()
    request = f"GET {args.path} ({statuses[0]})" if args.path else "GET /v1/memories/<missing id> (404, authenticated)"
    result = {"bench": "proxy_hop", "request": request,
              "machine": machine(), "direct": {"url": args.direct, **direct}, "proxy": {"url": args.proxy, **proxy},
              "added_p50_ms": round(proxy["p50_ms"] - direct["p50_ms"], 3),
              "added_p99_ms": round(proxy["p99_ms"] - direct["p99_ms"], 3),
              "added_mean_ms": round(proxy["mean_ms"] - direct["mean_ms"], 3), "target_added_p50_ms": 0.5}
    if args.json:
        print(json.dumps(result))
        return 0
    m = result["machine"]
    print(f"machine: {m['cores']} cores ({m.get('cpu', '?')}), load {m['loadavg_1m_at_start']:.2f}; {args.requests} requests each, one client")
    print(f"request: {result['request']}")
    print(f"{'':8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, row in (("direct", direct), ("proxy", proxy)):
        print(f"{name:8} {row['p50_ms']:8.3f} {row['p90_ms']:8.3f} {row['p99_ms']:8.3f} {row['mean_ms']:8.3f}")
    print(f"added by the proxy: p50 {result['added_p50_ms']:+.3f} ms, p99 {result['added_p99_ms']:+.3f} ms, "
          f"mean {result['added_mean_ms']:+.3f} ms (target: p50 < 0.5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
