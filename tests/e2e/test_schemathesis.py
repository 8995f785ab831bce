"""Property-based API tests (issue 8): schemathesis fuzzes every operation of both OpenAPI
specs, as served by the running command and query APIs, authenticated with the session's
admin key.

Every answer must: be no 5xx; have a status the spec documents for the operation; have the
content type, body and headers it documents for that status (errors: the Error schema);
and an operation that declares authentication must refuse a request without a key or
with an invalid one (`ignored_auth`, probed once per operation). Positive cases (valid by
the schema) and negative ones (invalid by it) are generated for every operation, a
bounded number each.

Then hostile cases (issue 19): a positive case with one value replaced by what a buggy or
hostile client sends and a JSON schema cannot express: NaN, Infinity, 1e400, integers of
400 digits (spliced into the raw body: JSON cannot encode them), NUL and lone surrogates,
nesting 60 deep, dates past the calendar, time phrases past it, consistency tokens that
cannot exist, non-ASCII header bytes. Their check is "no 5xx" (and the Error shape for what
they get instead); whatever the command API accepts of them must still be held by every
read model (the dead-letter check below covers them too).

Random valid data rarely reaches a handler's work: a random memory id is not found, and a
random add body breaks the rules no JSON schema states (exactly one of text or messages).
So half of the positive cases are aimed (`Target.aim`): at memories that exist, of a user
made for the test, with the rules met; the rest stay as generated.

Writes are real (the log, the read models) and act on random users and ids, or on the
test's own user. The operations that could touch a user other tests rely on (the
session's admin user `admin`) are fenced (`_fence`). A write the API accepted must also
be one the read models can hold: once the projectors applied the fuzzed writes, none of
them may have been dead-lettered.

Schemathesis is driven through its strategies (`APIOperation.as_strategy`) rather than its
pytest plugin: `schemathesis.pytest.from_fixture` (the specs come from the running
services, so a fixture) does not work with pytest 9.2 (it sets `Function._nodeid`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
import zlib
from dataclasses import dataclass

import httpx
import pytest
import requests
import schemathesis
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (content_type_conformance, ignored_auth, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from domain.identifiers import ID_PATTERN
from infra.stack import PROJECTOR_METRICS_PORTS
from projectors import dead_letters
from projectors.lag import group_of
from settings import EVENTS_TOPIC
from tests.e2e.conftest import admin_headers
from tests.e2e.log_reader import end_offsets

pytestmark = pytest.mark.e2e

# Not negative_data_rejection: a negative case may only change the Authorization header, which the
# explicit admin key then replaces, and a repeated scalar query parameter (user_id=a&user_id=b) is
# taken as its last value (Starlette), not refused; either would be reported as invalid data accepted.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, ignored_auth]
# Ops endpoints outside /v1: /metrics is Prometheus text, /healthz and /readyz answer the probes;
# fuzzing them tests nothing of the API. Every /v1 operation is fuzzed.
OPS = r"^/(metrics|healthz|readyz)$"
# Per operation and mode: bounded so both specs (about 30 operations, positive and negative) run in
# a few minutes on a 2-core machine. No shrinking: schemathesis reports the failing request as a
# curl command already.
FUZZ = settings(max_examples=int(os.environ.get("RECALLSTACK_FUZZ_EXAMPLES", "25")), deadline=None,
                database=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
HOSTILE = settings(FUZZ, max_examples=int(os.environ.get("RECALLSTACK_FUZZ_HOSTILE_EXAMPLES", "20")))
HOSTILE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
PROJECTIONS = tuple(PROJECTOR_METRICS_PORTS)  # postgres, redis, neo4j
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")


def _schema(url: str):
    return schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=30).exclude(path_regex=OPS)


def fuzz(schema, prepare) -> tuple[list[str], list[str]]:
    """Fuzz every operation of `schema`, positive then negative cases, with the admin key;
    `prepare(case, mode)` may change a case before it is sent. Returns the operations tried
    and one problem (the failing request, as curl) per operation and mode that failed a check."""
    tried, problems = [], []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            problems.append(f"the spec has an unusable operation: {result.err()}")
            continue
        operation = result.ok()
        tried.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                prepare(case, mode)
                case.call_and_validate(headers=admin_headers(), checks=CHECKS, timeout=60)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # failed checks (a FailureGroup), or a failed request
                problems.append(f"{operation.label} ({mode.value} cases): {type(exc).__name__}: {exc}")
        problems += _hostile(operation, prepare)
    return tried, problems


# --- hostile values -------------------------------------------------------------------------

TOPIC_TOKEN = EVENTS_TOPIC + "/{}"
# Raw JSON literals: where one replaces a value of a body, the body is sent as text.
HOSTILE_JSON = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 400, "-" + "9" * 400, "1e308", "-0.0", "1e-400",
    str(2 ** 64 + 1), "4.9e-324", '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"x\\udfff"', '"\\uffff"',
    "[" * 60 + "]" * 60, '{"a": ' * 60 + "1" + "}" * 60,
    '"0001-01-01T00:00:00+14:00"', '"9999-12-31T23:59:59-14:00"', '"0000-01-01"', '"10000-01-01T00:00:00Z"',
    '"2024-02-30"', '"what happened in December 9999"', '"99999999999 days ago"', '"100000 years ago"',
    json.dumps(TOPIC_TOKEN.format("12:0")), json.dumps(TOPIC_TOKEN.format("0:999999999999")),
    json.dumps(TOPIC_TOKEN.format("0:99999999999999999999999")), '"recallstack.dlq/0:1"',
    '{"AND": [' * 40 + '{"agent_id": "a"}' + "]}" * 40,
]
# Values for a query string parameter or a header (text: what a URL or a header can carry).
HOSTILE_TEXT = [
    "NaN", "Infinity", "1e400", "9" * 400, "-1", "\x00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    TOPIC_TOKEN.format("12:0"), TOPIC_TOKEN.format("0:999999999999"), TOPIC_TOKEN.format("0:" + "9" * 30),
    TOPIC_TOKEN.format("0:-1"), "recallstack.dlq/0:1", "%%%", "[" * 5_000 + "]" * 5_000,
    '{"importance": {"gt": NaN}}', '{"metadata": {"n": ' + "9" * 5_000 + "}}", '{"created_at": {"gt": "0000-01-01"}}',
    "what happened in December 9999",
]
HOSTILE_HEADERS = ["X-Consistency-Token", "Idempotency-Key", "X-Request-ID", "User-Agent", "X-Hostile"]
# (Control bytes are not among them: the HTTP parser refuses those before any application.)
HOSTILE_HEADER_VALUES = [TOPIC_TOKEN.format("12:0").encode(), TOPIC_TOKEN.format("0:999999999999").encode(),
                         TOPIC_TOKEN.format("0:" + "9" * 30).encode(), b"recallstack.dlq/0:1", b"%%%", b"9" * 400,
                         b"caf\xe9", b"\xff\xfe", "\u00e9t\u00e9".encode("utf-8"), b"x" * 300]
_MARK = "@@HOSTILE@@"


def _leaves(value, path=()):
    """Every place in a JSON value a hostile literal can go: each value, and a new key of each object."""
    yield path
    if isinstance(value, dict):
        yield path + ("hostile-key",)
        for key, item in value.items():
            yield from _leaves(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, path + (index,))


def _marked(value, path):
    if not path:
        return _MARK
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _marked(value.get(head), rest)}
    copy = list(value)
    copy[head] = _marked(copy[head], rest)
    return copy


def _hostile_request(case, data) -> tuple[dict, str]:
    """The request of `case` (already prepared) with one hostile value in the body, a query
    parameter or a header, and what was replaced (for the report)."""
    kwargs = case.as_transport_kwargs(headers=admin_headers())
    places = ["header"]
    if not isinstance(case.body, NotSet) and isinstance(case.body, (dict, list)):
        places += ["body"] * 3
    query = [p["name"] for p in case.operation.definition.raw.get("parameters", []) if p.get("in") == "query"]
    if query:
        places += ["query"] * 2
    place = data.draw(st.sampled_from(places), label="place")
    if place == "body":
        path = data.draw(st.sampled_from(list(_leaves(case.body))), label="body path")
        literal = data.draw(st.sampled_from(HOSTILE_JSON), label="literal")
        text = json.dumps(_marked(case.body, path)).replace(json.dumps(_MARK), literal, 1)
        kwargs.pop("json", None)
        kwargs["data"] = text.encode("utf-8")
        kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
        return kwargs, f"body {'.'.join(map(str, path)) or '(whole)'} = {literal[:60]}"
    if place == "query":
        name = data.draw(st.sampled_from(query), label="parameter")
        value = data.draw(st.sampled_from(HOSTILE_TEXT), label="value")
        kwargs["params"] = {**(kwargs.get("params") or {}), name: value}
        return kwargs, f"query {name} = {value[:60]}"
    name = data.draw(st.sampled_from(HOSTILE_HEADERS), label="header")
    value = data.draw(st.sampled_from(HOSTILE_HEADER_VALUES), label="value")
    kwargs["headers"] = {**kwargs.get("headers", {}), name: value}
    return kwargs, f"header {name} = {value[:60]!r}"


def _hostile(operation, prepare) -> list[str]:
    """Hostile cases of one operation (see the module's docstring): one problem if any failed."""
    session = requests.Session()
    failures: list[str] = []

    @HOSTILE
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), data=st.data())
    def run(case, data):
        prepare(case, GenerationMode.POSITIVE)
        kwargs, what = _hostile_request(case, data)
        response = session.request(**{**kwargs, "timeout": 60})
        try:
            case.validate_response(response, checks=HOSTILE_CHECKS)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{what}: {response.status_code} {response.text[:300]} ({type(exc).__name__}: {exc})")
            raise

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:
        detail = failures[-1] if failures else f"{type(exc).__name__}: {exc}"
        return [f"{operation.label} (hostile cases): {detail}"]
    finally:
        session.close()
    return []


