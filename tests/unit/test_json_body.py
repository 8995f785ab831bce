"""The strict JSON body parser (adapters/json_body.py) and its wiring into a FastAPI app."""

from __future__ import annotations

import json
import sys
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from adapters.http_api import ApiError, install_error_handlers
from adapters.json_body import MAX_DEPTH, install_strict_json, parse_json


def refusal(raw, field: str = "") -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_json(raw, field)
    return info.value


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E+999", "1" + "0" * 309,
                                     "-" + "9" * 309, "1" + "0" * 250 + "e99", "1" + "0" * 309 + ".5"])
def test_a_number_no_double_holds_is_422_naming_its_path(literal):
    error = refusal(f'{{"memories": [{{}}, {{"metadata": {{"x": [0, {literal}]}}}}]}}')
    assert (error.status, error.code) == (422, "invalid_request")
    assert error.details["field"] == "memories.1.metadata.x.1"
    assert error.message.startswith("memories.1.metadata.x.1: ")
    assert error.details["errors"][0]["type"] == "non_finite_number"


@pytest.mark.parametrize("literal, value", [("1e308", 1e308), ("-1.7976931348623157e308", -sys.float_info.max),
                                            ("5e-324", 5e-324), ("1e-400", 0.0), (str(2 ** 64), 2 ** 64),
                                            (str(-2 ** 63 - 1), -2 ** 63 - 1), (str(10 ** 100), 10 ** 100),
                                            ("1" + "0" * 308, 10 ** 308), ("-0.0", -0.0)])
def test_finite_numbers_parse_as_usual(literal, value):
    assert parse_json(f'{{"x": {literal}}}'.encode()) == {"x": value}


def test_an_absurdly_long_number_is_refused_without_converting_it():
    began = time.perf_counter()
    error = refusal(b'{"x": 1' + b"0" * 100_000 + b"}")
    assert error.details["field"] == "x" and "longer than" in error.message
    assert time.perf_counter() - began < 0.5


@pytest.mark.parametrize("body, field, kind", [
    (r'{"metadata": {"k": "a\u0000b"}}', "metadata.k", "nul_character"),
    (r'{"metadata": {"a\u0000b": 1}}', "metadata.a\\x00b", "nul_character"),
    (r'{"text": "x\ud800"}', "text", "invalid_unicode"),
    (r'{"messages": [{"content": "\udfff"}]}', "messages.0.content", "invalid_unicode"),
    (r'{"categories": ["ok", "\ud83d"]}', "categories.1", "invalid_unicode"),
    (r'{"k": {"\udc00": 1}}', "k.\\udc00", "invalid_unicode"),
])
def test_nul_and_lone_surrogates_are_422_naming_the_field(body, field, kind):
    error = refusal(body.encode())
    assert (error.status, error.details["field"], error.details["errors"][0]["type"]) == (422, field, kind)
    json.dumps(error.message).encode("utf-8")  # the answer itself is encodable


@pytest.mark.parametrize("body", [r'{"a": "\ud83d\ude00"}', r'{"a": "\\u0000"}', r'{"a": "\\ud800"}',
                                  '{"a": "\uffff\ufffe\u202e\u200b"}', r'{"": {"$where": {"a.b": null}}}'])
def test_what_text_can_hold_passes(body):
    assert parse_json(body.encode()) == json.loads(body)


def test_the_depth_limit_is_exact_and_names_where():
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(at_limit.encode()) is not None
    error = refusal(('{"memories": [{"metadata": ' + '{"a": ' * (MAX_DEPTH - 2) + "1" + "}" * (MAX_DEPTH - 2)
                     + "}]}").encode())
    assert error.status == 422 and error.details["errors"][0]["type"] == "too_deep"
    assert error.details["field"] == "memories.0.metadata" + ".a" * (MAX_DEPTH - 3)
    assert error.details["limit"] == MAX_DEPTH


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 200_000])
def test_deep_nesting_never_recurses(levels):
    began = time.perf_counter()
    error = refusal(b'{"text": ' + b"[" * levels + b"]" * levels + b"}")
    assert error.status == 422 and error.details["field"].startswith("text.0.0")
    assert time.perf_counter() - began < 2


