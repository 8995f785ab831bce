"""The request guard both APIs install (adapters/request_guard.py), on a small app: header
bytes, methods, body limits (with Content-Length and chunked), trailing slashes. The real
APIs are probed the same way in tests/security/test_no_5xx.py."""

from __future__ import annotations

import random
import string

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from adapters.http_api import install_error_handlers, install_http_metrics, install_request_guard
from adapters.request_guard import METHODS, method_label

LIMIT = 1_000


def guarded_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_request_guard(app, {"/big": 10 * LIMIT}, LIMIT)
    install_http_metrics(app, "guard-test")

    @app.post("/v1/things")
    async def things(request: Request):
        return {"bytes": len(await request.body()), "path": request.url.path}

    @app.get("/v1/things")
    async def list_things():
        return {"things": []}

    @app.post("/big")
    async def big(request: Request):
        return {"bytes": len(await request.body())}

    return app


def error(answer) -> dict:
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    return answer.json()["error"]


def test_a_non_ascii_byte_in_any_header_is_400_naming_it():
    with TestClient(guarded_app()) as client:
        for name in ("Authorization", "X-Consistency-Token", "Idempotency-Key", "X-Request-ID", "User-Agent"):
            answer = client.get("/v1/things", headers={name: "ok\xe9\xff".encode("latin-1")})
            assert answer.status_code == 400, (name, answer.text)
            assert error(answer)["code"] == "invalid_header"
            assert error(answer)["details"]["field"].lower() == name.lower()
        assert client.get("/v1/things", headers={"X-Fine": "plain ascii"}).status_code == 200


def test_an_unknown_method_is_405_with_the_paths_methods():
    with TestClient(guarded_app()) as client:
        for method in ("FOO", "PROPFIND", "BREW", "TRACE", "CONNECT"):
            answer = client.request(method, "/v1/things")
            assert answer.status_code == 405, (method, answer.text)
            assert error(answer)["code"] == "method_not_allowed"
        assert answer.headers["Allow"] == "GET, POST"
        assert client.request("FOO", "/nowhere").status_code == 405


def test_a_known_method_a_route_lacks_is_405_json_too():
    with TestClient(guarded_app()) as client:
        answer = client.delete("/v1/things")
        assert answer.status_code == 405 and error(answer)["code"] == "method_not_allowed"


def test_metric_labels_stay_a_fixed_set_whatever_the_method():
    def methods() -> set[str]:
        return {sample.labels["method"] for metric in REGISTRY.collect()
                if metric.name == "recallstack_http_request_seconds"
                for sample in metric.samples if sample.labels.get("service") == "guard-test"}

    picked = random.Random(19)
    with TestClient(guarded_app()) as client:
        for _ in range(20):
            client.request("".join(picked.choices(string.ascii_uppercase, k=picked.randint(3, 12))), "/v1/things")
        client.get("/v1/things")
    assert methods() <= set(METHODS) | {"other"} and "other" in methods()
    assert method_label("GET") == "GET" and method_label("get") == "other" and method_label("X" * 100) == "other"


def test_a_body_over_the_limit_is_413_by_content_length_or_while_chunked():
    with TestClient(guarded_app()) as client:
        assert client.post("/v1/things", content=b"x" * LIMIT).json()["bytes"] == LIMIT
        answer = client.post("/v1/things", content=b"x" * (LIMIT + 1))
        assert answer.status_code == 413 and error(answer)["details"] == {"field": "body", "limit": LIMIT}
        assert client.post("/big", content=b"x" * (5 * LIMIT)).status_code == 200  # a path's own limit

        def chunks(total: int):  # (that the server stops reading at the limit: tests/security, on a socket)
            for _ in range(total // 100):
                yield b"y" * 100

        answer = client.post("/v1/things", content=chunks(100 * LIMIT))  # no Content-Length: chunked
        assert answer.status_code == 413 and error(answer)["code"] == "too_large", answer.text
        answer = client.post("/v1/things", content=chunks(LIMIT))
        assert answer.status_code == 200 and answer.json()["bytes"] == LIMIT


def test_a_trailing_slash_is_the_same_route_and_never_a_redirect():
    with TestClient(guarded_app(), follow_redirects=False) as client:
        answer = client.post("/v1/things/", content=b"{}")
        assert answer.status_code == 200 and answer.json()["path"] == "/v1/things"
        assert client.get("/v1/things/").status_code == 200
        answer = client.get("/v1/things//")  # only one slash is forgiven; still no redirect
        assert answer.status_code == 404 and "location" not in answer.headers


def test_an_error_quoting_a_lone_surrogate_is_still_an_answer():
    from adapters.http_api import error_response

    answer = error_response(422, "invalid_request", "filters.metadata.\ud800: bad", {"field": "filters.\ud800"})
    assert b"\\\\ud800" in answer.body
