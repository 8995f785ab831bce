"""`recallstack import --from-mem0`: mem0's get_all / export JSON as a recallstack export file
(cli/mem0_file.py), which the import then checks and writes like any export."""

import json

import pytest

from cli.mem0_file import export_file
from cli.memory_file import FormatError, add_body, read_file

TEA = {"id": "6f1c7c2e-8f59-4f5e-9a63-4c1b0a3c2d11", "memory": "Prefers green tea", "user_id": "alice",
       "agent_id": "helper", "run_id": None, "app_id": "notes", "hash": "abc", "metadata": {"topic": "drinks"},
       "categories": ["food"], "immutable": False, "expiration_date": None,
       "created_at": "2024-07-20T01:07:56.478419-07:00", "updated_at": "2024-07-21T01:07:56-07:00"}
DOG = {"id": "mem_42", "memory": "Has a dog called Rex", "user_id": "alice", "metadata": None, "categories": None,
       "created_at": "2024-07-22T10:00:00Z", "updated_at": "2024-07-22T10:00:00Z"}


@pytest.mark.parametrize("data", [
    json.dumps({"count": 2, "next": None, "previous": None, "results": [TEA, DOG]}),  # get_all (v3)
    json.dumps([TEA, DOG]),  # get_all (older clients): a list
    json.dumps({"memories": [TEA, DOG]}),  # the export API
    json.dumps({"results": [TEA]}) + "\n" + json.dumps({"results": [DOG]}) + "\n",  # one page per line
    json.dumps(TEA) + "\n\n" + json.dumps(DOG),  # one memory per line
])
def test_every_shape_of_a_mem0_export_becomes_an_importable_file(data):
    file = read_file(export_file(data.encode()), "bob")
    tea, dog = (entry.doc for entry in file.entries)
    body = add_body(tea, "bob", file.header.exported_at, with_vector=False)
    assert body["user_id"] == "bob" and body["text"] == "Prefers green tea" and body["categories"] == ["food"]
    assert (body["agent_id"], body["app_id"], body["occurred_at"]) == ("helper", "notes", TEA["created_at"])
    assert body["metadata"]["topic"] == "drinks" and body["metadata"]["imported_from"]["id"] == TEA["id"]
    assert dog["id"] != "mem_42" and dog["metadata"] == {} and dog["categories"] == []  # a stable UUID is made
    assert export_file(data.encode()).split(b"\n")[2] == export_file(data.encode()).split(b"\n")[2]


@pytest.mark.parametrize("data, line, field", [
    (b'{"results": [{"id": "x"}]}', 1, "memory"),
    (b'{"count": 0}', 1, None),
    (b'{"results": []}', 1, None),
    (json.dumps(TEA).encode() + b"\nnot json\n", 2, None),
    (json.dumps({"results": [TEA, TEA]}).encode(), 3, "id"),  # the same memory twice (read_file: line 3 of the file)
])
def test_what_is_not_a_mem0_export_is_refused_naming_the_line(data, line, field):
    with pytest.raises(FormatError) as caught:
        read_file(export_file(data), "bob")
    assert (caught.value.problems[0].line, caught.value.problems[0].field) == (line, field)


def test_mem0s_expiration_date_becomes_the_memorys_expiry_inclusive():
    file = read_file(export_file(json.dumps([dict(TEA, expiration_date="2030-03-01"), DOG]).encode()), "bob")
    tea, dog = (entry.doc for entry in file.entries)
    assert tea["expires_at"] == "2030-03-02T00:00:00+00:00"  # there all through March 1st (UTC), as in mem0
    assert "expires_at" not in dog or dog["expires_at"] is None
    with pytest.raises(FormatError) as caught:
        export_file(json.dumps([dict(TEA, expiration_date="soon")]).encode())
    assert caught.value.problems[0].field == "expiration_date"
