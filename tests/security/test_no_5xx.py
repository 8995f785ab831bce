"""No 5xx from input, anywhere (issue 19, item 4): each class of bad input, through the base
URL (the reverse proxy) and, where the proxy could hide what an API does, straight to the
APIs. A bad input gets its 4xx, the JSON error shape `{error: {code, message, details}}`
naming the field, no database's text, and (on the command side) appends nothing. Inputs
that used to be 500s but are valid (a time phrase past the calendar, a filter value past
float32) are answered 200.
"""

from __future__ import annotations

import json
import random
import re
import socket
import string
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import admin_headers

pytestmark = pytest.mark.e2e

USER = f"no5xx-{uuid.uuid4().hex[:10]}"
MEMORY = str(uuid.uuid4())  # a memory that does not exist: every token check comes before the lookup
TOPIC = "recallstack.memory.events"
# What a database's (or a driver's) own text looks like: none of it may reach a client.
DB_TEXT = re.compile(r"asyncpg|psycopg|SQLSTATE|DETAIL:|invalid input (syntax|for query argument)|"
                     r"out of float32 range|date value out of range|neo4j\.exceptions|Neo4jError|"
                     r"redis\.exceptions|aiokafka|Traceback|Connect call failed|\('127\.0\.0\.1', \d+\)", re.I)


def fields_named(error: dict) -> list[str]:
    details = error.get("details") or {}
    named = [details["field"]] if isinstance(details.get("field"), str) else []
    return named + [e["field"] for e in details.get("errors", []) if isinstance(e, dict) and "field" in e]


def assert_refused(answer: httpx.Response, status: int, field: str | None, code: str | None = None) -> dict:
    """`answer` is `status` with the JSON error shape, naming `field` (a prefix: the path may go
    deeper), without a database's text."""
    where = f"{answer.request.method} {answer.request.url.path}"
    assert answer.status_code == status, f"{where}: {answer.status_code} {answer.text[:400]}"
    assert answer.headers.get("content-type", "").startswith("application/json"), f"{where}: {answer.text[:200]}"
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert any(f.lower().startswith(field.lower()) for f in fields_named(error)), (field, error)
    assert not DB_TEXT.search(answer.text), f"{where}: a database's text reached the client: {answer.text[:400]}"
    return error


