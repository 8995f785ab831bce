"""The reverse proxy at the base URL (nginx, infra/proxy_config.py), issue 19 item 1.

Two halves:
- the stack's nginx configuration in front of stand-in upstreams (tests/security/proxy_standin.py:
  uvicorn apps that echo what they received) on free ports: routing agrees with gateway/routes.py,
  path tricks never reach an upstream, limits and timeouts answer in JSON or cut the client off,
  an upstream 500 does not fail the next request, an unreachable API is a 503 with Retry-After,
  several processes per API are balanced and a killed one is invisible;
- the real stack (the e2e fixtures): the path tricks of the issue with an ordinary write key
  change and list nothing, and the proxy's limits and timeouts hold in front of the real APIs.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid

import httpx
import pytest
import requests

from gateway.routes import COMMAND, NO_METHOD, PROXY, QUERY, WEB_EDGE, refused, route
from infra.proxy_config import DEFAULT_BODY_LIMIT, HEADER_BUFFER, RETRY_AFTER_S
from tests.security.proxy_standin import cut_off_after, have_nginx, proxied, raw_request

UUID = "6f1c7c2e-8f59-4f5e-9a63-4c1b0a3c2d11"
# The tricks the issue found (through the old Python proxy they reached other endpoints), and more.
TRICKS = [
    f"/v1/memories/{UUID}/shares/..%2F..", "/v1/memories/..%2F..%2Fv1%2Fkeys", "/v1/..%2Fmetrics", "/v1/..%2Fdocs",
    "/v1/..%2fopenapi.json", f"/v1/memories/{UUID}/..%2F", "/v1/memories/%2e%2e/%2e%2e/v1/keys",
    "/v1/memories/%252e%252e%252fkeys", "/v1/memories/..%252F..%252Fv1%252Fkeys", "/v1/memories/..%5Ckeys",
    "/v1/memories/..%5c..%5cv1%5ckeys", "/v1/memories/..\\..\\v1\\keys", f"/v1/memories/{UUID}/shares/../..",
    "/v1/memories/../keys", "/v1/./keys", "/v1/memories/..", "/v1/memories/%2E%2E",
]
INTERNAL = ("127.0.0.1:808", "127.0.0.1:818", "localhost:808", "command-api", "query-api", "web-edge")


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    assert have_nginx(), "nginx (Debian package) is required; `make install` installs it"
    with proxied(tmp_path_factory.mktemp("proxy"), processes=1, client_timeout_s=2) as running:
        yield running


def observed(answer) -> str | None:
    """What answered: the stand-in's name, PROXY for the proxy's own /healthz, "refused" for a
    400 bad_path, NO_METHOD for the proxy's 405, None for no route (404)."""
    if "x-standin" in answer.headers:
        return answer.headers["x-standin"]
    if answer.status == 400:
        return "refused"
    if answer.status == 405:
        return NO_METHOD
    if answer.status == 404:
        return None
    if answer.status == 200:
        return PROXY
    raise AssertionError(f"unexpected answer {answer.status} {answer.headers} {answer.body[:200]!r}")


METHODS = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "PROPFIND", "TRACE"]
PATHS = [
    "/v1/memories", "/v1/memories/", "/v1/memories/batch", f"/v1/memories/{UUID}", f"/v1/memories/{UUID}/history",
    f"/v1/memories/{UUID}/shares", "/v1/memories/search", "/v1/memories/search/", "/v1/memories/search//",
    "/v1/memories/searchx", "/v1/context", "/v1/context/", "/v1/contexts", "/v1/graph", "/v1/keys", "/v1/me",
    "/v1/users/alice", "/v1/", "/v1", "/v1//memories", "/v1/memories/%62atch", "/v1/users/alice%40example.com",
    "/v3/memories/add/", "/v1/ping/", "/v3/memories/", "/v3/memories", "/v3/memories/search/", "/v3/memories/add",
    "/v3/memoriesx", "/v3/memories/search/x", "/v3/", "/v3", "/v2/memories/", "/v1/batch/", f"/v1/memories/{UUID}/",
    f"/v1/memories/{UUID}/history/", "/healthz", "/healthz/", "/readyz", "/metrics", "/docs", "/openapi.json",
    "/mcp", "/mcp/", "/mcpx", "/ui/api/system", "/ui/api/other", "/", "/assets/app-1a2b.js", "/assets/",
    "/memories", f"/memories/{UUID}", "/memoriesx", "/search", "/graph", "/namespaces", "/system", "/transfer",
    "/etc/passwd", "/.env", "/.well-known/x", "/v1/memories/...", "/v1/memories/a..b", *TRICKS,
]


