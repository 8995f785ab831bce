"""The export file format (cli/memory_file.py): what export writes reads back, and a bad
header or line is refused with its line number and field, before anything is imported."""

from __future__ import annotations

import json
import math

import pytest

from cli.memory_file import (FORMAT, FormatError, Header, add_body, batches, header_line, idempotency_key, memory_line,
                             read_file)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXPORTED_AT = "2024-06-01T12:00:00+00:00"
IDS = ["6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a1%d" % i for i in range(10)]
UNIT = [1 / math.sqrt(4)] * 4


def memory(i: int = 0, **over) -> dict:
    doc = {"id": IDS[i], "memory": f"fact {i}", "user_id": "alice", "metadata": {"topic": "t"},
           "categories": ["c"], "importance": 0.5, "agent_id": "cursor", "run_id": None, "app_id": None,
           "state": "active", "created_at": "2024-05-01T10:00:00+00:00", "updated_at": "2024-05-01T10:00:00+00:00",
           "occurred_at": "2023-05-08T13:56:00+00:00", "version": 1, "access_count": 3,
           "embedding": UNIT, "embedding_model": MODEL}
    doc.update(over)
    return doc


def export(memories: list[dict], vectors: bool = False, count: int | None = None, **header_over) -> bytes:
    header = Header("alice", EXPORTED_AT, MODEL, 4, len(memories) if count is None else count)
    head = header_line(header)
    if header_over:
        head = json.dumps({**header.as_dict(), **header_over}) + "\n"
    return (head + "".join(memory_line(m, vectors) for m in memories)).encode()


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def problems(data: bytes, user: str = "bob") -> list[tuple[int, str | None]]:
    with pytest.raises(FormatError) as info:
        read_file(data, user)
    return [(p.line, p.field) for p in info.value.problems]


def test_what_export_writes_reads_back():
    data = export([memory(0), memory(1, metadata={}, categories=[], agent_id=None)], vectors=True)
    header, first, _ = lines(data)
    assert header == {"format": FORMAT, "version": 2, "user_id": "alice", "exported_at": EXPORTED_AT,
                      "embedding_model": MODEL, "dim": 4, "count": 2}
    # The API's bookkeeping (user_id, version, access_count) is not part of the file.
    assert set(first) == {"id", "memory", "metadata", "categories", "importance", "agent_id", "run_id", "app_id",
                          "state", "created_at", "updated_at", "occurred_at", "expires_at", "embedding",
                          "embedding_model"}
    file = read_file(data, "bob")
    assert [e.id for e in file.entries] == IDS[:2] and [e.line for e in file.entries] == [2, 3]
    assert file.header.count == 2 and file.header.user_id == "alice"
    assert file.entries[0].embedding == UNIT and file.entries[0].embedding_model == MODEL
    assert len(file.digest) == 64
    assert "embedding" not in lines(export([memory(0)]))[1]  # without --include-vectors


def test_add_body_keeps_what_matters_and_records_the_origin():
    body = add_body(memory(0), "bob", EXPORTED_AT, with_vector=False)
    assert body == {"user_id": "bob", "text": "fact 0", "infer": False, "agent_id": "cursor", "importance": 0.5,
                    "occurred_at": "2023-05-08T13:56:00+00:00", "categories": ["c"],
                    "metadata": {"topic": "t", "imported_from": {"id": IDS[0], "exported_at": EXPORTED_AT}}}
    with_vector = add_body(memory(0), "bob", EXPORTED_AT, with_vector=True)
    assert (with_vector["embedding"], with_vector["embedding_model"]) == (UNIT, MODEL)
    assert "state" not in body  # forgotten / archived are not carried over


def test_an_empty_export_is_valid():
    assert read_file(export([]), "bob").entries == []


@pytest.mark.parametrize("over, field", [
    ({"format": "mem0"}, "format"),
    ({"version": 3}, "version"),
    ({"version": "1"}, "version"),
    ({"count": -1}, "count"),
    ({"dim": 0}, "dim"),
    ({"exported_at": "yesterday"}, "exported_at"),
    ({"user_id": "al ice"}, "user_id"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_header_is_line_1_naming_the_field(over, field):
    assert (1, field) in problems(export([memory(0)], **over))


def test_a_missing_header_field_is_named():
    head = {"format": FORMAT, "version": 1, "user_id": "alice", "exported_at": EXPORTED_AT, "dim": 4, "count": 0}
    assert problems((json.dumps(head) + "\n").encode()) == [(1, "embedding_model")]


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"not json\n", "not valid JSON"),
    (b"[1, 2]\n", "expected a JSON object"),
])
def test_no_header_at_all(data, message):
    with pytest.raises(FormatError, match=message) as info:
        read_file(data, "bob")
    assert info.value.problems[0].line == 1


