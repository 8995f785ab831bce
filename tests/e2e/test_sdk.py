"""The Python SDK (recallstack.Client / AsyncClient) against the running stack: every
method, read-your-writes without handling tokens, errors, and retries through a real
Kafka outage (the command API's real 503s)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from recallstack import (AsyncClient, Client, Context, HistoryEntry, InvalidRequest, Memory, MemoryPage, NotFound,
                         RetryPolicy, SearchResult, Unavailable, WriteResult)

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(services):
    with Client(services.gateway_url) as c:
        yield c


def test_every_method(client, user_id):
    added = client.add("Alice prefers dark mode in the editor", user_id=user_id, agent_id="cursor",
                       metadata={"topic": "ui"}, categories=["preferences"],
                       occurred_at=datetime(2024, 6, 3, 9, 30, tzinfo=timezone.utc))
    assert isinstance(added, WriteResult) and added.consistency_token
    [memory_id] = added.ids
    assert added["results"][0]["event"] == "ADD"
    client.add([{"role": "user", "content": "I deploy with make release"},
                {"role": "assistant", "content": "Noted: you deploy with make release"}], user_id=user_id,
               run_id="session-1", infer=False)

    found = client.search("which theme does Alice like?", user_id=user_id, limit=5)
    assert isinstance(found, SearchResult)
    assert found.results[0].id == memory_id and found["results"][0]["memory"] == "Alice prefers dark mode in the editor"
    assert isinstance(found.results[0], Memory) and found.results[0].score > 0

    got = client.get(memory_id, user_id=user_id)
    assert got.memory == "Alice prefers dark mode in the editor" and got.agent_id == "cursor"
    assert got.categories == ["preferences"] and got.metadata == {"topic": "ui"}
    assert got.occurred_at == datetime(2024, 6, 3, 9, 30, tzinfo=timezone.utc)

    page = client.get_all(user_id=user_id, page_size=2)
    assert isinstance(page, MemoryPage) and page.total == 3 and len(page.results) == 2 and page.has_more
    assert client.get_all(user_id=user_id, page=2, page_size=2).results[0].id not in {m.id for m in page.results}
    session = client.get_all(user_id=user_id, run_id="session-1")
    assert sorted(m.metadata["role"] for m in session.results) == ["assistant", "user"]
    ui = client.get_all(user_id=user_id, filters={"metadata": {"topic": "ui"}})
    assert [m.id for m in ui.results] == [memory_id]

    updated = client.update(memory_id, "Alice prefers light mode now", user_id=user_id, metadata={"topic": "theme"})
    assert updated.results[0].event == "UPDATE"
    assert client.get(memory_id, user_id=user_id).memory == "Alice prefers light mode now"

    history = client.history(memory_id, user_id=user_id)
    assert [type(h) for h in history] == [HistoryEntry, HistoryEntry]
    assert [h.event for h in history] == ["MemoryCreated", "MemoryUpdated"]
    assert history[1].old_memory == "Alice prefers dark mode in the editor"
    assert history[1].new_memory == "Alice prefers light mode now"

    context = client.get_context("what theme does Alice use?", user_id=user_id, max_tokens=200)
    assert isinstance(context, Context) and "Alice prefers light mode now" in str(context)
    assert 0 < context.tokens <= 200 and memory_id in [m.id for m in context.memories]

    deleted = client.delete(memory_id, user_id=user_id)
    assert deleted.results[0].event == "DELETE"
    with pytest.raises(NotFound):
        client.get(memory_id, user_id=user_id)
    assert memory_id not in [m.id for m in client.search("theme", user_id=user_id).results]

    cleared = client.delete_all(user_id=user_id, run_id="session-1")
    assert cleared.event == "DELETE_ALL" and cleared.scope == {"user_id": user_id, "run_id": "session-1"}
    assert client.get_all(user_id=user_id).total == 0


async def test_every_method_async(services, user_id):
    async with AsyncClient(services.gateway_url) as client:
        added = await client.add("Bob's laptop runs Debian 12", user_id=user_id)
        [memory_id] = added.ids
        assert (await client.search("what OS does Bob use?", user_id=user_id)).results[0].id == memory_id
        assert (await client.get(memory_id, user_id=user_id)).memory == "Bob's laptop runs Debian 12"
        assert (await client.get_all(user_id=user_id)).total == 1
        await client.update(memory_id, "Bob's laptop runs Debian 13", user_id=user_id)
        assert [h.event for h in await client.history(memory_id, user_id=user_id)] == ["MemoryCreated",
                                                                                       "MemoryUpdated"]
        assert "Debian 13" in (await client.get_context("Bob's OS", user_id=user_id)).context
        await client.delete(memory_id, user_id=user_id)
        with pytest.raises(NotFound):
            await client.get(memory_id, user_id=user_id)
        await client.add("another", user_id=user_id)
        await client.delete_all(user_id=user_id)
        assert (await client.get_all(user_id=user_id)).total == 0


def test_reads_see_the_clients_own_writes_without_passing_tokens(client, user_id):
    for i in range(5):
        fact = f"Project {uuid.uuid4().hex[:8]} ships on day {i}"
        [memory_id] = client.add(fact, user_id=user_id).ids
        # Immediately after each write, every kind of read already sees it.
        assert memory_id in [m.id for m in client.search(fact, user_id=user_id, limit=10).results]
        assert client.get(memory_id, user_id=user_id).memory == fact
        assert memory_id in [m.id for m in client.get_all(user_id=user_id, page_size=1000).results]
        client.update(memory_id, fact + " (confirmed)", user_id=user_id)  # the update sees the add
        assert client.get(memory_id, user_id=user_id).memory == fact + " (confirmed)"
    assert client.latest_token(user_id).startswith("recallstack.memory.events/")


def test_errors_say_what_is_wrong(client, user_id):
    with pytest.raises(InvalidRequest) as bad_id:
        client.add("x", user_id="not a valid id")
    # Refused by the SDK itself, before any request (tests/unit/test_sdk_ids.py); the server's 422 below.
    assert bad_id.value.status is None and bad_id.value.details == {"field": "user_id"} and "user_id" in str(bad_id.value)
    with pytest.raises(InvalidRequest) as bad_filter:
        client.search("x", user_id=user_id, filters={"AND": [{"metadata": {"topic": {"gt": {"no": 1}}}}]})
    assert bad_filter.value.status == 422 and "filters" in bad_filter.value.message
    with pytest.raises(NotFound) as missing:
        client.get(str(uuid.uuid4()), user_id=user_id)
    assert missing.value.status == 404 and missing.value.code == "not_found"
    # The server's log and answer carry the id the SDK sent: a reported failure can be found.
    assert missing.value.request_id and len(missing.value.request_id) == 32
    with pytest.raises(NotFound):
        client.update(str(uuid.uuid4()), "x", user_id=user_id)


class CountingTransport(httpx.HTTPTransport):
    """The real HTTP transport, counting the requests it sends."""

    def __init__(self):
        super().__init__()
        self.sent = 0

    def handle_request(self, request):
        self.sent += 1
        return super().handle_request(request)


def test_writes_retry_through_a_real_kafka_outage(services, settings, user_id):
    """Kafka stopped: the command API answers 503 with Retry-After. A client with a small
    budget raises Unavailable; one with a larger budget keeps retrying (same Idempotency-Key)
    and succeeds once Kafka is back, and the memory exists exactly once."""
    from infra import stack

    processes = stack.table(settings)
    kafka = stack.infra_specs(settings, ("kafka",))
    restarter: threading.Thread | None = None
    stack.down(kafka, processes)
    try:
        short = RetryPolicy(max_attempts=3, base_delay=0.1, total_timeout=5)
        with Client(services.gateway_url, retry=short) as impatient:
            began = time.monotonic()
            with pytest.raises(Unavailable) as caught:
                impatient.add("written while Kafka is down", user_id=user_id)
        assert caught.value.status == 503 and caught.value.code == "log_unavailable"
        assert caught.value.attempts >= 2 and caught.value.retry_after == 2
        assert time.monotonic() - began < 20

        restarter = threading.Thread(target=lambda: (time.sleep(3), stack.up(kafka, processes)))
        restarter.start()
        transport = CountingTransport()
        patient = RetryPolicy(max_attempts=200, base_delay=0.2, max_delay=2.0, total_timeout=240)
        with Client(services.gateway_url, retry=patient, transport=transport) as client:
            result = client.add("written across a Kafka restart", user_id=user_id)
            assert transport.sent > 1, "the first try should have met the outage"
            [memory_id] = result.ids
            found = client.search("written across a Kafka restart", user_id=user_id)
            assert [m.id for m in found.results if m.memory == "written across a Kafka restart"] == [memory_id]
            assert client.get_all(user_id=user_id).total == 1  # the failed tries stored nothing
    finally:
        if restarter is not None:
            restarter.join(timeout=300)
        stack.up(kafka, processes)  # idempotent: a no-op when the thread already restarted it


def test_the_langchain_style_example_runs_without_an_llm(services, user_id):
    """docs/examples/langchain_style.py: a chat loop that stores user turns and fetches
    context before each reply (a canned reply function stands in for the model)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "RECALLSTACK_URL": services.gateway_url}
    run = subprocess.run([sys.executable, str(REPO / "docs" / "examples" / "langchain_style.py"), user_id],
                         capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert run.returncode == 0, run.stderr
    replies = [line.removeprefix("assistant: ") for line in run.stdout.splitlines() if line.startswith("assistant:")]
    assert replies[:2] == ["Noted.", "Noted."]
    assert replies[2].startswith("From memory: My favourite programming language is Rust.")
    assert "I live in Lisbon" in replies[3]
    with Client(services.gateway_url) as client:
        assert client.get_all(user_id=user_id).total == 0  # the example cleans up after itself
