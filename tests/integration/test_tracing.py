"""One trace from the HTTP request through the append to the projector's apply, and the
correlation id in the events and the projector's log lines (real Kafka, in one process:
the command API app, its EventPublisher and a ProjectorRunner, spans kept in memory)."""

from __future__ import annotations

import io
import json
import logging
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters import observability
from adapters.http_auth import Authenticator
from adapters.kafka_log import EventPublisher
from command_api.app import create_app
from application.command_handlers import CommandContext
from command_api.idempotency import IdempotencyStore
from projectors.runner import ProjectorRunner
from tests.unit.fakes import FakeEmbedder, FakeMemories

pytestmark = pytest.mark.integration


class Recording:
    """A projection that keeps what it is given (the runner is what is tested here)."""
    name = "recording"
    transient_errors = ()

    def __init__(self):
        self.events = []

    async def positions(self, topic):
        return {}

    async def apply_batch(self, topic, batch):
        self.events += [item.event for item in batch if item.event is not None]


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    observability.configure_tracing("test", exporter=exporter)
    yield exporter
    observability.configure_tracing("test", mode="off")


@pytest.fixture
def log_lines():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    observability.configure_logging("test", "json", "INFO", stream=buf)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def topic(settings):
    name = f"test-tracing-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 2, 1), NewTopic(name + "-dlq", 1, 1)])
    yield name
    await admin.delete_topics([name, name + "-dlq"])
    await admin.close()


async def test_one_trace_spans_request_append_and_projector_apply(settings, topic, spans, log_lines, user_id):
    publisher = EventPublisher(settings.kafka_bootstrap, topic=topic, timeout_s=10,
                               transactional_id=f"test-tracing-{uuid.uuid4().hex[:8]}")
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    context = CommandContext(embedder=FakeEmbedder(), publisher=publisher, memories=FakeMemories(), correlation_id="")

    async def positions():
        return {}

    app = create_app(context, IdempotencyStore(redis_client), positions, 1000, {},
                     Authenticator(None, None, required=False))
    projection = Recording()
    runner = ProjectorRunner(projection, settings.kafka_bootstrap, topic=topic, dlq_topic=topic + "-dlq",
                             group_id=f"test-{topic}")
    try:
        await publisher.start()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            answer = await client.post("/v1/memories", json={"text": "tracing works", "user_id": user_id},
                                       headers={"X-Request-ID": "req-trace-1"})
        assert answer.status_code == 202, answer.text
        assert answer.headers["X-Request-ID"] == "req-trace-1"
        await runner.start()
        for _ in range(100):
            await runner.poll_once(timeout_ms=200)
            if projection.events:
                break
    finally:
        await runner.close()
        await publisher.stop()
        await redis_client.aclose()

    (event,) = projection.events
    assert event.correlation_id == "req-trace-1"  # the request's id is the event's correlation id
    finished = {s.name: s for s in spans.get_finished_spans()}
    server, publish, apply = (finished["POST /v1/memories"], finished[f"publish {topic}"],
                              finished["apply MemoryCreated"])
    assert server.context.trace_id == publish.context.trace_id == apply.context.trace_id
    assert publish.parent.span_id == server.context.span_id and publish.kind == trace.SpanKind.PRODUCER
    assert apply.parent.span_id == publish.context.span_id and apply.kind == trace.SpanKind.CONSUMER
    assert apply.attributes["recallstack.event_id"] == event.event_id
    assert apply.attributes["recallstack.projection"] == "recording"

    lines = log_lines()
    access = next(line for line in lines if line["logger"] == "recallstack.access")
    assert (access["correlation_id"], access["status"], access["route"]) == ("req-trace-1", 202, "/v1/memories")
    assert access["trace_id"] == format(server.context.trace_id, "032x")
    applied = next(line for line in lines if line["message"] == "events applied")
    assert applied["correlation_id"] == "req-trace-1" and applied["event_id"] == event.event_id
    assert (applied["event_type"], applied["user_id"], applied["projection"]) == ("MemoryCreated", user_id, "recording")
    assert {"partition", "offset"} <= set(applied)
    assert applied["trace_id"] == format(server.context.trace_id, "032x")
    assert "tracing works" not in json.dumps(lines)  # ids only, never the memory's text