def test_the_proxy_routes_exactly_as_gateway_routes_says_and_passes_the_raw_path(stand_in):
    proxy, _ = stand_in
    disagreements = []
    for method, path in itertools.product(METHODS, PATHS):
        answer = raw_request(proxy.port, f"{method} {path} HTTP/1.1".encode("latin-1"))
        # nginx answers TRACE 405 itself, before any routing: never routed either way.
        expected = NO_METHOD if method == "TRACE" else "refused" if refused(path) else route(method, path)
        got = observed(answer)
        if got != expected:
            disagreements.append((method, path, expected, got, answer.status))
        elif got in (COMMAND, QUERY, WEB_EDGE):
            assert answer.headers["x-standin-raw-path"] == path, (method, path, answer.headers)
        elif got in ("refused", NO_METHOD, None) and method != "HEAD":
            assert set(answer.json()["error"]) == {"code", "message", "details"}, (method, path, answer.body)
    assert not disagreements, "\n".join(map(str, disagreements))


def test_path_tricks_never_reach_an_upstream(stand_in):
    proxy, standins = stand_in
    for path in TRICKS:
        for method in ("GET", "DELETE", "POST", "PATCH"):
            answer = raw_request(proxy.port, f"{method} {path} HTTP/1.1".encode())
            assert answer.status == 400 and "x-standin" not in answer.headers, (method, path, answer.status)
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["error"]["code"] == "bad_path" and answer.json()["error"]["details"] == {"field": "path"}
    # The query string is not the path: an encoded slash there is data, passed on as sent.
    answer = raw_request(proxy.port, b"GET /v1/memories?user_id=a%2Fb&x=..%2F.. HTTP/1.1")
    assert answer.status == 200 and answer.json()["query"] == "user_id=a%2Fb&x=..%2F.."
    # Absolute-form request targets are routed on their path too.
    answer = raw_request(proxy.port, b"GET http://elsewhere/v1/..%2Fmetrics HTTP/1.1")
    assert answer.status == 400 and answer.json()["error"]["code"] == "bad_path"


def test_malformed_requests_are_answered_in_json(stand_in):
    proxy, _ = stand_in
    for line, status in ((b"GET /../x HTTP/1.1", 400), (b"get /v1/memories HTTP/1.1", 400),
                         (b"GET /v1/memories HTTP/2.0", 505), (b"GET /v1/\xc3\xa9 HTTP/1.1", 400)):
        answer = raw_request(proxy.port, line)
        assert answer.status == status and set(answer.json()["error"]) == {"code", "message", "details"}, line


def test_oversize_heads_and_bodies_are_refused_in_json(stand_in):
    proxy, _ = stand_in
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        # The documented longest filters (16,384 four-byte characters) passes; a longer request line is 414.
        # (Sent with requests: httpx refuses URLs over 64 KiB itself.)
        long_query = requests.get(f"{proxy.url}/v1/memories", params={"filters": "\U0001f600" * 16_384}, timeout=30)
        assert long_query.status_code == 200 and long_query.headers["x-standin"] == QUERY
        too_long = requests.get(f"{proxy.url}/v1/memories", params={"filters": "x" * (HEADER_BUFFER + 1)}, timeout=30)
        assert too_long.status_code == 414 and too_long.json()["error"]["code"] == "uri_too_long"
        big_header = client.get("/v1/memories", headers={"X-Big": "x" * (HEADER_BUFFER + 1)})
        assert big_header.status_code == 431 and big_header.json()["error"]["code"] == "header_too_large"
        big_head = client.get("/v1/memories", headers={f"X-Big-{i}": "x" * (HEADER_BUFFER - 1000) for i in range(5)})
        assert big_head.status_code == 431 and big_head.json()["error"]["details"]["field"] == "headers"
        at_limit = client.post("/v1/memories", content=b"x" * DEFAULT_BODY_LIMIT)
        assert at_limit.status_code == 200 and at_limit.json()["body_bytes"] == DEFAULT_BODY_LIMIT
        over = client.post("/v1/memories", content=b"x" * (DEFAULT_BODY_LIMIT + 1))
        assert over.status_code == 413 and over.json()["error"]["details"] == {"field": "body",
                                                                               "limit_bytes": DEFAULT_BODY_LIMIT}
        chunked = client.post("/v1/memories", content=iter([b"x" * 600_000] * 2))  # no Content-Length
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "too_large"
        batch = client.post("/v1/memories/batch", content=b"x" * (4 * DEFAULT_BODY_LIMIT))
        assert batch.status_code == 200 and batch.json()["body_bytes"] == 4 * DEFAULT_BODY_LIMIT
        over_batch = client.post("/v1/memories/batch", content=b"x" * (16 * DEFAULT_BODY_LIMIT + 1))
        assert over_batch.status_code == 413 and over_batch.json()["error"]["details"]["limit_bytes"] == 16 * DEFAULT_BODY_LIMIT
        # A search body over the default limit: refused at the proxy, the query API never reads it.
        search = client.post("/v1/memories/search", content=b"x" * (10 * DEFAULT_BODY_LIMIT))
        assert search.status_code == 413 and "x-standin" not in search.headers