def test_brackets_inside_strings_and_escaped_quotes_do_not_count():
    text = '[' * 40 + '\\"' + '\\\\' + '{' * 40
    assert parse_json(json.dumps({"s": text, "t": [[[1]]]}).encode())["s"] == text
    deep_after_string = '{"s": "a\\\\", "t": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    assert refusal(deep_after_string.encode()).details["field"].startswith("t.0")
    escaped_quote = '{"s": "a\\"[[[[", "t": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert parse_json(escaped_quote.encode())["s"] == 'a"[[[['


def test_the_depth_limit_has_a_position_when_the_path_cannot_be_named():
    error = refusal(b"[1 2 " + b"[" * 40)  # invalid before the deep part
    assert error.status == 422 and error.details["field"] == "body" and error.details["position"] == 5 + MAX_DEPTH - 1


@pytest.mark.parametrize("raw, problem", [(b'{"text": ', "Expecting value"), (b'{"a": "caf\xe9"}', "not UTF-8"),
                                          (b'{"a": "\xed\xa0\x80"}', "not UTF-8"), (b"", "Expecting value"),
                                          (b'{"a": 1} x', "Extra data"), (b'{"a": "tab\there"}', "control")])
def test_what_is_not_json_is_400_invalid_json(raw, problem):
    error = refusal(raw)
    assert (error.status, error.code) == (400, "invalid_json") and problem in error.message


def test_a_byte_order_mark_is_ignored():
    assert parse_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_json_inside_a_field_is_422_naming_the_field():
    assert refusal('{"agent_id": NaN}', "filters").details["field"] == "filters.agent_id"
    assert refusal('{"agent_id": ', "filters").status == 422
    assert refusal('{"k": "\ud800"}', "filters").details["field"] == "filters.k"  # str input: raw surrogates too


def test_a_large_batch_parses_quickly():
    body = json.dumps({"memories": [{"text": "x" * 200, "embedding": [0.0123456789] * 384, "metadata": {"a": [1, {}]}}
                                    for _ in range(1_000)]}).encode()
    began = time.perf_counter()
    parse_json(body)
    assert time.perf_counter() - began < 1.5


class Thing(BaseModel):
    name: str
    score: float = 0.0


def app_with_a_body_route() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)  # installs the strict parser too

    @app.post("/things")
    async def things(thing: Thing):
        return {"name": thing.name, "score": thing.score}

    @app.post("/bodiless")
    async def bodiless():
        return {"ok": True}
    return app


def test_the_route_class_answers_in_the_error_shape():
    client = TestClient(app_with_a_body_route())
    answer = client.post("/things", content=b'{"name": "a", "score": NaN}', headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["field"] == "score"
    answer = client.post("/things", content=b'{"name": "a\\u0000"}')  # no content type: parsed as JSON too
    assert answer.status_code == 422 and answer.json()["error"]["details"]["field"] == "name"
    answer = client.post("/things", content=b"[" * 5000, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"]["details"]["errors"][0]["type"] == "too_deep"
    answer = client.post("/things", content=b'{"name": ', headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    answer = client.post("/things", json={"name": "a", "score": 1e308})
    assert answer.status_code == 200 and answer.json() == {"name": "a", "score": 1e308}
    answer = client.post("/things", content=b'{"name": "a"}', headers={"content-type": "application/merge-patch+json"})
    assert answer.status_code == 200


def test_a_route_without_a_body_ignores_what_is_sent():
    client = TestClient(app_with_a_body_route())
    assert client.post("/bodiless", content=b'{"x": NaN}', headers={"content-type": "application/json"}).status_code \
        == 200


def test_the_parser_must_be_installed_before_the_routes():
    app = FastAPI()

    @app.post("/late")
    async def late(thing: Thing):
        return {}
    with pytest.raises(RuntimeError, match="before"):
        install_strict_json(app)