def raw_json(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """A body json.dumps cannot write (NaN, Infinity, 1e400, lone surrogates)."""
    return client.post(path, content=text.encode("utf-8", "surrogatepass"),
                       headers={"content-type": "application/json"})


def deep(levels: int) -> dict:
    node: dict = {"agent_id": "a"}
    for _ in range(levels):
        node = {"AND": [node]}
    return node


# --- the query side's bodies: time, filters, text --------------------------------------------

Q = {"query": "what did I do", "user_id": USER}
SEARCH, CONTEXT = "/v1/memories/search", "/v1/context"

# (name, path, JSON body or raw text, status, field)
QUERY_BODIES = [
    ("reference_time is year 0 in UTC", SEARCH, {**Q, "reference_time": "0001-01-01T00:00:00+14:00"}, 422,
     "reference_time"),
    ("reference_time is year 10000 in UTC", CONTEXT, {**Q, "reference_time": "9999-12-31T23:00:00-14:00"}, 422,
     "reference_time"),
    ("reference_time on the calendar's first day", SEARCH, {**Q, "query": "last week",
                                                            "reference_time": "0001-01-01T00:00:00Z"}, 422,
     "reference_time"),
    ("query with NUL", SEARCH, {**Q, "query": "tea\u0000time"}, 422, "query"),
    ("query with a lone surrogate", SEARCH, json.dumps({**Q, "query": "tea"})[:-1] + ', "query": "\\ud800"}', 422,
     None),
    ("filters nested 300 deep", SEARCH, {**Q, "filters": deep(300)}, 422, "filters"),
    ("filters nested 20 deep (logical)", CONTEXT, {**Q, "filters": deep(20)}, 422, "filters"),
    ("filter NaN", SEARCH, json.dumps(Q)[:-1] + ', "filters": {"importance": {"gt": NaN}}}', 422,
     "filters.importance.gt"),
    ("filter Infinity", SEARCH, json.dumps(Q)[:-1] + ', "filters": {"metadata": {"n": Infinity}}}', 422,
     "filters.metadata.n"),
    ("filter -Infinity in a list", CONTEXT,
     json.dumps(Q)[:-1] + ', "filters": {"metadata": {"n": {"in": [1, -Infinity]}}}}', 422, "filters.metadata.n"),
    ("filter 1e400", SEARCH, json.dumps(Q)[:-1] + ', "filters": {"importance": {"lt": 1e400}}}', 422,
     "filters.importance.lt"),
    ("filter integer of 400 digits", SEARCH,
     json.dumps(Q)[:-1] + ', "filters": {"metadata": {"n": {"gt": ' + "9" * 400 + "}}}}", 422, "filters.metadata.n"),
    ("filter with NUL", SEARCH, {**Q, "filters": {"metadata": {"k": "a\u0000b"}}}, 422, "filters.metadata.k"),
    ("filter with a lone surrogate", SEARCH, json.dumps(Q)[:-1] + ', "filters": {"agent_id": "\\udfff"}}', 422,
     "filters.agent_id"),
    ("filter key with a lone surrogate", SEARCH, json.dumps(Q)[:-1] + ', "filters": {"metadata": {"\\ud800": 1}}}',
     422, "filters.metadata"),
    ("unknown filter operator", SEARCH, {**Q, "filters": {"agent_id": {"like": "a%"}}}, 422, "filters.agent_id"),
    ("unknown filter field", SEARCH, {**Q, "filters": {"colour": "red"}}, 422, "filters.colour"),
    ("too many filter clauses", SEARCH, {**Q, "filters": {"OR": [{"agent_id": f"a{i}"} for i in range(100)]}}, 422,
     "filters"),
    ("filter time not ISO 8601", CONTEXT, {**Q, "filters": {"created_at": {"gt": "yesterday"}}}, 422,
     "filters.created_at.gt"),
    ("filter importance not a number", SEARCH, {**Q, "filters": {"importance": {"gt": "high"}}}, 422,
     "filters.importance.gt"),
]


@pytest.mark.parametrize("name, path, body, status, field", QUERY_BODIES, ids=[c[0] for c in QUERY_BODIES])
def test_a_bad_read_body_is_a_4xx_naming_the_field(gateway, name, path, body, status, field):
    answer = raw_json(gateway, path, body) if isinstance(body, str) else gateway.post(path, json=body)
    assert_refused(answer, status, field)


# (name, the `filters` query parameter of GET /v1/memories, field)
LIST_FILTERS = [
    ("nested 5,000 deep (Python's decoder would recurse)", "[" * 5_000 + "]" * 5_000, "filters"),
    ("NaN", '{"importance": {"gt": NaN}}', "filters"),
    ("Infinity", '{"metadata": {"n": Infinity}}', "filters"),
    ("an integer of 5,000 digits (int() refuses over 4,300)", '{"metadata": {"n": ' + "9" * 5_000 + "}}", "filters"),
    ("not JSON", '{"agent_id": ', "filters"),
    ("NUL", '{"metadata": {"k": "\\u0000"}}', "filters"),
]


@pytest.mark.parametrize("name, filters, field", LIST_FILTERS, ids=[c[0] for c in LIST_FILTERS])
def test_a_bad_filter_in_a_query_string_is_a_422_naming_it(gateway, name, filters, field):
    assert_refused(gateway.get("/v1/memories", params={"user_id": USER, "filters": filters}), 422, field)


# (name, path, body): inputs that once were 500s, or 503s carrying a database's text, and are valid
ANSWERED = [
    ("December 9999", SEARCH, {**Q, "query": "what happened in December 9999", "temporal": "filter"}),
    ("100000 years ago", SEARCH, {**Q, "query": "100000 years ago"}),
    ("99999999999 days ago", CONTEXT, {**Q, "query": "99999999999 days ago"}),
    ("99999999999 days before the meeting", SEARCH, {**Q, "query": "what happened 99999999999 days before the meeting"}),
    ("a phrase of 5,000 digits", SEARCH, {**Q, "query": "9" * 5_000 + " days ago", "temporal": "filter"}),
    ("next year on the calendar's last day", CONTEXT,
     {**Q, "query": "next year", "reference_time": "9999-12-30T12:00:00Z"}),
    ("last week on the calendar's second day", SEARCH,
     {**Q, "query": "last week", "reference_time": "0001-01-02T12:00:00+05:00"}),
    ("importance past float32", SEARCH, {**Q, "filters": {"importance": {"gt": 1e300}}}),
    ("metadata past float32", SEARCH, {**Q, "filters": {"metadata": {"n": {"lt": -1e308}}}}),
    ("a time that is year 0 in UTC", SEARCH, {**Q, "filters": {"created_at": {"gt": "0001-01-01T00:00:00+14:00"}}}),
    ("a time that is year 10000 in UTC", CONTEXT,
     {**Q, "filters": {"occurred_at": {"lt": "9999-12-31T23:00:00-14:00"}}}),
]


@pytest.mark.parametrize("name, path, body", ANSWERED, ids=[c[0] for c in ANSWERED])
def test_plausible_input_that_used_to_fail_is_answered(gateway, name, path, body):
    answer = gateway.post(path, json=body)
    assert answer.status_code == 200, answer.text[:400]
    assert not DB_TEXT.search(answer.text), answer.text[:400]


# --- consistency tokens that cannot exist: 400 on every endpoint that takes one --------------

TOKENS = {
    "a partition the topic lacks": f"{TOPIC}/12:0",
    "an offset past int64": f"{TOPIC}/0:99999999999999999999999",
    "a negative offset": f"{TOPIC}/0:-1",
    "an offset the log has not reached": f"{TOPIC}/0:999999999999",
    "another topic": "recallstack.dlq/0:1",
    "garbage": "%%%/",
}
READS = [  # (method, path, where the token goes)
    ("POST", SEARCH, "body"), ("POST", CONTEXT, "body"), ("GET", "/v1/memories", "query"),
    ("GET", f"/v1/memories/{MEMORY}", "query"), ("GET", f"/v1/memories/{MEMORY}/history", "query"),
    ("GET", "/v1/graph", "query"),
]
WRITES = [  # (method, path, body): X-Consistency-Token
    ("PATCH", f"/v1/memories/{MEMORY}", {"text": "changed"}), ("DELETE", f"/v1/memories/{MEMORY}", None),
    ("POST", f"/v1/memories/{MEMORY}/restore", None), ("POST", f"/v1/memories/{MEMORY}/shares", {"grantee_user_id": "b"}),
]


@pytest.mark.parametrize("kind", TOKENS)
def test_a_token_that_cannot_exist_is_400_on_every_read(gateway, kind):
    token = TOKENS[kind]
    for method, path, where in READS:
        began = time.monotonic()
        if where == "body":
            answer = gateway.post(path, json={**Q, "consistency_token": token})
        else:
            answer = gateway.request(method, path, params={"user_id": USER, "consistency_token": token})
        assert_refused(answer, 400, "consistency_token")
        assert time.monotonic() - began < 1.5, f"{path}: refused only after waiting for the token"


@pytest.mark.parametrize("kind", TOKENS)
def test_a_token_that_cannot_exist_is_400_on_every_write_and_appends_nothing(gateway, log, kind):
    log.mark()
    for method, path, body in WRITES:
        answer = gateway.request(method, path, params={"user_id": USER}, json=body,
                                 headers={"X-Consistency-Token": TOKENS[kind]})
        assert_refused(answer, 400, "X-Consistency-Token")
    assert log.unchanged()


def test_a_real_token_is_still_waited_for_and_answered(gateway):
    written = gateway.post("/v1/memories", json={"text": "I keep bees", "user_id": USER})
    assert written.status_code == 202, written.text
    token = written.json()["consistency_token"]
    answer = gateway.post(SEARCH, json={**Q, "query": "bees", "consistency_token": token})
    assert answer.status_code == 200 and [r["memory"] for r in answer.json()["results"]][:1] == ["I keep bees"]


# --- headers, methods, slashes, body sizes: straight to each API and through the base URL ----

HEADERS = ["Authorization", "X-Consistency-Token", "Idempotency-Key", "X-Request-ID", "User-Agent", "X-Anything"]


def bases(services) -> dict[str, str]:
    return {"base URL": services.gateway_url, "command API": services.command_api_url,
            "query API": services.query_api_url}


@pytest.mark.parametrize("header", HEADERS)
def test_a_non_ascii_header_byte_is_400_naming_the_header(services, log, header):
    log.mark()
    for where, base in bases(services).items():
        with httpx.Client(base_url=base, timeout=30, headers=admin_headers()) as client:
            value = b"Bearer rsk_\xe9\xff" if header == "Authorization" else b"caf\xe9-\xff"
            if where != "command API":
                answer = client.get("/v1/memories", params={"user_id": USER}, headers={header: value})
                assert_refused(answer, 400, header, "invalid_header")
            if where != "query API":
                answer = client.post("/v1/memories", json={"text": "never stored", "user_id": USER},
                                     headers={header: value})
                assert_refused(answer, 400, header, "invalid_header")
    assert log.unchanged()


@pytest.mark.parametrize("header", ["Authorization", "X-Request-ID", "X-Anything"])
def test_a_non_ascii_header_byte_is_400_at_the_web_edge_too(gateway, header):
    """What the base URL sends to the Python web edge (/ui/api/system once passed a non-ASCII
    Authorization on to the query API: a UnicodeEncodeError, 500 text/plain)."""
    for method, path, body in (("GET", "/ui/api/system", None), ("GET", "/readyz", None),
                               ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"})):
        answer = gateway.request(method, path, json=body, headers={header: b"caf\xe9"})
        assert_refused(answer, 400, header, "invalid_header")


@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "BREW", "MKCOL"])
def test_an_unknown_method_is_405_json(services, log, method):
    """Each API answers 405 before routing; the proxy at the base URL answers a method no /v1
    route takes with 405 itself, in the same shape, never passing it on."""
    log.mark()
    for where, base in bases(services).items():
        with httpx.Client(base_url=base, timeout=30, headers=admin_headers()) as client:
            for path in ("/v1/memories", SEARCH, f"/v1/memories/{MEMORY}"):
                answer = client.request(method, path, params={"user_id": USER})
                error = assert_refused(answer, 405, None, "method_not_allowed")
                assert error["details"]["allowed"], error
    assert log.unchanged()


