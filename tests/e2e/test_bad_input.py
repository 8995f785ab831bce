"""A table of bad inputs: each gets its status and error code, names the problem, and
appends no event to the log (log.unchanged: only the workers' own events may land meanwhile)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

OK = {"text": "fine", "user_id": "alice"}
MEMORY = "3f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"

# (name, method, path, body or raw bytes, extra kwargs, status, code, what the message must name)
CASES = [
    ("missing user_id", "POST", "/v1/memories", {"text": "x"}, {}, 422, "invalid_request", "user_id"),
    ("missing text and messages", "POST", "/v1/memories", {"user_id": "u"}, {}, 422, "invalid_request", "text"),
    ("both text and messages", "POST", "/v1/memories",
     {"user_id": "u", "text": "a", "messages": [{"role": "user", "content": "b"}]}, {}, 422, "invalid_request", "text"),
    ("text is a number", "POST", "/v1/memories", {"user_id": "u", "text": 5}, {}, 422, "invalid_request", "text"),
    ("user_id is a list", "POST", "/v1/memories", {"user_id": ["u"], "text": "x"}, {}, 422, "invalid_request", "user_id"),
    ("blank text", "POST", "/v1/memories", {"user_id": "u", "text": " \n "}, {}, 422, "invalid_request", "text"),
    ("oversize text", "POST", "/v1/memories", {"user_id": "u", "text": "x" * 32_001}, {}, 413, "too_large", "text"),
    ("oversize metadata", "POST", "/v1/memories", {**OK, "metadata": {"b": "y" * 17_000}}, {}, 413, "too_large",
     "metadata"),
    ("metadata too deep", "POST", "/v1/memories", {**OK, "metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, {},
     422, "invalid_request", "metadata"),
    ("metadata not an object", "POST", "/v1/memories", {**OK, "metadata": [1, 2]}, {}, 422, "invalid_request",
     "metadata"),
    ("oversize batch", "POST", "/v1/memories/batch", {"memories": [OK] * 1001}, {}, 413, "too_large", "memories"),
    ("empty batch", "POST", "/v1/memories/batch", {"memories": []}, {}, 422, "invalid_request", "memories"),
    ("one bad item spoils the batch", "POST", "/v1/memories/batch", {"memories": [OK, {"user_id": "u"}, OK]}, {},
     422, "invalid_request", "memories.1"),
    ("invalid JSON", "POST", "/v1/memories", b'{"text": "x", "user_id": ', {}, 400, "invalid_json", "JSON"),
    ("invalid UTF-8", "POST", "/v1/memories", b'{"text": "caf\xe9", "user_id": "u"}', {}, 400, "invalid_json", "JSON"),
    ("control character in text", "POST", "/v1/memories", {"user_id": "u", "text": "bell\x07"}, {}, 422,
     "invalid_request", "control"),
    ("unknown field", "POST", "/v1/memories", {**OK, "colour": "red"}, {}, 422, "invalid_request", "colour"),
    ("negative importance", "POST", "/v1/memories", {**OK, "importance": -0.1}, {}, 422, "invalid_request",
     "importance"),
    ("importance above 1", "POST", "/v1/memories", {**OK, "importance": 1.5}, {}, 422, "invalid_request", "importance"),
    ("id with path separator", "POST", "/v1/memories", {"user_id": "../etc/passwd", "text": "x"}, {}, 422,
     "invalid_request", "user_id"),
    ("id with a space", "POST", "/v1/memories", {"user_id": "al ice", "text": "x"}, {}, 422, "invalid_request",
     "user_id"),
    ("id too long", "POST", "/v1/memories", {"user_id": "a" * 129, "text": "x"}, {}, 422, "invalid_request", "user_id"),
    ("bad agent_id", "POST", "/v1/memories", {**OK, "agent_id": "a/b"}, {}, 422, "invalid_request", "agent_id"),
    ("bad occurred_at", "POST", "/v1/memories", {**OK, "occurred_at": "last tuesday"}, {}, 422, "invalid_request",
     "occurred_at"),
    ("unknown message role", "POST", "/v1/memories", {"user_id": "u", "messages": [{"role": "robot", "content": "x"}]},
     {}, 422, "invalid_request", "role"),
    ("only system messages", "POST", "/v1/memories", {"user_id": "u", "messages": [{"role": "system", "content": "x"}]},
     {}, 422, "invalid_request", "messages"),
    ("too many categories", "POST", "/v1/memories", {**OK, "categories": [f"c{i}" for i in range(33)]}, {}, 422,
     "invalid_request", "categories"),
    ("body over 1 MiB", "POST", "/v1/memories", {**OK, "metadata": {"k": "v"}, "pad": "x" * (1024 * 1024)}, {}, 413,
     "too_large", "body"),
    ("update nothing", "PATCH", f"/v1/memories/{MEMORY}", {}, {"params": {"user_id": "u"}}, 422, "invalid_request",
     "text"),
    ("update without user_id", "PATCH", f"/v1/memories/{MEMORY}", {"text": "x"}, {}, 422, "invalid_request", "user_id"),
    ("update a malformed id", "PATCH", "/v1/memories/not-a-uuid", {"text": "x"}, {"params": {"user_id": "u"}}, 422,
     "invalid_request", "memory_id"),
    ("delete a malformed id", "DELETE", "/v1/memories/12345;drop", None, {"params": {"user_id": "u"}}, 422,
     "invalid_request", "memory_id"),
    ("delete scope without user_id", "DELETE", "/v1/memories", None, {}, 422, "invalid_request", "user_id"),
    ("malformed consistency token", "PATCH", f"/v1/memories/{MEMORY}", {"text": "x"},
     {"params": {"user_id": "u"}, "headers": {"X-Consistency-Token": "nope"}}, 400, "invalid_request",
     "consistency_token"),
    # JSON may escape a lone surrogate; no UTF-8 text can hold one (these were 500s, or 503s of search)
    ("lone surrogate in text", "POST", "/v1/memories", {"user_id": "u", "text": "a\ud800"}, {}, 422,
     "invalid_request", "text"),
    ("lone surrogate in a message", "POST", "/v1/memories", {"user_id": "u", "infer": False,
                                                              "messages": [{"role": "user", "content": "\udfff"}]},
     {}, 422, "invalid_request", "messages.0.content"),
    ("lone surrogate in a category", "POST", "/v1/memories", {**OK, "categories": ["\ud800"]}, {}, 422,
     "invalid_request", "categories"),
    ("lone surrogate in metadata", "POST", "/v1/memories", {**OK, "metadata": {"k": "\ud800"}}, {}, 422,
     "invalid_request", "metadata"),
    ("lone surrogate in a search filter", "POST", "/v1/memories/search",
     {"query": "x", "user_id": "u", "filters": {"agent_id": "\ud800"}}, {}, 422, "invalid_request", "filters.agent_id"),
    ("lone surrogate in a list filter", "GET", "/v1/memories", None,
     {"params": {"user_id": "u", "filters": '{"metadata": {"k": "\\ud800"}}'}}, 422, "invalid_request",
     "filters.metadata.k"),
    # No read model can hold NUL (the projector dead-lettered these: a revocation was lost)
    ("NUL in a metadata value", "POST", "/v1/memories", {**OK, "metadata": {"k": ["a\x00b"]}}, {}, 422,
     "invalid_request", "metadata"),
    ("NUL in a revocation reason", "DELETE", f"/v1/keys/{MEMORY}", None, {"params": {"reason": "a\x00b"}}, 422,
     "invalid_request", "reason"),
    ("control character in an erasure reason", "DELETE", "/v1/users/u", None,
     {"params": {"confirm": "true", "reason": "a\x1bb"}}, 422, "invalid_request", "reason"),
    # Strict JSON (adapters/json_body.py): what Python's json accepts but no read model holds. These
    # were acknowledged and then dead-lettered by the Postgres projector (jsonb refuses them).
    ("NaN in metadata", "POST", "/v1/memories", b'{"text": "x", "user_id": "u", "metadata": {"x": NaN}}', {}, 422,
     "invalid_request", "metadata.x"),
    ("-Infinity deep in metadata", "POST", "/v1/memories",
     b'{"text": "x", "user_id": "u", "metadata": {"x": [1, {"y": -Infinity}]}}', {}, 422, "invalid_request",
     "metadata.x.1.y"),
    ("1e400 (inf) in metadata", "POST", "/v1/memories", b'{"text": "x", "user_id": "u", "metadata": {"x": 1e400}}', {},
     422, "invalid_request", "metadata.x"),
    ("an integer beyond a double in metadata", "POST", "/v1/memories",
     b'{"text": "x", "user_id": "u", "metadata": {"x": 1' + b"0" * 400 + b"}}", {}, 422, "invalid_request",
     "metadata.x"),
    ("Infinity as importance", "POST", "/v1/memories", b'{"text": "x", "user_id": "u", "importance": Infinity}', {},
     422, "invalid_request", "importance"),
    ("NaN as a string for importance", "POST", "/v1/memories", {**OK, "importance": "NaN"}, {}, 422,
     "invalid_request", "importance"),
    ("NaN in one batch item: nothing appended", "POST", "/v1/memories/batch",
     b'{"memories": [{"text": "a", "user_id": "u"}, {"text": "b", "user_id": "u", "metadata": {"x": NaN}}]}', {},
     422, "invalid_request", "memories.1.metadata.x"),
    ("a batch item with only a system message", "POST", "/v1/memories/batch",
     {"memories": [OK, {"user_id": "u", "infer": False, "messages": [{"role": "system", "content": "x"}]}]}, {}, 422,
     "invalid_request", "memories.1.messages"),
    ("NaN in a PATCH", "PATCH", f"/v1/memories/{MEMORY}", b'{"metadata": {"x": NaN}}', {"params": {"user_id": "u"}},
     422, "invalid_request", "metadata.x"),
    ("NUL in a metadata key", "POST", "/v1/memories", {**OK, "metadata": {"a\x00b": 1}}, {}, 422, "invalid_request",
     "metadata"),
    ("lone surrogate in a key name", "POST", "/v1/keys", {"scopes": ["read"], "name": "k\ud800"}, {}, 422,
     "invalid_request", "name"),
    ("body nested 500 deep", "POST", "/v1/memories",
     b'{"text": "x", "user_id": "u", "metadata": ' + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}", {}, 422,
     "invalid_request", "metadata.a.a"),
    ("body nested 200,000 deep", "POST", "/v1/memories/batch", b"[" * 200_000 + b"]" * 200_000, {}, 422,
     "invalid_request", "nested deeper than 32"),
    ("a vector component of 1e308", "POST", "/v1/memories",
     {**OK, "embedding": [1e308, 1e308], "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}, {}, 422,
     "invalid_request", "embedding"),
    ("occurred_at before year 1 in UTC", "POST", "/v1/memories", {**OK, "occurred_at": "0001-01-01T00:00:00+14:00"},
     {}, 422, "invalid_request", "occurred_at"),
    ("NaN as a search threshold", "POST", "/v1/memories/search",
     b'{"query": "x", "user_id": "u", "threshold": NaN}', {}, 422, "invalid_request", "threshold"),
    ("a search filter nested 500 deep", "POST", "/v1/memories/search",
     b'{"query": "x", "user_id": "u", "filters": ' + b'{"AND": [' * 250 + b"{}" + b"]}" * 250 + b"}", {}, 422,
     "invalid_request", "filters.AND.0"),
]


@pytest.mark.parametrize("name, method, path, body, extra, status, code, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_appends_nothing(gateway, log, name, method, path, body, extra, status, code, names):
    log.mark()
    kwargs = dict(extra)
    if isinstance(body, bytes):
        kwargs["content"], kwargs["headers"] = body, {"content-type": "application/json"}
    elif body is not None:
        kwargs["content"] = json.dumps(body)
        kwargs["headers"] = {"content-type": "application/json", **extra.get("headers", {})}
    answer = gateway.request(method, path, **kwargs)
    assert answer.status_code == status, answer.text[:500]
    error = answer.json()["error"]
    assert error["code"] == code
    assert names.lower() in json.dumps(error).lower(), error
    assert log.unchanged(), "a refused request appended an event"


def test_the_table_covers_at_least_25_kinds():
    assert len(CASES) >= 25
