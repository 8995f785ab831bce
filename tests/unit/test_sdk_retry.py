"""The SDK's client-side logic, without a server: retry decisions and backoff (pure, with
a fake clock and a seeded random generator), and what the client puts on the wire
(Idempotency-Key, consistency tokens, Authorization) across retries.

The HTTP peer here is an httpx.MockTransport: it stands in for the server only to script
the answers (503 with Retry-After, connection errors, ...) that drive the client's pure
retry logic. How the real services answer is tested against the running stack in
tests/e2e/test_sdk.py (a real 503 from stopping Kafka)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

import recallstack.client as sdk_client
from recallstack import (AsyncClient, Client, InvalidRequest, MemoryClient, NotFound, RateLimited, RetryPolicy,
                         SearchResult, Unavailable)
from recallstack.consistency import TokenStore, merge
from recallstack.retry import retry_after_seconds
from tests.fakes import FakeClock

TOKEN = "recallstack.memory.events/7:42"
MEMORY_ID = "3f1c2a9e-0b7d-4c41-9a77-1f0e5d2b8c10"


def response(status: int, body: dict | None = None, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def unavailable(retry_after: str | None = "2") -> httpx.Response:
    return response(503, {"error": {"code": "log_unavailable", "message": "Kafka did not acknowledge", "details": {}}},
                    retry_after)


# --- pure: the retry decision -------------------------------------------------------------------

def test_full_jitter_stays_within_the_exponential_cap():
    policy = RetryPolicy(max_attempts=100, base_delay=0.25, max_delay=8.0, total_timeout=1e9)
    rng = random.Random(7)
    for retry in range(12):
        cap = min(8.0, 0.25 * 2 ** retry)
        samples = [policy.backoff(retry, rng) for _ in range(300)]
        assert all(0.0 <= s <= cap for s in samples)
        assert max(samples) > cap * 0.8 and min(samples) < cap * 0.2  # spread over the whole range


def test_delays_without_retry_after_are_full_jitter_and_grow():
    clock, rng = FakeClock(), random.Random(1)
    state = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=4.0, total_timeout=100).start(clock=clock, rng=rng)
    expected_rng = random.Random(1)
    for retry in range(5):
        delay = state.next_delay(response(503))
        assert delay == pytest.approx(expected_rng.uniform(0, min(4.0, 0.5 * 2 ** retry)))
    assert state.next_delay(response(503)) is None  # the 6th try was the last
    assert state.gave_up == "gave up after 6 attempts"


def test_retry_after_is_a_floor_plus_jitter():
    clock = FakeClock()
    state = RetryPolicy(base_delay=0.25, total_timeout=60).start(clock=clock, rng=random.Random(3))
    for _ in range(4):
        delay = state.next_delay(unavailable("2"))
        assert 2.0 <= delay <= 2.0 + 8.0
        clock.now += delay


def test_a_retry_after_beyond_the_budget_ends_the_retries():
    clock = FakeClock()
    state = RetryPolicy(total_timeout=5).start(clock=clock, rng=random.Random(0))
    clock.now = 3.5
    assert state.next_delay(unavailable("2")) is None
    assert "beyond the remaining 1.5s" in state.gave_up


def test_the_total_budget_bounds_the_waits():
    clock = FakeClock()
    state = RetryPolicy(max_attempts=1000, base_delay=1.0, max_delay=1.0, total_timeout=10).start(
        clock=clock, rng=random.Random(0))
    tries = 0
    while (delay := state.next_delay(httpx.ConnectError("refused"))) is not None:
        tries += 1
        clock.now += delay + 0.5  # each try also takes time
    assert clock.now <= 10 + 1.5 and tries < 1000
    assert state.gave_up == "gave up after 10s"


@pytest.mark.parametrize("outcome, retried", [
    (response(429, retry_after="1"), True),
    (response(502), True),
    (response(503), True),
    (response(504), True),
    (response(409, {"error": {"code": "idempotency_in_progress", "message": "", "details": {}}}), True),
    (response(409, {"error": {"code": "something_else", "message": "", "details": {}}}), False),
    (response(400), False),
    (response(404), False),
    (response(422), False),
    (response(500), False),
    (response(202), False),
    (httpx.ConnectError("refused"), True),
    (httpx.ReadTimeout("slow"), True),
    (httpx.RemoteProtocolError("reset"), True),
    (httpx.UnsupportedProtocol("ftp://"), False),
])
def test_what_is_retried(outcome, retried):
    state = RetryPolicy().start(clock=FakeClock(), rng=random.Random(0))
    assert (state.next_delay(outcome) is not None) is retried


def test_retry_after_header_forms():
    now = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("-4") == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_no_retry_policy():
    state = RetryPolicy.none().start()
    assert state.next_delay(unavailable()) is None


# --- consistency tokens --------------------------------------------------------------------------

def test_tokens_merge_to_the_highest_offset_per_partition():
    assert merge("t/7:42", "t/7:40") == "t/7:42"
    assert merge("t/7:42", "t/7:50") == "t/7:50"
    assert merge("t/3:9,7:42", "t/7:40,8:1") == "t/3:9,7:42,8:1"
    assert merge(None, "t/7:1") == "t/7:1"
    assert merge("t/7:42", "other/7:1") == "other/7:1"      # another topic: the newer wins
    assert merge("garbage", "t/7:1") == "t/7:1"


def test_token_store_is_per_user_and_bounded():
    store = TokenStore(max_users=2)
    store.remember("a", "t/1:5")
    store.remember("b", "t/2:5")
    store.remember("a", "t/1:3")
    assert store.get("a") == "t/1:5" and store.get("b") == "t/2:5"
    store.remember("c", "t/3:1")          # "b" is the least recently written
    assert store.get("b") is None and store.get("a") == "t/1:5"


# --- the client on the wire ----------------------------------------------------------------------

class Script:
    """Answers requests in order, recording each one."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr(sdk_client, "_sleep", waited.append)

    async def fake_async_sleep(delay):
        waited.append(delay)
    monkeypatch.setattr(sdk_client, "_async_sleep", fake_async_sleep)
    return waited