def test_slow_clients_are_cut_off(stand_in):
    proxy, _ = stand_in  # client_timeout_s=2 for this proxy
    head = cut_off_after(proxy.port, b"GET /v1/memories HTTP/1.1\r\nHost: x\r\n", b"X-Slow: y\r\n", every_s=0.5, limit_s=8)
    assert head is not None and head < 4, f"a client sending one header line every 0.5 s was served for {head} s"
    body = cut_off_after(proxy.port, b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab",
                         b"", every_s=0.5, limit_s=8)
    assert body is not None and body < 4, f"a client that stopped sending its body was kept for {body} s"
    idle = cut_off_after(proxy.port, b"", b"", every_s=0.5, limit_s=8)
    assert idle is not None and idle < 4, "a connection that never sent a request was kept"


def test_an_upstream_500_does_not_fail_the_next_request(stand_in):
    proxy, _ = stand_in
    with httpx.Client(base_url=proxy.url, timeout=10) as one, httpx.Client(base_url=proxy.url, timeout=10) as other:
        for _ in range(30):
            assert one.post("/v1/boom").status_code == 500
            answer = other.post("/v1/memories", json={"text": "x"})  # another user's request, a POST (never retried)
            assert answer.status_code == 200 and answer.headers["x-standin"] == COMMAND, answer.text
            assert one.get("/v1/boom").status_code == 500
            assert other.get("/v1/memories").status_code == 200


def test_posts_after_idle_upstream_connections_time_out_are_answered(tmp_path):
    """uvicorn closes idle connections after its keep-alive; the proxy closes its own first
    (here 1 s against 2 s), so a POST is never written to a connection being closed."""
    from tests.security.proxy_standin import Proxy, Standin

    standins = {name: Standin(name, keep_alive_s=2).start() for name in (COMMAND, QUERY, WEB_EDGE)}
    proxy = Proxy(tmp_path, {name: [s.address] for name, s in standins.items()}, upstream_keepalive_s=1).start()
    try:
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            for pause in (0.9, 1.0, 1.1, 1.9, 2.0, 2.1, 2.5):
                assert client.post("/v1/memories", json={}).status_code == 200
                time.sleep(pause)
                answer = client.post("/v1/memories", json={})
                assert answer.status_code == 200, (pause, answer.status_code, answer.text)
    finally:
        proxy.stop()
        for standin in standins.values():
            standin.stop()


def test_an_unreachable_api_is_a_503_with_retry_after_naming_it_and_no_address(tmp_path):
    from tests.security.proxy_standin import Proxy, Standin, free_port

    web_edge = Standin(WEB_EDGE).start()
    nowhere = f"127.0.0.1:{free_port()}"
    proxy = Proxy(tmp_path, {COMMAND: [nowhere], QUERY: [nowhere], WEB_EDGE: [web_edge.address]}).start()
    try:
        for method, path, service in (("GET", "/v1/memories", QUERY), ("POST", "/v1/memories/search", QUERY),
                                      ("POST", "/v1/memories", COMMAND), ("DELETE", f"/v1/memories/{UUID}", COMMAND)):
            answer = httpx.request(method, f"{proxy.url}{path}", timeout=10)
            assert answer.status_code == 503 and answer.headers["retry-after"] == str(RETRY_AFTER_S), answer.text
            error = answer.json()["error"]
            assert error["code"] == "service_unavailable" and error["details"] == {"service": service}
            assert f"the {service} API" in error["message"]
            assert nowhere not in answer.text and "127.0.0.1" not in answer.text and nowhere.split(":")[1] not in str(
                answer.headers)
    finally:
        proxy.stop()
        web_edge.stop()


