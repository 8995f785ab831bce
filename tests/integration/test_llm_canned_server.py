"""The LLM path (adapters/llm.py, consolidation/llm.py) against a canned OpenAI-compatible server.

The stdlib server below stands in for the chat endpoint (OpenAI, Ollama, vLLM...): it
answers POST /v1/chat/completions in the OpenAI response shape with scripted answers, so
the real `openai` client, its HTTP stack, our retries and the circuit breaker are all
exercised; nothing is mocked. No Kafka or Postgres needed.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from adapters.llm import LlmClient, LlmError, LlmUnavailable, extract_json_object
from consolidation.llm import LlmExtractor, LlmReconciler, LlmSummarizer, llm_intelligence
from consolidation.prompts import fill, load_prompt, versions
from domain.circuit_breaker import CircuitBreaker
from domain.events import ChatMessage, Entity, Relation
from domain.intelligence import Candidate, Fact
from tests.fakes import FakeClock

MODEL = "canned-model"


class CannedChatServer:
    """Answers each request with the next scripted reply; the last one repeats. A reply is the
    message content (str) or a dict: {"content", "delay" (s), "status" + "error", "reject_param"}."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list = ['{"summary": "ok"}']
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                reply = server.replies[0] if len(server.replies) == 1 else server.replies.pop(0)
                reply = {"content": reply} if isinstance(reply, str) else reply
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                if reply.get("delay") and server.stopping.wait(reply["delay"]):
                    return
                if reply.get("reject_param") in body:
                    return self._send(400, {"error": {"message": f"'{reply['reject_param']}' is not supported",
                                                      "type": "invalid_request_error"}})
                if reply.get("status"):
                    return self._send(reply["status"], {"error": {"message": reply.get("error", "boom"),
                                                                  "type": "server_error"}})
                self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply["content"]}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                })

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()  # a handler sleeping out a timeout test returns at once
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = CannedChatServer()
    yield s
    s.close()