def _fuzz_user() -> str:
    return f"fuzz-{uuid.uuid4().hex[:12]}"


def _valid_id(value) -> bool:
    return isinstance(value, str) and re.fullmatch(ID_PATTERN, value) is not None


def _fence(case) -> None:
    """Keep destructive operations away from users other tests rely on. Only a valid user id is
    replaced (by a fresh `fuzz-...` one): an invalid one stays, to be refused with 4xx.
    - DELETE /v1/users/{user_id} erases a user for good (crypto-shredding): the session's admin
      user `admin` must keep its key and data;
    - DELETE /v1/memories without a user_id deletes every memory of the key's user (`admin`);
    - POST /v1/users registers (or re-registers, overwriting display name and admin flag) a user."""
    operation = (case.method.upper(), case.path)
    if operation == ("DELETE", "/v1/users/{user_id}") and _valid_id((case.path_parameters or {}).get("user_id")):
        case.path_parameters = {**case.path_parameters, "user_id": _fuzz_user()}
    elif operation == ("DELETE", "/v1/memories"):
        query = dict(case.query or {})
        if "user_id" not in query or _valid_id(query["user_id"]):
            query["user_id"] = _fuzz_user()
        case.query = query
    elif operation == ("POST", "/v1/users") and isinstance(case.body, dict) and _valid_id(case.body.get("user_id")):
        case.body = {**case.body, "user_id": _fuzz_user()}