def method_labels(url: str) -> set[str]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return set(re.findall(r'^recallstack_http_request_seconds_count\{[^}]*method="([^"]*)"', text, re.M))


def test_twenty_random_methods_add_no_metric_label(services):
    fixed = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    picked = random.Random()
    methods = {"".join(picked.choices(string.ascii_uppercase, k=picked.randint(3, 10))) for _ in range(20)}
    for where, base in bases(services).items():
        with httpx.Client(base_url=base, timeout=30, headers=admin_headers()) as client:
            for method in methods:
                status = client.request(method, "/v1/memories").status_code
                assert status == 405, (where, method, status)
    for api in (services.command_api_url, services.query_api_url):
        labels = method_labels(api)
        assert "other" in labels and labels <= fixed, labels - fixed


@pytest.mark.parametrize("where", ["base URL", "query API"])
def test_a_trailing_slash_is_the_same_route_never_a_redirect(services, where):
    base = bases(services)[where]
    with httpx.Client(base_url=base, timeout=30, headers=admin_headers(), follow_redirects=False) as client:
        answer = client.post(f"{SEARCH}/", json={**Q, "query": "bees"})
        assert answer.status_code == 200 and "location" not in answer.headers, answer.text[:300]
        answer = client.get("/v1/memories/", params={"user_id": USER})
        assert answer.status_code == 200 and "results" in answer.json(), answer.text[:300]
        answer = client.post(f"{SEARCH}//", json={**Q, "query": "bees"})  # only one slash is forgiven
        assert answer.status_code == 404 and "location" not in answer.headers, answer.text[:300]