@pytest.fixture
async def make_client(server):
    clients = []

    def make(**kwargs) -> LlmClient:
        kwargs = {"api_key": "test-key", "timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01} | kwargs
        client = LlmClient(server.base_url, MODEL, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def counter(outcome: str) -> float:
    return REGISTRY.get_sample_value("recallstack_llm_requests_total", {"outcome": outcome}) or 0.0


EXTRACTION = {"facts": [
    {"text": "The user works at Acme Corp", "message_indexes": [0, 0, 9],
     "entities": [{"name": "user", "type": "Person"}, {"name": "Acme Corp", "type": "organization"},
                  {"name": "acme corp", "type": "organization"}],
     "relations": [{"source": "user", "type": "works_at", "target": "Acme Corp"}],
     "importance": 0.8, "categories": ["Work", "work"]},
    {"text": "The user prefers tabs over spaces", "message_indexes": [2], "categories": ["preference"]},
    {"text": "the user  works at Acme Corp", "message_indexes": [0]},  # a repeat, kept once
]}


async def test_extraction_against_canned_server(server, make_client):
    server.replies = ["Here you go:\n```json\n" + json.dumps(EXTRACTION) + "\n```"]
    extractor = LlmExtractor(make_client())
    messages = [ChatMessage("user", "Hi! I work at Acme Corp."), ChatMessage("assistant", "Nice."),
                ChatMessage("user", "Tabs, never spaces.")]
    facts = await extractor.extract(messages)

    assert extractor.name == f"llm:{MODEL}" and extractor.prompt_version == "v1"
    assert facts == [
        Fact("The user works at Acme Corp", (0,), (Entity("user", "person"), Entity("Acme Corp", "organization")),
             (Relation("user", "works_at", "Acme Corp"),), 0.8, ("work",)),
        Fact("The user prefers tabs over spaces", (2,), categories=("preference",)),
    ]
    (request,) = server.requests
    assert request["model"] == MODEL and request["response_format"] == {"type": "json_object"}
    system, user = request["messages"]
    assert system["role"] == "system" and "JSON only" in system["content"]
    assert system["content"].startswith(load_prompt("extract_facts").system)
    assert "[0] user: Hi! I work at Acme Corp.\n[1] assistant: Nice.\n[2] user: Tabs, never spaces." in user["content"]


async def test_extraction_of_an_empty_conversation_sends_no_canned_request(server, make_client):
    assert await LlmExtractor(make_client()).extract([ChatMessage("user", "  ")]) == []
    assert server.requests == []


A, B, C, D = (f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 5))


async def test_reconcile_against_canned_server(server, make_client):
    facts = [Fact(f"fact {i}") for i in range(5)]
    candidates = [
        [Candidate(A, "The user lives in Berlin", 0.82)],
        [Candidate(B, "The user loves coffee", 0.78), Candidate(A, "The user lives in Berlin", 0.10)],
        [Candidate(C, "The user uses Vim", 0.95)],
        [],  # no candidates: ADD without asking
        [Candidate(D, "The user has a cat", 0.80)],  # the model forgets this one
    ]
    server.replies = [json.dumps({"decisions": [
        {"fact_index": 0, "action": "UPDATE", "memory_id": "m1", "text": "The user lives in Paris", "reason": "moved"},
        {"fact_index": 1, "action": "delete", "memory_id": B, "text": "ignored", "reason": "no longer"},
        {"fact_index": 2, "action": "NONE", "memory_id": "m99", "text": None, "reason": "known"},
        {"fact_index": 7, "action": "ADD", "memory_id": None, "text": None, "reason": "out of range"},
        {"fact_index": 0, "action": "DELETE", "memory_id": "m1", "text": None, "reason": "second, ignored"},
    ]})]
    reconciler = LlmReconciler(make_client())
    decisions = await reconciler.decide(facts, candidates)

    assert [(d.action, d.fact.text, d.memory_id, d.text) for d in decisions] == [
        ("UPDATE", "fact 0", A, "The user lives in Paris"),
        ("DELETE", "fact 1", B, None),
        ("ADD", "fact 2", None, None),
        ("ADD", "fact 3", None, None),
        ("ADD", "fact 4", None, None),
    ]
    assert decisions[0].reason == "moved"
    assert "'m99', which is not among this fact's candidates" in decisions[2].reason
    assert decisions[3].reason == "no similar memory"
    assert decisions[4].reason == "no decision from the model"
    assert reconciler.prompt_version == "v1"
    prompt = server.requests[0]["messages"][1]["content"]
    assert "Fact 0: fact 0\ncandidates:\n- id: m1 | similarity: 0.82 | The user lives in Berlin" in prompt
    assert "Fact 3" not in prompt and A not in prompt  # short aliases instead of UUIDs


async def test_reconcile_without_candidates_sends_no_canned_request(server, make_client):
    decisions = await LlmReconciler(make_client()).decide([Fact("a"), Fact("b")], [[], []])
    assert [d.action for d in decisions] == ["ADD", "ADD"] and server.requests == []


async def test_summary_against_canned_server(server, make_client):
    server.replies = ['<think>merge them</think>Sure! {"summary": "  The user uses Vim and tmux.  "} Hope it helps.']
    summarizer = LlmSummarizer(make_client())
    assert await summarizer.summarize(["The user uses Vim", "The user uses tmux"]) == "The user uses Vim and tmux."
    assert "1. The user uses Vim\n2. The user uses tmux" in server.requests[0]["messages"][1]["content"]
    assert await summarizer.summarize(["only one"]) == "only one"
    assert len(server.requests) == 1  # one text needs no merging


async def test_canned_malformed_json_then_valid_on_retry(server, make_client):
    server.replies = ["Sure, the summary is: they like Vim", '{"summary": "The user likes Vim."}']
    ok_before = counter("ok")
    assert await LlmSummarizer(make_client()).summarize(["a", "b"]) == "The user likes Vim."
    assert len(server.requests) == 2
    retry = server.requests[1]["messages"]
    assert retry[2] == {"role": "assistant", "content": "Sure, the summary is: they like Vim"}
    assert "rejected: the answer contains no JSON object" in retry[3]["content"]
    assert counter("ok") == ok_before + 1


async def test_canned_always_malformed_raises_llm_error(server, make_client):
    server.replies = ['{"summary": "cut off']
    client = make_client(max_retries=2)
    with pytest.raises(LlmError) as info:
        await LlmSummarizer(client).summarize(["a", "b"])
    assert info.value.kind == "malformed_json"
    assert "not valid JSON" in str(info.value) and "after 3 attempts" in str(info.value)
    assert MODEL in str(info.value) and len(server.requests) == 3
    assert client.breaker.consecutive_failures == 3  # each failed request counts


async def test_canned_schema_violation_raises_llm_error(server, make_client):
    server.replies = [json.dumps({"decisions": [{"fact_index": 0, "action": "MERGE", "memory_id": "m1",
                                                 "reason": "merge them"}]})]
    with pytest.raises(LlmError) as info:
        await LlmReconciler(make_client(max_retries=1)).decide([Fact("a")], [[Candidate(A, "b", 0.9)]])
    assert info.value.kind == "schema_violation"
    assert "does not match ReconcileAnswer" in str(info.value)
    assert "decisions.0.action" in str(info.value) and "'MERGE'" in str(info.value)
    assert len(server.requests) == 2


async def test_canned_timeout_raises_llm_error_quickly(server, make_client):
    server.replies = [{"delay": 10, "content": '{"summary": "too late"}'}]
    client = make_client(timeout_s=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LlmError) as info:
        await LlmSummarizer(client).summarize(["a", "b"])
    assert time.monotonic() - started < 2
    assert info.value.kind == "timeout" and "no answer within 0.3 s" in str(info.value)
    assert client.breaker.consecutive_failures == 1


async def test_canned_client_error_is_not_retried(server, make_client):
    server.replies = [{"status": 401, "error": "invalid api key"}]
    with pytest.raises(LlmError) as info:
        await LlmSummarizer(make_client(max_retries=3)).summarize(["a", "b"])
    assert info.value.kind == "http_error" and "HTTP 401" in str(info.value)
    assert len(server.requests) == 1


async def test_canned_server_error_is_retried(server, make_client):
    server.replies = [{"status": 503, "error": "loading model"}, '{"summary": "fine"}']
    assert await LlmSummarizer(make_client(max_retries=1)).summarize(["a", "b"]) == "fine"
    assert len(server.requests) == 2


async def test_canned_server_rejecting_response_format_gets_requests_without_it(server, make_client):
    server.replies = [{"reject_param": "response_format"}, '{"summary": "fine"}']
    client = make_client(max_retries=0)
    summarizer = LlmSummarizer(client)
    assert await summarizer.summarize(["a", "b"]) == "fine"
    assert await summarizer.summarize(["c", "d"]) == "fine"
    assert ["response_format" in r for r in server.requests] == [True, False, False]
    assert client.breaker.state == "closed" and client.breaker.consecutive_failures == 0


async def test_canned_circuit_opens_and_refuses_without_a_request(server, make_client):
    server.replies = [{"status": 500, "error": "down"}]
    clock = FakeClock()
    client = make_client(max_retries=0, breaker=CircuitBreaker("llm", failure_threshold=3, reset_after_s=30,
                                                               clock=clock))
    summarizer = LlmSummarizer(client)
    for _ in range(3):
        with pytest.raises(LlmError) as info:
            await summarizer.summarize(["a", "b"])
        assert not isinstance(info.value, LlmUnavailable)
    refused_before = counter("circuit_open")
    clock.now += 10
    with pytest.raises(LlmUnavailable) as info:
        await summarizer.summarize(["a", "b"])
    assert info.value.retry_after_s == pytest.approx(20)
    assert "unavailable" in str(info.value)
    assert len(server.requests) == 3  # refused without a request
    assert counter("circuit_open") == refused_before + 1

    clock.now += 20  # cool-down over: one trial goes through and, answered, closes the circuit
    server.replies = ['{"summary": "back"}']
    assert await summarizer.summarize(["a", "b"]) == "back"
    assert client.breaker.state == "closed" and len(server.requests) == 4


async def test_canned_half_open_trial_failure_reopens(server, make_client):
    server.replies = [{"status": 500, "error": "down"}]
    clock = FakeClock()
    client = make_client(max_retries=2, breaker=CircuitBreaker("llm", failure_threshold=1, reset_after_s=30,
                                                               clock=clock))
    with pytest.raises(LlmUnavailable, match=r"last: HTTP 500"):  # the first failure opens it, the retry is refused
        await LlmSummarizer(client).summarize(["a", "b"])
    clock.now += 30
    with pytest.raises(LlmUnavailable):  # the trial fails, the retry is refused again
        await LlmSummarizer(client).summarize(["a", "b"])
    assert len(server.requests) == 2 and client.breaker.state == "open"


async def test_canned_intelligence_bundle_notes_model_and_prompt_versions(make_client):
    brain = llm_intelligence(make_client())
    assert brain.notes["llm"].startswith(f"{MODEL} at http://127.0.0.1:")
    assert brain.notes["prompt_versions"] == {"extract_facts": "v1", "reconcile": "v1", "summarize": "v1"}
    assert brain.extractor.client is brain.reconciler.client is brain.summarizer.client


def test_prompt_files_of_the_canned_tests_load_and_fill_safely():
    for name, placeholder in (("extract_facts", "messages"), ("reconcile", "facts"), ("summarize", "memories")):
        assert versions(name)[0] == "v1"
        system, user, version = load_prompt(name)
        assert version == versions(name)[-1] and load_prompt(name, 1).version == "v1"
        assert "<!--" not in system and "{" + placeholder + "}" in user
        filled = fill(user, **{placeholder: 'a {messages} {"x": 1}'})
        assert 'a {messages} {"x": 1}' in filled  # one pass: filled-in braces stay as written
    with pytest.raises(KeyError, match="summary"):
        fill("{summary}")
    with pytest.raises(FileNotFoundError, match="v9"):
        load_prompt("summarize", "v9")


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('Sure:\n```\n{"a": {"b": [1, 2]}}\n```\nDone.', {"a": {"b": [1, 2]}}),
    ('<think>{"no": 1}</think>\n{"a": 1} trailing', {"a": 1}),
])
def test_json_object_extraction_for_canned_answers(text, expected):
    assert extract_json_object(text) == expected


@pytest.mark.parametrize("text, problem", [
    ("", "empty"), ("no json here", "no JSON object"), ("[1, 2]", "JSON array"), ('{"a": ', "not valid JSON"),
])
def test_json_object_extraction_rejects_bad_canned_answers(text, problem):
    with pytest.raises(ValueError, match=problem):
        extract_json_object(text)
