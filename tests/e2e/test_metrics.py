"""Prometheus metrics after a scripted workload (issue 9 item 1), and the error rates of
`recallstack status` (item 6).

The workload (adds, a conversation for the extraction worker, a read-your-writes search that
names a time, a get, a miss, an update, a delete) goes through the gateway; then each process's
/metrics must have the names and labels docs/observability.md lists, with non-zero counts where
the workload implies them.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.stack import PROJECTOR_METRICS_PORTS, WORKER_METRICS_PORTS
from settings import ACCESS_TOPIC, EVENTS_TOPIC
from tests.e2e.conftest import admin_headers
from tests.e2e.test_cli_json import recallstack

pytestmark = pytest.mark.e2e

Samples = list[tuple[str, dict, float]]


def scrape(url: str) -> tuple[Samples, set[str]]:
    """(name, labels, value) of every sample of url/metrics, and the metric families it declares
    (a labelled metric nothing has counted yet has a family but no sample)."""
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, f"{url}/metrics: {answer.status_code}"
    families = list(text_string_to_metric_families(answer.text))
    return [(s.name, s.labels, s.value) for f in families for s in f.samples], {f.name for f in families}


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for n, have, value in samples if n == name and all(have.get(k) == v for k, v in labels.items()))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {have[label] for n, have, _ in samples if n == name and label in have}


def wait_for(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def local(settings, port: int) -> str:
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def workload(services):
    """Runs the workload once; returns the ids it made."""
    import uuid

    user = f"test-metrics-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=services.gateway_url, timeout=30, headers=admin_headers()) as gateway:
        added = []
        for text in ("Yesterday I drank a flat white at the harbour cafe", "I prefer tabs over spaces"):
            answer = gateway.post("/v1/memories", json={"text": text, "user_id": user, "infer": False})
            assert answer.status_code == 202, answer.text
            added.append(answer.json())
        conversation = gateway.post("/v1/memories", json={"user_id": user, "infer": True, "messages": [
            {"role": "user", "content": "I deploy with GitHub Actions every night."}]})
        assert conversation.status_code == 202, conversation.text
        token = added[-1]["consistency_token"]
        search = gateway.post("/v1/memories/search", json={"query": "what did I drink yesterday?", "user_id": user,
                                                           "consistency_token": token})
        assert search.status_code == 200, search.text
        memory_id = added[0]["results"][0]["id"]
        assert gateway.get(f"/v1/memories/{memory_id}", params={"user_id": user}).status_code == 200
        assert gateway.get(f"/v1/memories/{uuid.uuid4()}", params={"user_id": user}).status_code == 404
        patched = gateway.patch(f"/v1/memories/{memory_id}", params={"user_id": user},
                                json={"text": "Yesterday I drank an espresso"})
        assert patched.status_code == 202, patched.text
        other = added[1]["results"][0]["id"]
        assert gateway.delete(f"/v1/memories/{other}", params={"user_id": user}).status_code == 202
        # The extraction worker's facts: the conversation became at least one memory.
        wait_for(lambda: any("GitHub Actions" in m["memory"] for m in gateway.get(
            "/v1/memories", params={"user_id": user}).json()["results"]), timeout=120, what="the extracted fact")
    return {"user": user, "memory_id": memory_id}


def test_the_command_api_measures_routes_embeddings_and_kafka_appends(services, workload):
    samples, _ = scrape(services.command_api_url)
    http = "recallstack_http_request_seconds_count"
    assert total(samples, http, service="command", method="POST", route="/v1/memories", status="202") >= 2
    assert total(samples, http, service="command", method="PATCH", route="/v1/memories/{memory_id}",
                 status="202") >= 1
    assert total(samples, http, service="command", method="DELETE", route="/v1/memories/{memory_id}",
                 status="202") >= 1
    assert total(samples, "recallstack_http_request_seconds_bucket", service="command", route="/v1/memories",
                 le="+Inf") >= 2
    assert total(samples, "recallstack_kafka_produce_seconds_count", topic=EVENTS_TOPIC, outcome="ok") >= 3
    assert total(samples, "recallstack_kafka_produce_seconds_sum", topic=EVENTS_TOPIC, outcome="ok") > 0
    assert total(samples, "recallstack_embed_seconds_count") >= 2 and label_values(samples,
                                                                                "recallstack_embed_seconds_count",
                                                                                "model")


def test_the_query_api_measures_routes_sources_caches_and_the_access_log(services, workload):
    samples, families = scrape(services.query_api_url)
    http = "recallstack_http_request_seconds_count"
    assert total(samples, http, service="query", method="POST", route="/v1/memories/search", status="200") >= 1
    assert total(samples, http, service="query", method="GET", route="/v1/memories/{memory_id}", status="200") >= 1
    assert total(samples, http, service="query", method="GET", route="/v1/memories/{memory_id}", status="404") >= 1
    for source in ("dense", "sparse", "temporal"):  # the query names a time: the temporal source ran
        assert total(samples, "recallstack_search_source_seconds_count", source=source) >= 1, source
    lookups = "recallstack_query_cache_lookups_total"
    assert {"embedding_lru", "answers"} <= label_values(samples, lookups, "cache")
    assert label_values(samples, lookups, "outcome") <= {"hit", "miss"}
    assert total(samples, lookups, cache="embedding_lru") >= 1 and total(samples, lookups, cache="answers") >= 1
    assert total(samples, "recallstack_embed_seconds_count") + total(samples, lookups, cache="embedding_lru",
                                                                     outcome="hit") >= 1
    assert {"recallstack_search_degraded", "recallstack_search_degraded_answers"} <= families
    # The search and the get were recorded as access: the recorder appends them in the background.
    wait_for(lambda: total(scrape(services.query_api_url)[0], "recallstack_kafka_produce_seconds_count",
                           topic=ACCESS_TOPIC, outcome="ok") >= 1, timeout=30, what="an access-log append")


def test_the_base_urls_metrics_are_the_web_edges_own(services, workload):
    """The proxy at the base URL passes /metrics to the web edge: its own requests only (the
    workload's requests went through the proxy to the APIs, which counted them above)."""
    assert httpx.get(f"{services.gateway_url}/readyz", timeout=10).status_code == 200
    samples, _ = scrape(services.gateway_url)
    http = "recallstack_http_request_seconds_count"
    assert total(samples, http, service="web-edge", route="/readyz", method="GET", status="200") >= 1
    assert {labels["service"] for name, labels, _ in samples if name == http} == {"web-edge"}


@pytest.mark.parametrize("projection", list(PROJECTOR_METRICS_PORTS))
def test_each_projector_exports_throughput_lag_and_event_to_visible_latency(services, workload, projection):
    url = local(services, PROJECTOR_METRICS_PORTS[projection])

    def applied():
        samples, _ = scrape(url)
        return total(samples, "recallstack_projector_event_visible_seconds_count", projection=projection) >= 4 \
            and samples

    samples = wait_for(applied, timeout=60, what=f"{projection}: event-to-visible observations")
    _, families = scrape(url)
    assert total(samples, "recallstack_projector_event_visible_seconds_sum", projection=projection) > 0
    assert total(samples, "recallstack_projector_event_visible_seconds_bucket", projection=projection,
                 le="+Inf") >= 4
    assert total(samples, "recallstack_projector_applied_events_total", projection=projection) >= 4
    assert total(samples, "recallstack_projector_batch_seconds_count", projection=projection) >= 1
    lag = [v for n, labels, v in samples if n == "recallstack_projector_lag_events"
           and labels.get("projection") == projection]
    assert len(lag) == 1 and lag[0] >= 0
    # Caught up once idle: the gauge reads the high watermark of its last fetch.
    wait_for(lambda: total(scrape(url)[0], "recallstack_projector_lag_events", projection=projection) == 0,
             timeout=30, what=f"{projection}: lag 0 once idle")
    assert {"recallstack_dlq_events", "recallstack_projector_shredded_events", "recallstack_kafka_produce_seconds"} \
        <= families
    beats = [v for n, labels, v in scrape(url)[0] if n == "recallstack_loop_heartbeat_timestamp_seconds"
             and labels.get("loop") == f"projector-{projection}"]
    assert len(beats) == 1 and time.time() - beats[0] < 10, beats  # an idle loop still goes round


def test_the_workers_export_their_actions(services, workload):
    samples, families = scrape(local(services, WORKER_METRICS_PORTS["extract"]))
    decisions = "recallstack_extraction_decisions_total"
    assert total(samples, decisions, action="ADD") >= 1, [s for s in samples if s[0] == decisions]
    assert label_values(samples, decisions, "action") <= {"ADD", "UPDATE", "DELETE", "NONE"}
    assert total(samples, "recallstack_kafka_produce_seconds_count", topic=EVENTS_TOPIC, outcome="ok") >= 1
    assert "recallstack_extraction_fallbacks" in families
    assert time.time() - total(samples, "recallstack_loop_heartbeat_timestamp_seconds", loop="worker-extract") < 10
    for worker in ("consolidate", "forget"):
        _, families = scrape(local(services, WORKER_METRICS_PORTS[worker]))
        assert "recallstack_lifecycle_actions" in families, worker


def test_status_json_has_recent_http_error_rates(services, workload):
    """Requests that answer 404 while `status` samples: its window sees them."""
    stop = threading.Event()

    def misses():
        with httpx.Client(base_url=services.gateway_url, timeout=10, headers=admin_headers()) as client:
            while not stop.is_set():
                client.get("/v1/memories/00000000-0000-0000-0000-000000000000",
                           params={"user_id": workload["user"]})
                time.sleep(0.02)

    thread = threading.Thread(target=misses, daemon=True)
    thread.start()
    try:
        began = time.monotonic()
        code, doc, err = recallstack(services, "status", "--json")
        took = time.monotonic() - began
    finally:
        stop.set()
        thread.join(10)
    assert code == 0, err
    rows = {row["service"]: row for row in doc["http_errors"]}
    assert list(rows) == ["web-edge", "command", "query"]
    for service, row in rows.items():
        assert row["error"] is None, row
        assert row["requests_total"] >= row["errors_4xx_total"] + row["errors_5xx_total"], row
        assert row["window_s"] >= 1.0 and isinstance(row["window_requests"], int), row
        assert row["window_requests"] >= row["window_errors_4xx"] + row["window_errors_5xx"], row
    for service in ("query",):  # the misses went through the proxy to the query API
        row = rows[service]
        assert row["errors_4xx_total"] >= 1 and row["window_errors_4xx"] >= 1, row
        assert row["window_5xx_ratio"] is not None and 0 <= row["window_5xx_ratio"] <= 1, row
    assert took < 15, f"status took {took:.1f}s"  # < 3 s on an idle machine; CI shares its cores