@pytest.mark.parametrize("over, field", [
    ({"id": "not-a-uuid"}, "id"),
    ({"id": None}, "id"),
    ({"memory": None}, "memory"),
    ({"memory": 5}, "memory"),
    ({"memory": "   "}, "memory"),
    ({"memory": "x" * 32_001}, "memory"),
    ({"memory": "bell\x07"}, "memory"),
    ({"importance": 1.5}, "importance"),
    ({"importance": "high"}, "importance"),
    ({"metadata": [1, 2]}, "metadata"),
    ({"metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "metadata"),
    ({"categories": "work"}, "categories"),
    ({"agent_id": "a/b"}, "agent_id"),
    ({"state": "deleted"}, "state"),
    ({"occurred_at": "last tuesday"}, "occurred_at"),
    ({"created_at": 12}, "created_at"),
    ({"expires_at": "when it rains"}, "expires_at"),
    ({"embedding": [0.5] * 3}, "embedding"),  # the header says 4 dimensions for this model
    ({"embedding": [1.0, 1.0, 1.0, 1.0]}, "embedding"),  # not L2-normalised
    ({"embedding": ["a"] * 4}, "embedding"),
    ({"embedding_model": None}, "embedding_model"),
])
def test_a_bad_line_names_its_number_and_field(over, field):
    data = export([memory(0), memory(1), memory(2, **over)], vectors=True)
    found = problems(data)
    assert found and all(line == 4 for line, _ in found), found
    assert any(f == field or (f or "").startswith(field + ".") for _, f in found), found


def test_an_unknown_field_in_a_line_is_named():
    raw = export([memory(0)]).decode().splitlines()
    doc = json.loads(raw[1])
    doc["colour"] = "red"
    assert problems(f"{raw[0]}\n{json.dumps(doc)}\n".encode()) == [(2, "colour")]


def test_broken_lines_are_named_and_every_problem_is_reported():
    raw = export([memory(i) for i in range(5)]).decode().splitlines()
    raw[2] = raw[2][:40]  # cut short: line 3
    raw[4] = ""  # an empty line in the middle: line 5
    data = ("\n".join(raw) + "\n").encode()
    assert problems(data) == [(3, None), (5, None)]
    with pytest.raises(FormatError, match=r"line 3: not valid JSON.*line 5: empty line"):
        read_file(data, "bob")


def test_invalid_utf8_is_named():
    data = export([memory(0)]) + b'{"id": "caf\xe9"}\n'
    assert (3, None) in problems(data)


def test_duplicate_ids_are_refused():
    assert problems(export([memory(0), memory(1), memory(0)])) == [(4, "id")]


def test_a_truncated_file_disagrees_with_the_header_count():
    assert problems(export([memory(0), memory(1)], count=3)) == [(1, "count")]


def test_the_target_user_is_checked_too():
    assert (2, "user_id") in problems(export([memory(0)]), user="not a user")


def test_metadata_grown_past_the_limit_by_imported_from_is_refused():
    """The add body is what is checked: the origin added to the metadata must fit too."""
    room = 16_384 - len(json.dumps({"k": ""}))
    assert (2, "metadata") in problems(export([memory(0, metadata={"k": "x" * (room - 10)})]))


def test_problems_are_capped_and_counted():
    data = export([memory(i, importance=9) for i in range(10)])
    with pytest.raises(FormatError) as info:
        read_file(data, "bob")
    assert info.value.total == 10 and "(and 7 more problems)" in str(info.value)


def test_batches_respect_count_and_bytes_and_are_deterministic():
    bodies = [{"text": "x" * 100, "i": i} for i in range(10)]
    assert [len(b) for b in batches(bodies, 4, 10_000)] == [4, 4, 2]
    assert [len(b) for b in batches(bodies, 100, 400)] == [3, 3, 3, 1]
    assert batches(bodies, 4, 10_000) == batches(list(bodies), 4, 10_000)
    assert batches([], 4, 10_000) == []
    assert [len(b) for b in batches([{"text": "y" * 1_000}], 4, 10)] == [1]  # one too big still goes alone


def test_idempotency_keys_depend_on_the_file_and_the_batch():
    a, b = "a" * 64, "b" * 64
    assert idempotency_key(a, 0) == idempotency_key(a, 0)
    assert len({idempotency_key(a, 0), idempotency_key(a, 1), idempotency_key(b, 0)}) == 3
    assert len(idempotency_key(a, 999)) <= 255


def test_an_expiry_travels_with_its_memory_and_a_passed_one_is_told_apart():
    from datetime import datetime, timezone
    data = export([memory(0, expires_at="2030-01-01T00:00:00+00:00"), memory(1, expires_at="2024-01-01T00:00:00"),
                   memory(2)])
    file = read_file(data, "bob")  # a passed expiry is no format problem: the import judges it at its time
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert [e.expired(now) for e in file.entries] == [False, True, False]  # a naive time is UTC
    assert add_body(file.entries[0].doc, "bob", EXPORTED_AT, with_vector=False)["expires_at"] == \
        "2030-01-01T00:00:00+00:00"
    assert "expires_at" not in add_body(file.entries[2].doc, "bob", EXPORTED_AT, with_vector=False)


def test_a_version_1_file_still_reads_and_has_no_expiry():
    head = {"format": FORMAT, "version": 1, "user_id": "alice", "exported_at": EXPORTED_AT,
            "embedding_model": MODEL, "dim": 4, "count": 1}
    line = {k: v for k, v in memory(0).items() if k not in ("user_id", "version", "access_count", "embedding",
                                                              "embedding_model")}
    file = read_file((json.dumps(head) + "\n" + json.dumps(line) + "\n").encode(), "bob")
    assert file.header.version == 1 and [e.id for e in file.entries] == [IDS[0]]
    with_expiry = json.dumps({**line, "expires_at": "2030-01-01T00:00:00+00:00"})
    assert problems((json.dumps(head) + "\n" + with_expiry + "\n").encode()) == [(2, "expires_at")]