def client_for(script: Script, **kwargs) -> Client:
    return Client("http://recallstack.test", transport=httpx.MockTransport(script), **kwargs)


def added(token: str = TOKEN) -> httpx.Response:
    return response(202, {"results": [{"id": MEMORY_ID, "memory": "m", "event": "ADD", "status": "processing"}],
                          "consistency_token": token})


def test_a_retried_add_sends_the_same_key_and_bytes_and_honours_retry_after(sleeps):
    script = Script(unavailable("2"), httpx.ConnectError("reset"), added())
    with client_for(script) as client:
        result = client.add("Alice prefers dark mode", user_id="alice", metadata={"k": 1})
    assert result.ids == [MEMORY_ID] and result["results"][0]["event"] == "ADD"
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    bodies = {r.content for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1 and len(bodies) == 1
    assert json.loads(bodies.pop()) == {"user_id": "alice", "text": "Alice prefers dark mode", "metadata": {"k": 1}}
    assert len(sleeps) == 2 and sleeps[0] >= 2.0  # Retry-After: 2 was honoured


def test_each_add_gets_its_own_key_unless_given(sleeps):
    script = Script(added())
    with client_for(script) as client:
        client.add("a", user_id="alice")
        client.add("b", user_id="alice")
        client.add("c", user_id="alice", idempotency_key="my-key")
    keys = [r.headers["Idempotency-Key"] for r in script.requests]
    assert len(set(keys)) == 3 and keys[2] == "my-key"


def test_each_call_sends_one_request_id_kept_across_retries_and_named_in_errors(sleeps):
    script = Script(unavailable("0"))
    with client_for(script, retry=RetryPolicy(max_attempts=3, base_delay=0.01)) as client:
        with pytest.raises(Unavailable) as caught:
            client.add("x", user_id="alice")
        with pytest.raises(Unavailable) as again:
            client.add("y", user_id="alice")
    ids = [r.headers["X-Request-ID"] for r in script.requests]
    assert len(ids) == 6 and len(set(ids[:3])) == 1 and len(set(ids[3:])) == 1 and ids[0] != ids[3]
    assert caught.value.request_id == ids[0] and f"request {ids[0]}" in str(caught.value)
    assert again.value.request_id == ids[3]
    # The server's echo wins (a proxy may have set one); a caller's own id is sent as is.
    echoed = httpx.Response(404, json={"error": {"code": "not_found", "message": "memory not found", "details": {}}},
                            headers={"X-Request-ID": "from-the-server"})
    script = Script(echoed)
    with client_for(script, headers={"x-request-id": "mine"}) as client:
        with pytest.raises(NotFound) as missing:
            client.get(MEMORY_ID, user_id="alice")
    assert script.requests[0].headers["X-Request-ID"] == "mine" and missing.value.request_id == "from-the-server"
    script = Script(httpx.ConnectError("refused"))
    with client_for(script, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(Unavailable) as unreachable:
            client.search("q", user_id="alice")
    assert unreachable.value.request_id == script.requests[0].headers["X-Request-ID"]


def test_the_budget_ends_in_unavailable_with_the_servers_message(sleeps):
    script = Script(unavailable("0"))
    with client_for(script, retry=RetryPolicy(max_attempts=3, base_delay=0.01)) as client:
        with pytest.raises(Unavailable) as caught:
            client.add("x", user_id="alice")
    error = caught.value
    assert error.status == 503 and error.code == "log_unavailable" and error.attempts == 3
    assert "Kafka did not acknowledge" in str(error) and "gave up after 3 attempts" in str(error)
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_an_unreachable_server_is_unavailable_without_status(sleeps):
    script = Script(httpx.ConnectError("connection refused"))
    with client_for(script, retry=RetryPolicy(max_attempts=4)) as client:
        with pytest.raises(Unavailable) as caught:
            client.search("q", user_id="alice")
    assert caught.value.status is None and caught.value.attempts == 4
    assert "could not reach recallstack at http://recallstack.test" in str(caught.value)


def test_429_after_the_budget_is_rate_limited(sleeps):
    script = Script(response(429, {"error": {"code": "rate_limited", "message": "slow down", "details": {}}}, "0"))
    with client_for(script, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(RateLimited):
            client.get_all(user_id="alice")


def test_client_errors_are_not_retried_and_keep_the_details(sleeps):
    invalid = response(422, {"error": {"code": "invalid_request", "message": "user_id: String should match pattern",
                                       "details": {"errors": [{"field": "user_id"}]}}})
    script = Script(invalid)
    with client_for(script) as client:
        with pytest.raises(InvalidRequest) as caught:
            client.add("x", user_id="alice")  # the server's 422 (the SDK refuses a bad id itself: test_sdk_ids.py)
    assert caught.value.status == 422 and caught.value.details["errors"][0]["field"] == "user_id"
    assert isinstance(caught.value, ValueError) and len(script.requests) == 1 and sleeps == []
    script = Script(response(404, {"error": {"code": "not_found", "message": "memory not found", "details": {}}}))
    with client_for(script) as client:
        with pytest.raises(NotFound):
            client.get(MEMORY_ID, user_id="alice")
    assert len(script.requests) == 1


def test_reads_carry_the_users_latest_write_token(sleeps):
    found = response(200, {"results": [], "degraded": []})
    script = Script(added("recallstack.memory.events/7:42"), found, found, response(200, {"id": MEMORY_ID}),
                    added("recallstack.memory.events/7:43"), found)
    with client_for(script) as client:
        client.add("x", user_id="alice")
        client.search("q", user_id="alice")
        client.search("q", user_id="bob")                       # another user: no token
        client.get(MEMORY_ID, user_id="alice")
        client.update(MEMORY_ID, "y", user_id="alice")          # the update waits for the add
        client.get_context("q", user_id="alice")
    search_alice, search_bob, get, update, context = script.requests[1:]
    assert json.loads(search_alice.content)["consistency_token"] == "recallstack.memory.events/7:42"
    assert "consistency_token" not in json.loads(search_bob.content)
    assert get.url.params["consistency_token"] == "recallstack.memory.events/7:42"
    assert update.headers["X-Consistency-Token"] == "recallstack.memory.events/7:42"
    assert json.loads(context.content)["consistency_token"] == "recallstack.memory.events/7:43"


def test_eventual_consistency_passes_no_token(sleeps):
    script = Script(added(), response(200, {"results": []}))
    with client_for(script, consistency="eventual") as client:
        client.add("x", user_id="alice")
        client.search("q", user_id="alice")
    assert "consistency_token" not in json.loads(script.requests[1].content)


def test_api_key_is_a_bearer_token_and_with_options_shares_tokens(sleeps, monkeypatch):
    monkeypatch.setenv("RECALLSTACK_API_KEY", "from-env")
    script = Script(added(), response(200, {"results": []}))
    with client_for(script) as client:
        client.add("x", user_id="alice")
        client.with_options(api_key="per-request").search("q", user_id="alice")
    assert script.requests[0].headers["Authorization"] == "Bearer from-env"
    assert script.requests[1].headers["Authorization"] == "Bearer per-request"
    assert json.loads(script.requests[1].content)["consistency_token"] == TOKEN


def test_mem0_arguments(sleeps, monkeypatch):
    monkeypatch.delenv("RECALLSTACK_API_KEY", raising=False)  # with a key, a missing user_id means the key's user
    script = Script(response(200, {"results": [{"id": MEMORY_ID, "memory": "m", "created_at": "2024-06-01T10:00:00Z",
                                                "score": 0.5}]}))
    with MemoryClient("http://recallstack.test", transport=httpx.MockTransport(script)) as client:
        result = client.search("q", filters={"AND": [{"user_id": "alice"}, {"categories": {"contains": "x"}}]},
                               top_k=3, version="v2")
        with pytest.raises(TypeError, match="unexpected keyword argument 'rerank_with'"):
            client.search("q", user_id="alice", rerank_with="x")
        with pytest.raises(InvalidRequest, match="user_id is required"):
            client.search("q")
        with pytest.raises(InvalidRequest, match="differs"):
            client.search("q", user_id="bob", filters={"user_id": "alice"})
    body = json.loads(script.requests[0].content)
    assert body == {"query": "q", "user_id": "alice", "limit": 3,
                    "filters": {"AND": [{"categories": {"contains": "x"}}]}}
    # The result is mem0's dict and a typed object at once.
    assert isinstance(result, SearchResult) and isinstance(result, dict)
    assert result["results"][0]["memory"] == "m" and result.results[0].score == 0.5
    assert result.results[0].created_at == datetime(2024, 6, 1, 10, tzinfo=timezone.utc)
    assert json.loads(json.dumps(result))["results"][0]["created_at"] == "2024-06-01T10:00:00Z"


def test_the_async_client_retries_the_same_way(sleeps):
    script = Script(unavailable("1"), added())

    async def run():
        async with AsyncClient("http://recallstack.test", transport=httpx.MockTransport(script)) as client:
            result = await client.add("x", user_id="alice")
            await client.search("q", user_id="alice")
            return result
    script.answers.append(response(200, {"results": []}))
    result = asyncio.run(run())
    assert result.consistency_token == TOKEN and sleeps and sleeps[0] >= 1.0
    assert script.requests[0].headers["Idempotency-Key"] == script.requests[1].headers["Idempotency-Key"]
    assert json.loads(script.requests[2].content)["consistency_token"] == TOKEN