def test_a_trailing_slash_on_a_write_is_the_same_route(gateway):
    answer = gateway.post("/v1/memories/", json={"text": "I like trailing slashes", "user_id": USER},
                          follow_redirects=False)
    assert answer.status_code == 202 and "location" not in answer.headers, answer.text[:300]


def test_a_search_body_over_the_query_apis_limit_is_413(services):
    body = json.dumps({**Q, "filters": {"metadata": {"k": {"in": ["x" * 1_100] * 1_000}}}}).encode()
    assert len(body) > 1024 * 1024
    for base in (services.gateway_url, services.query_api_url):
        answer = httpx.post(f"{base}{SEARCH}", content=body, timeout=30,
                            headers={**admin_headers(), "content-type": "application/json"})
        assert_refused(answer, 413, "body" if base == services.query_api_url else None, "too_large")


def test_a_chunked_body_is_cut_off_at_the_limit_not_read_whole(services):
    """No Content-Length: the query API counts the bytes as they come and answers 413 once they
    pass 1 MiB; the rest of a 10 MB body is never read (straight to the API: a proxy in front
    may buffer or refuse a chunked body itself)."""
    url = urlsplit(services.query_api_url)
    head = (f"POST {SEARCH} HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nAuthorization: {admin_headers().get('Authorization', '')}\r\n\r\n")
    chunk = b"x" * 65_536
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(head.encode())
        conn.setblocking(False)
        answer = b""
        try:
            while sent < 10 * 1024 * 1024 and b"\r\n\r\n" not in answer:
                try:
                    answer += conn.recv(65_536)
                except BlockingIOError:
                    pass
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, BlockingIOError):
            pass  # the server stopped reading
        conn.settimeout(10)
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                more = conn.recv(65_536)
            except (BlockingIOError, TimeoutError, ConnectionResetError):
                continue
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert sent < 10 * 1024 * 1024, "the whole body was accepted for reading"
    assert b'"too_large"' in answer or b"\r\n\r\n" in answer