@dataclass
class Target:
    """A user made for the test, with memories that exist: what aimed positive cases act on."""
    user_id: str
    memory_ids: list[str]
    token: str
    deletable: str  # the one memory aimed deletes may delete (the others stay for the rest of the run)

    @classmethod
    def make(cls, services) -> "Target":
        user_id = _fuzz_user()
        texts = ["I drink green tea every morning", "My cat is called Miso", "I moved to Lisbon in 2021",
                 "I prefer window seats on flights", "The project deadline is next Friday"]
        ids, token = [], None
        with httpx.Client(timeout=60, headers=admin_headers()) as client:
            for index, text in enumerate(texts):
                answer = client.post(f"{services.command_api_url}/v1/memories", json={
                    "text": text, "user_id": user_id, "agent_id": "fuzz", "metadata": {"n": index, "topic": "fuzz"},
                    "categories": ["fuzz"], "importance": 0.5})
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["results"][0]["id"])
                token = answer.json()["consistency_token"]
            listed = client.get(f"{services.query_api_url}/v1/memories",
                                params={"user_id": user_id, "consistency_token": token})
            assert listed.status_code == 200 and listed.json()["total"] == len(texts), listed.text
        return cls(user_id, ids, token, deletable=ids[0])

    def aim(self, case) -> None:
        """A positive case, half of the time (decided by its own data, so a replay does the same):
        at this user and, where the path names one, at one of its memories (aimed deletes only
        at `deletable`); with tokens that parse and an Idempotency-Key of printable characters;
        its body meeting the rules the schema cannot state."""
        path, method = case.path, case.method.upper()
        seed = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode("utf-8", "surrogatepass"))
        if seed % 2 or (method, path) == ("DELETE", "/v1/memories"):  # scope deletes stay fenced
            return
        if (method, path) == ("DELETE", "/v1/users/{user_id}"):  # erase (a fenced fuzz user) for real
            case.query = {**(case.query or {}), "confirm": True}
        if "memory_id" in (case.path_parameters or {}):
            others = self.memory_ids[1:]
            memory_id = self.deletable if method == "DELETE" and path == "/v1/memories/{memory_id}" else \
                others[seed // 2 % len(others)]
            case.path_parameters = {**case.path_parameters, "memory_id": memory_id}
        query = {p["name"] for p in case.operation.definition.raw.get("parameters", []) if p.get("in") == "query"}
        if "user_id" in query:
            case.query = {**(case.query or {}), "user_id": self.user_id}
        if "consistency_token" in (case.query or {}):
            case.query = {**case.query, "consistency_token": self.token}
        headers = {k.lower(): v for k, v in (case.headers or {}).items()}
        if "x-consistency-token" in headers:
            headers["x-consistency-token"] = self.token
        key = headers.get("idempotency-key")
        if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
            headers["idempotency-key"] = uuid.uuid4().hex
        if case.headers is not None:
            case.headers = headers
        if not isinstance(case.body, dict):
            return
        if path in ("/v1/memories/search", "/v1/context"):
            case.body = {**case.body, "user_id": self.user_id}
            if case.body.get("consistency_token") is not None:
                case.body["consistency_token"] = self.token
        elif (method, path) == ("POST", "/v1/memories"):
            case.body = _one_memory(case.body)
        elif path == "/v1/memories/batch" and isinstance(case.body.get("memories"), list):
            case.body = {**case.body, "memories": [{**_one_memory(m), "infer": None} if isinstance(m, dict) else m
                                                   for m in case.body["memories"]]}
        elif method == "PATCH":
            case.body = _texts_fixed(case.body)
            if all(case.body.get(k) is None for k in ("text", "metadata", "categories", "importance")):
                case.body["importance"] = 0.5


def _one_memory(body: dict) -> dict:
    """An add body that meets what the schema cannot say: exactly one of text or messages, text
    without control characters, no precomputed vector (it would have to be normalised)."""
    body = _texts_fixed({k: v for k, v in body.items() if k not in ("embedding", "embedding_model")})
    if body.get("text") is not None and body.get("messages") is not None:
        body.pop("messages")
    if body.get("text") is None and body.get("messages") is None:
        body["text"] = "fuzzed memory"
    return body


def _printable(text, fallback: str = "x"):
    if not isinstance(text, str):
        return text
    text = _CONTROL.sub("", text)
    return text if text.strip() else fallback


def _texts_fixed(body: dict) -> dict:
    body = dict(body)
    if "text" in body and body["text"] is not None:
        body["text"] = _printable(body["text"])
    if isinstance(body.get("messages"), list):
        body["messages"] = [{**m, "content": _printable(m.get("content"))} if isinstance(m, dict) else m
                            for m in body["messages"]]
    if isinstance(body.get("categories"), list):
        body["categories"] = [_printable(c)[:64] if isinstance(c, str) else c for c in body["categories"]]
    if isinstance(body.get("metadata"), dict):
        body["metadata"] = _keys_fixed(body["metadata"])
    return body


def _keys_fixed(value):
    """Metadata keys of at most 128 characters, without control characters, at every level."""
    if isinstance(value, dict):
        return {_printable(k)[:128] if isinstance(k, str) else k: _keys_fixed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_fixed(v) for v in value]
    return value


def _report(tried: list[str], problems: list[str]) -> str:
    return f"{len(problems)} of {2 * len(tried)} (operation, mode) runs failed:\n\n" + "\n\n".join(problems)


def _preparer(target: Target, fence: bool):
    def prepare(case, mode) -> None:
        if mode == GenerationMode.POSITIVE:
            target.aim(case)
        if fence:
            _fence(case)
    return prepare


async def _dead_letters_of(bootstrap: str, before: dict[int, int], after: dict[int, int],
                           timeout: float = 180) -> list[str]:
    """Once every projector applied the log up to `after`: what they dead-lettered of the events
    between `before` and `after` (an accepted write no read model can hold is a server error too)."""
    behind, deadline = set(PROJECTIONS), time.monotonic() + timeout
    while behind and time.monotonic() < deadline:
        for projection in sorted(behind):
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_of(projection),
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                committed = {p: await consumer.committed(TopicPartition(EVENTS_TOPIC, p)) or 0 for p in after}
            finally:
                await consumer.stop()
            if all(committed[p] >= end for p, end in after.items()):
                behind.discard(projection)
        if behind:
            await asyncio.sleep(1)
    problems = [f"projector {name} did not apply the fuzzed writes within {timeout:.0f} s" for name in sorted(behind)]
    for letter in await dead_letters.read_all(bootstrap):
        if letter["topic"] == EVENTS_TOPIC and before[letter["partition"]] <= letter["offset"] < after[letter["partition"]]:
            problems.append(f"projector {letter['projection']} dead-lettered the event at {letter['partition']}:"
                            f"{letter['offset']} (key {letter['key']}): {letter['error']}")
    return problems


def test_command_api(services):
    assert services.auth and os.environ.get("RECALLSTACK_API_KEY"), "the fuzzing is meant with authentication on"
    began = time.monotonic()
    target = Target.make(services)
    before = asyncio.run(end_offsets(services.kafka_bootstrap))
    tried, problems = fuzz(_schema(services.command_api_url), _preparer(target, fence=True))
    assert "DELETE /v1/users/{user_id}" in tried and "POST /v1/keys" in tried and len(tried) >= 12, tried
    problems += asyncio.run(_dead_letters_of(services.kafka_bootstrap, before,
                                             asyncio.run(end_offsets(services.kafka_bootstrap))))
    assert not problems, _report(tried, problems)
    print(f"command API: {len(tried)} operations fuzzed in {time.monotonic() - began:.0f} s")


def test_query_api(services):
    assert services.auth and os.environ.get("RECALLSTACK_API_KEY"), "the fuzzing is meant with authentication on"
    began = time.monotonic()
    tried, problems = fuzz(_schema(services.query_api_url), _preparer(Target.make(services), fence=False))
    assert "POST /v1/memories/search" in tried and "GET /v1/users" in tried and len(tried) >= 14, tried
    assert not problems, _report(tried, problems)
    print(f"query API: {len(tried)} operations fuzzed in {time.monotonic() - began:.0f} s")



def test_a_long_query_string_is_answered_not_reset(services):
    """What the fuzzing found first: a `filters` just over its documented 16,384 characters, of
    emoji (12 bytes each percent-encoded), made a 196 KB request line that uvicorn's HTTP parser
    (h11, 16 KiB by default) refused by closing the connection (infra/stack.py raises the limit);
    through the old Python gateway, a query string over httpx's 64 KiB was a 500. The proxy takes
    a request line up to 256 KiB, so the API answers it through the base URL too. Sent with
    requests: httpx refuses such URLs itself."""
    params = {"user_id": _fuzz_user(), "filters": "\U0001f600" * 16_385}
    answer = requests.get(f"{services.query_api_url}/v1/memories", params=params, headers=admin_headers(), timeout=30)
    assert answer.status_code == 422 and answer.json()["error"]["details"]["errors"][0]["field"] == "filters", \
        answer.text[:300]
    answer = requests.get(f"{services.gateway_url}/v1/memories", params=params, headers=admin_headers(), timeout=30)
    assert answer.status_code == 422 and answer.json()["error"]["details"]["errors"][0]["field"] == "filters", \
        answer.text[:300]