def test_no_location_header_names_an_internal_address(stand_in):
    proxy, standins = stand_in
    answer = httpx.get(f"{proxy.url}/v1/redirect", timeout=10)  # the stand-in redirects to its own address
    assert answer.status_code == 307 and answer.headers["location"] == "/v1/elsewhere"
    assert standins[QUERY][0].address not in str(answer.headers)


def test_the_client_address_cannot_be_forged_and_the_host_is_passed_on(stand_in):
    proxy, _ = stand_in
    seen = httpx.get(f"{proxy.url}/v1/memories", headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"},
                     timeout=10).json()["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-real-ip"] == "127.0.0.1"
    assert seen["host"] == f"127.0.0.1:{proxy.port}" and "connection" not in seen  # kept alive upstream


def test_every_request_has_a_correlation_id_the_api_and_the_proxy_share(stand_in):
    proxy, _ = stand_in
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        sent = client.get("/v1/memories", headers={"X-Request-ID": "trace-me-42"}).json()["headers"]
        assert sent["x-request-id"] == "trace-me-42"
        made = client.get("/v1/memories").json()["headers"]["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        unusable = client.get("/v1/memories", headers={"X-Request-ID": "x" * 129}).json()["headers"]["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", unusable)
        for path in ("/healthz", "/no/route", "/v1/..%2Fmetrics"):  # the proxy's own answers carry it too
            assert client.get(path, headers={"X-Request-ID": "own-1"}).headers["x-request-id"] == "own-1", path
        assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz").headers["x-request-id"])


def test_several_processes_per_api_are_balanced_and_a_killed_one_is_invisible(tmp_path):
    with proxied(tmp_path, processes=2) as (proxy, standins):
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            seen = {client.get("/v1/memories").json()["port"] for _ in range(20)}
            assert seen == {s.port for s in standins[QUERY]}
            seen = {client.post("/v1/memories", json={}).json()["port"] for _ in range(20)}
            assert seen == {s.port for s in standins[COMMAND]}
            standins[QUERY][0].stop()
            standins[COMMAND][0].stop()
            for _ in range(30):  # a refused connection is retried on the next process, POSTs included
                for answer in (client.get("/v1/memories"), client.post("/v1/memories/search", json={}),
                               client.post("/v1/memories", json={}), client.delete(f"/v1/memories/{UUID}")):
                    assert answer.status_code == 200, answer.text


# ---- the real stack ----------------------------------------------------------------------

def _user_key(gateway: httpx.Client, user_id: str) -> str:
    answer = gateway.post("/v1/keys", json={"user_id": user_id, "scopes": ["write"]})  # an ordinary write key
    assert answer.status_code == 201, answer.text
    return answer.json()["key"]


def test_path_tricks_through_the_proxy_change_and_list_nothing(gateway, services):
    user = f"proxy-tricks-{uuid.uuid4().hex[:8]}"
    key = _user_key(gateway, user)
    spare_key = _user_key(gateway, user)
    headers = {"Authorization": f"Bearer {key}"}
    ids, token = [], None
    for text in ("I keep my notes in Obsidian", "My build server is called tern"):
        added = gateway.post("/v1/memories", json={"text": text, "user_id": user, "infer": False}, headers=headers)
        assert added.status_code == 202, added.text
        ids.append(added.json()["results"][0]["id"])
        token = added.json()["consistency_token"]
    listed = gateway.get("/v1/memories", params={"user_id": user, "consistency_token": token}, headers=headers)
    assert {m["id"] for m in listed.json()["results"]} == set(ids), listed.text
    prefixes = {key[:12], spare_key[:12]}

    def listed_keys() -> set[str]:
        answer = gateway.get("/v1/keys", params={"user_id": user}, headers=headers)
        assert answer.status_code == 200, answer.text
        return {k["prefix"] for k in answer.json()["results"]}

    deadline = time.monotonic() + 30
    while listed_keys() != prefixes:  # the key projection applies the issue events
        assert time.monotonic() < deadline, listed_keys()
        time.sleep(0.2)

    memory = ids[0]
    tricks = [("DELETE", f"/v1/memories/{memory}/shares/..%2F.."), ("DELETE", f"/v1/memories/{memory}/shares/..%2f..%2F"),
              ("DELETE", f"/v1/memories/..%2F..%2Fv1%2Fmemories?user_id={user}"),
              ("DELETE", f"/v1/memories/{memory}/shares/%2e%2e/%2e%2e"), ("DELETE", f"/v1/memories/{memory}/..%5C..%5C"),
              ("DELETE", f"/v1/memories/{memory}/shares/..%252F..%252F"),
              ("GET", "/v1/memories/..%2F..%2Fv1%2Fkeys"), ("GET", "/v1/..%2Fmetrics"), ("GET", "/v1/..%2Fdocs"),
              ("GET", "/v1/..%2Fopenapi.json"), ("GET", "/v1/memories/%252e%252e%252f%252e%252e%252fv1%252fkeys"),
              ("GET", "/v1/memories/..\\..\\v1\\keys"), ("DELETE", f"/v1/memories/{memory}/shares/../.."),
              ("GET", "/v1/memories/../keys"), ("DELETE", f"/v1/keys/..%2Fkeys?user_id={user}"),
              ("PATCH", f"/v1/memories/{memory}/..%2F{ids[1]}")]
    port = int(services.gateway_url.rsplit(":", 1)[1])
    for method, path in tricks:
        answer = raw_request(port, f"{method} {path} HTTP/1.1".encode(), headers=f"Authorization: Bearer {key}\r\n".encode())
        assert answer.status == 400, (method, path, answer.status, answer.body[:300])
        assert answer.json()["error"]["code"] == "bad_path", (method, path, answer.body[:300])
        assert b"openapi" not in answer.body and b"recallstack_" not in answer.body and b"key_id" not in answer.body

    # Nothing was deleted or changed, and both keys still work.
    after = gateway.get("/v1/memories", params={"user_id": user}, headers=headers)
    assert {m["id"] for m in after.json()["results"]} == set(ids), after.text
    for memory_id in ids:
        one = gateway.get(f"/v1/memories/{memory_id}", params={"user_id": user}, headers=headers)
        assert one.status_code == 200 and one.json()["memory"] in ("I keep my notes in Obsidian",
                                                                   "My build server is called tern"), one.text
    time.sleep(1)  # a revocation, had one been appended, would be applied by now
    assert listed_keys() == prefixes
    for k in (key, spare_key):
        assert gateway.get("/v1/memories", params={"user_id": user}, headers={"Authorization": f"Bearer {k}"}
                           ).status_code == 200


def test_the_proxy_limits_hold_in_front_of_the_real_apis(gateway, services):
    user = f"proxy-limits-{uuid.uuid4().hex[:8]}"
    big = gateway.post("/v1/memories", json={"text": "x" * (DEFAULT_BODY_LIMIT + 10), "user_id": user})
    assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
    search = gateway.post("/v1/memories/search", json={"query": "x" * (2 * DEFAULT_BODY_LIMIT), "user_id": user})
    assert search.status_code == 413 and search.json()["error"]["details"]["field"] == "body"
    header = gateway.get("/v1/memories", params={"user_id": user}, headers={"X-Big": "x" * (HEADER_BUFFER + 1)})
    assert header.status_code == 431 and header.json()["error"]["code"] == "header_too_large"
    unknown = gateway.get("/no/such/path")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert gateway.get("/healthz").json() == {"status": "ok"}
    assert gateway.get("/readyz").json()["status"] in ("ready", "degraded")
    # Trailing slashes and redirects: never a Location with an internal address.
    for method, path in (("POST", "/v1/memories/search/"), ("GET", "/v1/memories/"), ("POST", "/v1/memories/"),
                         ("POST", "/v1/context/"), ("GET", "/v1/graph/")):
        answer = gateway.request(method, path, params={"user_id": user}, json={"query": "x", "user_id": user})
        location = answer.headers.get("location", "")
        assert not any(internal in location for internal in INTERNAL) and "://" not in location, (path, location)


def test_a_slow_client_is_cut_off_by_the_stacks_proxy(services):
    port = int(services.gateway_url.rsplit(":", 1)[1])
    limit = services.proxy_client_timeout_s
    seconds = cut_off_after(port, b"GET /v1/memories HTTP/1.1\r\nHost: x\r\n", b"X-Slow: y\r\n", every_s=2,
                            limit_s=limit + 10)
    assert seconds is not None and seconds < limit + 3, f"still served after {seconds} s (timeout {limit} s)"


def test_the_metrics_of_the_base_url_are_the_web_edges_own(gateway):
    metrics = gateway.get("/metrics")
    assert metrics.status_code == 200
    services = {line.split('service="')[1].split('"')[0] for line in metrics.text.splitlines()
                if line.startswith("recallstack_http_request_seconds_count")}
    assert services <= {"web-edge"}, services  # no API's series (those are on the APIs' own ports)
    samples = [line for line in metrics.text.splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.startswith(("recallstack_kafka_produce", "recallstack_search_source",
                                                              "recallstack_embed"))]  # declared by imports, never observed
