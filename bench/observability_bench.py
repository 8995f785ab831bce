"""What logs and traces cost (adapters/observability.py, projectors/telemetry.py), in process.

- a request through an ASGI app with the API's middleware (RequestContext: the correlation
  id, the access line) against the same app without it, tracing off and on (spans
  recorded by the SDK into a discarding exporter, so the figure is the SDK's cost, not an
  exporter's);
- a projector's telemetry after a batch of 500 events (one log line per correlation id;
  per record a span when tracing), off and on;
- one JSON log line.

Logs go to /dev/null. Needs no server.

    .venv/bin/python bench/observability_bench.py [--requests 3000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

from adapters import observability  # noqa: E402
from adapters.http_api import install_error_handlers, install_http_metrics  # noqa: E402
from domain.events import MemoryCreated  # noqa: E402
from projectors import telemetry  # noqa: E402
from projectors.applied import Applied  # noqa: E402


class Discard(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def app(with_context: bool) -> FastAPI:
    made = FastAPI()
    install_error_handlers(made)
    install_http_metrics(made, "bench")
    if with_context:
        observability.install_request_context(made, "bench")

    @made.post("/v1/memories/{memory_id}")
    async def write(memory_id: str):
        return {"id": memory_id}
    return made


async def per_request_us(with_context: bool, requests: int) -> float:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app(with_context)), base_url="http://b") as client:
        for _ in range(200):
            await client.post("/v1/memories/x", headers={"X-Request-ID": "warm"})
        samples = []
        for _ in range(5):
            began = time.perf_counter()
            for i in range(requests // 5):
                await client.post(f"/v1/memories/{i}", headers={"X-Request-ID": f"req-{i}"})
            samples.append((time.perf_counter() - began) / (requests // 5) * 1e6)
    return statistics.median(samples)


class Record:
    def __init__(self, offset: int, headers):
        self.offset, self.headers = offset, headers


def batch_of(size: int, traced: bool):
    items, messages, now = [], [], datetime.now(timezone.utc)
    for i in range(size):
        event = MemoryCreated(user_id=f"user-{i % 50}", actor="bench", memory_id=str(uuid.uuid4()), text="x",
                              embedding=(0.0,) * 4, embedding_model="bench", happened_at=now,
                              correlation_id=f"req-{i // 2}")  # two events per request
        headers = []
        if traced:
            with observability.tracer().start_as_current_span("publish"):
                headers = observability.trace_headers()
        items.append(Applied(i % 12, i, event))
        messages.append((None, Record(i, headers)))
    return items, messages


def telemetry_us_per_event(size: int, rounds: int, traced: bool) -> float:
    items, messages = batch_of(size, traced)
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        telemetry.applied("bench", "recallstack.memory.events", items, messages, time.time_ns())
        samples.append((time.perf_counter() - began) / size * 1e6)
    return statistics.median(samples)


def log_line_us(lines: int = 20000) -> float:
    log = logging.getLogger("bench")
    began = time.perf_counter()
    for i in range(lines):
        log.info("events applied", extra={"correlation_id": "req-1", "event_id": "e" * 36, "partition": 3, "offset": i})
    return (time.perf_counter() - began) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    observability.configure_logging("bench", "json", "INFO", stream=open(os.devnull, "w"))
    results = {}
    observability.configure_tracing("bench", mode="off")
    results["request_without_middleware_us"] = asyncio.run(per_request_us(False, args.requests))
    results["request_tracing_off_us"] = asyncio.run(per_request_us(True, args.requests))
    results["apply_500_tracing_off_us_per_event"] = telemetry_us_per_event(500, 20, traced=False)
    results["json_log_line_us"] = log_line_us()
    observability.configure_tracing("bench", exporter=Discard())
    results["request_tracing_on_us"] = asyncio.run(per_request_us(True, args.requests))
    results["apply_500_tracing_on_us_per_event"] = telemetry_us_per_event(500, 20, traced=True)
    results = {k: round(v, 1) for k, v in results.items()}
    if args.json:
        print(json.dumps(results))
        return
    for name, value in results.items():
        print(f"{name:40} {value:10.1f}")


if __name__ == "__main__":
    main()
