"""Kafka stopped: writes answer 503 with Retry-After quickly, nothing partial lands, and
writes work again once Kafka is back."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.e2e.log_reader import end_offsets
from tests.e2e.outage import user_events_since

pytestmark = pytest.mark.e2e


@pytest.fixture
def kafka_down(settings, services):
    """Stop the real Kafka (the process recallstack started), restart it afterwards."""
    from infra import stack

    processes = stack.table(settings)
    [kafka] = stack.infra_specs(settings, ("kafka",))
    before = asyncio.run(end_offsets(settings.kafka_bootstrap))

    def stop():
        stack.down([kafka], processes)

    yield before, stop
    stack.up([kafka], processes)


@pytest.mark.outage
def test_writes_answer_503_fast_and_nothing_partial_lands(gateway, settings, kafka_down, user_id):
    """Degradation mode "Kafka down": writes 503 with Retry-After, reads go on, /readyz
    names Kafka; a write acknowledged before the outage is there exactly once after it."""
    from tests.e2e.outage import assert_exactly_once, latest_token, readyz

    before, stop_kafka = kafka_down
    reader = f"{user_id}-reader"  # acknowledged before the outage, read during it
    acked = gateway.post("/v1/memories", json={"text": "acknowledged before Kafka stopped", "user_id": reader,
                                               "infer": False})
    assert acked.status_code == 202, acked.text
    assert gateway.get("/v1/memories", params={"user_id": reader, "consistency_token":
                                               acked.json()["consistency_token"]}).status_code == 200
    # A large batch is in flight (embedding 300 texts takes a while) when Kafka goes away.
    outcome = {}

    def send_batch():
        items = [{"text": f"batch fact {i} about the outage", "user_id": user_id} for i in range(300)]
        outcome["batch"] = gateway.post("/v1/memories/batch", json={"memories": items})

    sender = threading.Thread(target=send_batch)
    sender.start()
    time.sleep(0.3)
    stop_kafka()
    sender.join(timeout=60)
    assert outcome["batch"].status_code == 503, outcome["batch"].text
    assert outcome["batch"].json()["error"]["code"] == "log_unavailable"

    began = time.monotonic()
    single = gateway.post("/v1/memories", json={"text": "written while Kafka is down", "user_id": user_id})
    elapsed = time.monotonic() - began
    assert single.status_code == 503 and single.headers["Retry-After"] == "2"
    assert "did not acknowledge" in single.json()["error"]["message"]
    assert elapsed < 2.5, f"took {elapsed:.2f}s to answer 503"
    ready = gateway.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["command"].startswith("not ready: kafka")
    assert ready.json()["checks"]["query"] == "degraded: kafka"  # only its access log waits
    assert readyz(settings.query_api_url).status_code == 200
    # Reads go on while the log is down.
    found = gateway.post("/v1/memories/search", json={"query": "acknowledged before Kafka", "user_id": reader})
    assert found.status_code == 200, found.text
    assert [r["memory"] for r in found.json()["results"]] == ["acknowledged before Kafka stopped"]
    assert gateway.get("/v1/memories", params={"user_id": reader}).json()["total"] == 1

    from infra import stack

    stack.up(stack.infra_specs(settings, ("kafka",)), stack.table(settings))
    # Nothing of the failed writes is visible to a committed reader, not even part of the batch.
    assert user_events_since(settings, before, user_id) == []
    # And writes work again without restarting the API.
    deadline = time.monotonic() + 30
    while True:
        answer = gateway.post("/v1/memories", json={"text": "written after Kafka returned", "user_id": user_id})
        if answer.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.status_code == 202, answer.text
    found = gateway.post("/v1/memories/search", json={"query": "after Kafka returned", "user_id": user_id,
                                                       "consistency_token": answer.json()["consistency_token"]})
    assert [r["memory"] for r in found.json()["results"]] == ["written after Kafka returned"]
    assert_exactly_once(settings, gateway, before, reader, ["acknowledged before Kafka stopped"], latest_token([acked]))
    assert_exactly_once(settings, gateway, before, user_id, ["written after Kafka returned"], latest_token([answer]))


CONSUMERS = ("projector-postgres", "projector-redis", "projector-neo4j", "projector-sparse", "worker-extract",
             "worker-consolidate", "worker-forget")


def applied_by_projector(settings) -> dict[str, float]:
    """Events each projector applied so far, from its /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from infra.stack import PROJECTOR_METRICS_PORTS

    applied = {}
    for name, port in PROJECTOR_METRICS_PORTS.items():
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        applied[name] = sum(sample.value for family in text_string_to_metric_families(page)
                            if family.name == "recallstack_projector_applied_events" for sample in family.samples
                            if sample.name.endswith("_total"))
    return applied


