"""Core memory blocks end to end through the base URL (8080): create, append, replace, read, history,
delete; limits and bad input refused with nothing appended; parallel appends neither lost nor over
the limit; /v1/context places the blocks first within max_tokens; erasure removes them."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest

pytestmark = pytest.mark.e2e


def put(gateway, user_id, label, **body):
    params = {"user_id": user_id, **({"agent_id": body.pop("agent_id")} if "agent_id" in body else {})}
    return gateway.put(f"/v1/core-memory/{label}", params=params, json=body)


def edit(gateway, user_id, label, action, **body):
    return gateway.post(f"/v1/core-memory/{label}/{action}", params={"user_id": user_id}, json=body)


def read(gateway, user_id, label, token, path="", **params):
    return gateway.get(f"/v1/core-memory/{label}{path}", params={"user_id": user_id, "consistency_token": token,
                                                                 **params})


def accepted(answer) -> dict:
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_create_append_replace_read_history_and_delete(gateway, user_id):
    created = accepted(put(gateway, user_id, "persona", value="I am a coding assistant.", limit_tokens=100,
                           description="who the agent is"))
    assert created["results"][0]["event"] == "SET" and created["results"][0]["version"] == 1
    accepted(edit(gateway, user_id, "persona", "append", content="I answer tersely."))
    token = accepted(edit(gateway, user_id, "persona", "replace", old_content="coding", new_content="Go"))[
        "consistency_token"]
    block = read(gateway, user_id, "persona", token).json()
    assert block["value"] == "I am a Go assistant.\nI answer tersely." and block["version"] == 3
    assert block["limit_tokens"] == 100 and 0 < block["tokens"] <= 100 and block["description"] == "who the agent is"
    listed = gateway.get("/v1/core-memory", params={"user_id": user_id, "consistency_token": token}).json()
    assert [b["label"] for b in listed["results"]] == ["persona"] and listed["encoding"] == "cl100k_base"
    history = read(gateway, user_id, "persona", token, "/history").json()["history"]
    assert [h["event_type"] for h in history] == ["CoreMemoryBlockCreated", "CoreMemoryBlockAppended",
                                                  "CoreMemoryBlockReplaced"]
    assert history[2]["old_value"] == "I am a coding assistant.\nI answer tersely." and all(h["applied"]
                                                                                          for h in history)
    # An agent's block is apart from the user-wide one of the same label.
    agent = accepted(put(gateway, user_id, "persona", value="I review PRs.", agent_id="reviewer"))
    assert read(gateway, user_id, "persona", agent["consistency_token"], agent_id="reviewer").json()["value"] == \
        "I review PRs."
    gone = accepted(gateway.delete("/v1/core-memory/persona", params={"user_id": user_id}))
    assert read(gateway, user_id, "persona", gone["consistency_token"]).status_code == 404
    assert len(read(gateway, user_id, "persona", gone["consistency_token"], "/history").json()["history"]) == 4


def test_limits_missing_passages_and_unknown_blocks_are_refused_and_append_nothing(gateway, user_id, log):
    token = accepted(put(gateway, user_id, "human", value="Ana.", limit_tokens=16))["consistency_token"]
    log.mark()
    too_long = edit(gateway, user_id, "human", "append", content="likes " * 40)
    assert too_long.status_code == 422, too_long.text
    error = too_long.json()["error"]
    assert error["code"] == "block_too_large" and error["details"]["limit_tokens"] == 16
    assert error["details"]["tokens"] > 16 and "limit of 16" in error["message"]
    missing = edit(gateway, user_id, "human", "replace", old_content="Bob", new_content="Cleo")
    assert missing.status_code == 422 and missing.json()["error"]["details"]["field"] == "old_content"
    for answer in (edit(gateway, user_id, "nobody", "append", content="x"),
                   edit(gateway, user_id, "nobody", "replace", old_content="a", new_content="b"),
                   gateway.delete("/v1/core-memory/nobody", params={"user_id": user_id}),
                   read(gateway, user_id, "nobody", token), read(gateway, user_id, "nobody", token, "/history")):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", answer.text
    for bad in (put(gateway, user_id, "Persona", value="x"), put(gateway, user_id, "p" * 65, value="x"),
                put(gateway, user_id, "ok", value="x", limit_tokens=10**6), put(gateway, user_id, "ok", extra=1),
                edit(gateway, user_id, "human", "append", content=""),
                edit(gateway, user_id, "human", "append", content="nul \u0000 here"),
                put(gateway, user_id, "human", value="bell \u0007"),
                edit(gateway, user_id, "human", "replace", old_content="", new_content="x")):
        assert bad.status_code == 422, bad.text
    lower = put(gateway, user_id, "human", value="word " * 30, limit_tokens=20)
    assert lower.status_code == 422 and lower.json()["error"]["code"] == "block_too_large"
    after = accepted(edit(gateway, user_id, "human", "append", content="Lives in Lyon."))
    # Only that last append reached the log since the mark.
    assert [e.event_type for e in log.events(after["consistency_token"], user_id=user_id)] == [
        "CoreMemoryBlockAppended"]
    assert read(gateway, user_id, "human", after["consistency_token"]).json()["value"] == "Ana.\nLives in Lyon."


def test_parallel_appends_all_land_or_are_refused_clearly_never_over_the_limit(gateway, user_id):
    accepted(put(gateway, user_id, "notes", value="start", limit_tokens=60))
    lines = [f"note {i}: {uuid.uuid4().hex[:6]}" for i in range(10)]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda line: edit(gateway, user_id, "notes", "append", content=line), lines))
    landed = [line for line, a in zip(lines, answers) if a.status_code == 202]
    for answer in answers:
        assert answer.status_code in (202, 409, 422), answer.text
        if answer.status_code != 202:
            assert answer.json()["error"]["code"] in ("core_memory_busy", "block_too_large")
    final = accepted(edit(gateway, user_id, "notes", "replace", old_content="start", new_content="begin"))
    block = read(gateway, user_id, "notes", final["consistency_token"]).json()
    assert block["tokens"] <= 60 and block["version"] == 2 + len(landed)
    assert all(line in block["value"] for line in landed)  # no acknowledged append is missing
    assert block["value"].count("note ") == len(landed)
    history = read(gateway, user_id, "notes", final["consistency_token"], "/history").json()["history"]
    assert all(h["applied"] for h in history)  # none raced past the lock
    assert len(landed) >= 5, [a.text for a in answers]  # 60 tokens take several; the rest are clear refusals


def test_context_places_the_core_blocks_first_within_the_budget(gateway, user_id):
    memories = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": f"Ana deployed service {i} to the Lyon cluster on Friday", "user_id": user_id, "infer": False}
        for i in range(20)]})
    assert memories.status_code == 202, memories.text
    accepted(put(gateway, user_id, "persona", value="I am Ana's deployment assistant."))
    token = accepted(put(gateway, user_id, "human", value="Ana is an SRE in Lyon."))["consistency_token"]
    for max_tokens in (120, 400):
        answer = gateway.post("/v1/context", json={"query": "what did Ana deploy?", "user_id": user_id,
                                                   "max_tokens": max_tokens, "consistency_token": token})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["context"].startswith("## Core memory\n<persona>\nI am Ana's deployment assistant.\n</persona>")
        assert [c["label"] for c in body["core"]] == ["persona", "human"] and body["tokens"] <= max_tokens
        assert body["memories"] and body["context"].index("</human>") < body["context"].index("Lyon cluster")
    tiny = gateway.post("/v1/context", json={"query": "deploy", "user_id": user_id, "max_tokens": 16,
                                             "consistency_token": token}).json()
    assert tiny["tokens"] <= 16 and tiny["core_omitted"]


def test_erasing_the_user_removes_the_blocks(gateway, user_id):
    token = accepted(put(gateway, user_id, "persona", value="erase me"))["consistency_token"]
    assert read(gateway, user_id, "persona", token).status_code == 200
    erased = accepted(gateway.delete(f"/v1/users/{user_id}", params={"confirm": "true"}))
    listed = gateway.get("/v1/core-memory", params={"user_id": user_id,
                                                    "consistency_token": erased["consistency_token"]})
    assert listed.status_code == 200 and listed.json()["results"] == []
    assert read(gateway, user_id, "persona", erased["consistency_token"], "/history").status_code == 404
