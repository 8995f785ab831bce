"""The SDK checks every id before it builds a request (issue 19): a memory id is a UUID,
user/agent/run/app ids match the API's id pattern, and a path segment is always one
percent-encoded UUID. A refused value raises InvalidRequest naming the argument and sends
nothing (the MockTransport records every request that would have left)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest

from domain import identifiers
from recallstack import AsyncClient, Client, InvalidRequest
from recallstack import ids
from tests.conftest import REPO

MEMORY_ID = "3f1c2a9e-0b7d-4c41-9a77-1f0e5d2b8c10"

# What a prompt-injected agent or a careless caller might pass as a memory id.
PATH_TRICKS = [
    "../../v1/memories", "..%2F..%2Fv1%2Fmemories", "..%2F..", "..", ".", "/", "",
    f"{MEMORY_ID}/../../keys", f"../../v1/keys/{MEMORY_ID}", f"{MEMORY_ID}/shares", f"{MEMORY_ID}/restore",
    f"{MEMORY_ID}?user_id=other", f"{MEMORY_ID}#", f"{MEMORY_ID}#x", f"{MEMORY_ID}%00", f"{MEMORY_ID}\x00",
    f" {MEMORY_ID}", f"{MEMORY_ID} ", f"{MEMORY_ID}\n", f"\t{MEMORY_ID}", f"{MEMORY_ID}%20",
    "{" + MEMORY_ID + "}", f"urn:uuid:{MEMORY_ID}", MEMORY_ID.replace("-", ""), MEMORY_ID[:-1], MEMORY_ID + "0",
    MEMORY_ID.replace("3", "\uff13"),  # a full-width digit
    "not-a-uuid", "null",
]
NOT_STRINGS = [None, 123, uuid.UUID(MEMORY_ID).int, ["x"], {"id": MEMORY_ID}]
BAD_IDS = ["", " alice", "alice ", "alice\n", "al ice", "../bob", "bob/..", "alice?x=1", "alice#", "-alice",
           "_alice", "a" * 129, "al%2Fice", "älice", "alice\x00"]


class Recorder:
    def __init__(self):
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"id": MEMORY_ID, "results": [], "history": [],
                                         "consistency_token": "recallstack.memory.events/0:1"})


@pytest.fixture
def sent():
    return Recorder()


@pytest.fixture
def client(sent, monkeypatch):
    monkeypatch.delenv("RECALLSTACK_API_KEY", raising=False)
    with Client("http://recallstack.test", transport=httpx.MockTransport(sent), user_id="alice") as c:
        yield c


def test_the_sdk_patterns_are_the_apis():
    """The SDK repeats the API's patterns (it must import without the server): kept equal."""
    assert "^" + ids.UUID_RE.pattern + "$" == identifiers.UUID_PATTERN
    assert "^" + ids.ID_RE.pattern + "$" == identifiers.ID_PATTERN


@pytest.mark.parametrize("memory_id", PATH_TRICKS + NOT_STRINGS, ids=repr)
@pytest.mark.parametrize("method", ["get", "update", "delete", "restore", "history"])
def test_a_memory_id_that_is_not_a_uuid_is_refused_before_any_request(client, sent, method, memory_id):
    args = (memory_id, "new text") if method == "update" else (memory_id,)
    with pytest.raises(InvalidRequest) as caught:
        getattr(client, method)(*args)
    assert caught.value.details == {"field": "memory_id"} and caught.value.message.startswith("memory_id: ")
    assert isinstance(caught.value, ValueError) and sent.requests == []


async def test_the_async_client_refuses_the_same(sent):
    async with AsyncClient("http://recallstack.test", transport=httpx.MockTransport(sent), user_id="alice") as c:
        for trick in ("../../v1/memories", f"{MEMORY_ID}/../../keys"):
            with pytest.raises(InvalidRequest, match="memory_id"):
                await c.delete(trick)
    assert sent.requests == []


def test_an_upper_case_uuid_is_accepted_and_sent_in_canonical_form(client, sent):
    client.get(MEMORY_ID.upper())
    client.delete(MEMORY_ID.upper())
    client.history(MEMORY_ID)
    assert [(r.method, r.url.raw_path.decode().partition("?")[0]) for r in sent.requests] == [
        ("GET", f"/v1/memories/{MEMORY_ID}"), ("DELETE", f"/v1/memories/{MEMORY_ID}"),
        ("GET", f"/v1/memories/{MEMORY_ID}/history")]


@pytest.mark.parametrize("bad", BAD_IDS + NOT_STRINGS[1:], ids=repr)
def test_user_ids_are_checked_wherever_they_go(client, sent, bad):
    calls = {
        "add": lambda: client.add("x", user_id=bad), "search": lambda: client.search("q", user_id=bad),
        "get_all": lambda: client.get_all(user_id=bad), "get": lambda: client.get(MEMORY_ID, user_id=bad),
        "delete": lambda: client.delete(MEMORY_ID, user_id=bad), "delete_all": lambda: client.delete_all(user_id=bad),
        "get_context": lambda: client.get_context("q", user_id=bad),
        "filters": lambda: client.search("q", user_id=None, filters={"user_id": bad}),
    }
    for name, call in calls.items():
        if (bad == "" and name != "filters") or (name == "filters" and not isinstance(bad, str)):
            continue  # "": the default user (alice), as before; a non-string in filters is a filter the API checks
        with pytest.raises(InvalidRequest) as caught:
            call()
        assert caught.value.details == {"field": "user_id"}, name
    assert sent.requests == []


@pytest.mark.parametrize("name", ["agent_id", "run_id", "app_id"])
@pytest.mark.parametrize("bad", ["../x", "a b", "x\n", "", "a" * 129], ids=repr)
def test_scope_ids_are_checked(client, sent, name, bad):
    for call in (lambda: client.add("x", **{name: bad}), lambda: client.search("q", **{name: bad}),
                 lambda: client.get_all(**{name: bad}), lambda: client.delete_all(**{name: bad}),
                 lambda: client.get_context("q", **{name: bad})):
        with pytest.raises(InvalidRequest) as caught:
            call()
        assert caught.value.details == {"field": name}
    assert sent.requests == []


def test_valid_ids_pass_unchanged(client, sent):
    client.delete_all(agent_id="agent-1", run_id="run:2024.06@x", app_id="A_1")
    [request] = sent.requests
    assert request.url.params["agent_id"] == "agent-1" and request.url.params["run_id"] == "run:2024.06@x"


def test_the_sdk_imports_without_the_server_packages():
    """httpx only: importing it must not reach domain/, adapters/ or the server's dependencies."""
    code = ("import sys\n"
            "for name in ('domain', 'adapters', 'fastapi', 'asyncpg', 'aiokafka', 'settings'):\n"
            "    sys.modules[name] = None  # importing any of them now raises ImportError\n"
            "import recallstack, recallstack.ids\n"
            "recallstack.ids.uuid_arg('3F1C2A9E-0B7D-4C41-9A77-1F0E5D2B8C10', 'memory_id')\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