def group_offsets(settings, partition: int) -> tuple[dict[str, int], int]:
    """The consolidation and forgetting groups' committed offsets on `partition` of the events
    topic, and the partition's end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from settings import EVENTS_TOPIC, lifecycle_group

    async def read():
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await consumer.start()
        await admin.start()
        try:
            tp = TopicPartition(EVENTS_TOPIC, partition)
            committed = {}
            for group in (lifecycle_group("consolidate"), lifecycle_group("forget")):
                offsets = await admin.list_consumer_group_offsets(group)
                committed[group] = offsets[tp].offset if tp in offsets else -1
            return committed, (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
            await admin.close()
    return asyncio.run(read())


@pytest.mark.outage
def test_every_projector_and_worker_acts_on_new_events_after_a_kafka_outage(gateway, settings, kafka_down,
                                                                              user_id):
    """Kafka down for longer than the clients' own retries (their coordinators, producers and
    fetchers all fail meanwhile), then back: every projector and worker is still the same
    process and acts on what is appended after (none dies, none idles)."""
    from adapters.kafka_log import partition_of
    from infra import stack
    from tests.e2e.test_workers import converse, memories, wait_for

    processes = stack.table(settings)
    pids = {name: processes.pid(name) for name in CONSUMERS}
    assert all(pids.values()), pids  # the services fixture runs them all
    _before, stop_kafka = kafka_down
    stop_kafka()
    applied_before = applied_by_projector(settings)
    time.sleep(20)  # aiokafka's metadata and coordinator lookups time out and retry meanwhile
    stack.up(stack.infra_specs(settings, ("kafka",)), processes)

    deadline = time.monotonic() + 60
    while (added := gateway.post("/v1/memories", json={"text": "Ottoline keeps bees after the outage",
                                                        "user_id": user_id, "infer": False})).status_code != 202:
        assert time.monotonic() < deadline, added.text
        time.sleep(0.5)
    token = added.json()["consistency_token"]
    talker = f"{user_id}-talk"
    converse(gateway, talker, messages=[{"role": "user", "content": "I switched my editor to Helix last week."}])

    # The projectors: each applies what came after; the searches find the new memory.
    assert wait_for(lambda: all(applied > applied_before[name] for name, applied in
                                applied_by_projector(settings).items()), timeout=60,
                    what=f"every projector to apply new events (before: {applied_before})")
    for source in ("dense", "sparse"):
        assert wait_for(lambda: [r for r in gateway.post("/v1/memories/search", json={
            "query": "Who keeps bees? Ottoline", "user_id": user_id, "sources": [source], "cache": False,
            "consistency_token": token}).json()["results"] if "Ottoline" in r["memory"]], timeout=60,
            what=f"the {source} source to find the add")
    # The extraction worker: the conversation after the outage becomes a memory.
    assert wait_for(lambda: [m for m in memories(gateway, talker) if "Helix" in m["memory"]], timeout=120,
                    what="the extraction worker to extract the conversation")
    # The consolidation and forgetting workers commit past the new events (a group's committed
    # offset stops before the marker that ends the partition: end - 1).
    mine = partition_of(user_id)
    _, end = group_offsets(settings, mine)
    assert wait_for(lambda: all(o >= end - 1 for o in group_offsets(settings, mine)[0].values()), timeout=90,
                    what="the consolidation and forgetting workers to commit past the new events")
    assert {name: processes.pid(name) for name in CONSUMERS} == pids, "a consumer died in the outage"
