"""Idempotency-Key as a wrapper of a command (application/idempotency.py `once`) without
FastAPI or Redis: an in-memory store with the Redis store's semantics (claim, answer, abandon)."""

from __future__ import annotations

import pytest

from application.idempotency import (IdempotencyConflict, IdempotencyInProgress, IdempotencyUnavailable,
                                     InvalidIdempotencyKey, derived_id, once)


class Store:
    def __init__(self, down: bool = False):
        self.records: dict[tuple[str, str], dict] = {}
        self.down = down

    async def begin(self, user_id, key, fp):
        if self.down:
            raise IdempotencyUnavailable("Redis is unreachable")
        record = self.records.get((user_id, key))
        if record is None:
            self.records[(user_id, key)] = {"fp": fp, "state": "pending"}
            return None
        if record["fp"] != fp:
            raise IdempotencyConflict("Idempotency-Key was already used with a different request")
        if record["state"] != "done":
            raise IdempotencyInProgress("a request with this Idempotency-Key is still being processed")
        return record["answer"]

    async def finish(self, user_id, key, fp, answer):
        self.records[(user_id, key)] = {"fp": fp, "state": "done", "answer": answer}

    async def abandon(self, user_id, key):
        self.records.pop((user_id, key), None)


class Command:
    """A command that appends: each run appends an event with the id it is given (or a new one)."""

    def __init__(self, fails: BaseException | None = None):
        self.appended: list[str] = []
        self.fails = fails

    async def __call__(self, ids):
        if self.fails is not None:
            raise self.fails
        event_id = ids("event", 0) if ids is not None else f"random-{len(self.appended)}"
        self.appended.append(event_id)
        return {"id": event_id, "n": len(self.appended)}


def fingerprint_of(body: str):
    async def fp():
        return body
    return fp


async def test_a_retry_with_the_same_key_returns_the_stored_answer_and_appends_nothing():
    store, command = Store(), Command()
    first = await once(store, "alice", "k1", fingerprint_of("add tea"), command)
    again = await once(store, "alice", "k1", fingerprint_of("add tea"), command)
    assert again == first and command.appended == [first["id"]]
    assert first["id"] == derived_id("alice", "k1\x00add tea", "event", 0)  # the same ids for a retry past the store
    other_user = await once(store, "bob", "k1", fingerprint_of("add tea"), command)
    assert other_user != first and len(command.appended) == 2  # keys are per user


async def test_without_a_key_every_call_runs_and_the_fingerprint_is_not_even_read():
    async def unread():
        raise AssertionError("the body is read only with a key")

    command = Command()
    await once(Store(), "alice", None, unread, command)
    await once(Store(), "alice", None, unread, command)
    assert command.appended == ["random-0", "random-1"]


async def test_the_same_key_with_another_body_or_while_running_is_refused():
    store, command = Store(), Command()
    await once(store, "alice", "k1", fingerprint_of("add tea"), command)
    with pytest.raises(IdempotencyConflict):
        await once(store, "alice", "k1", fingerprint_of("add coffee"), command)
    store.records[("alice", "k2")] = {"fp": "add tea", "state": "pending"}
    with pytest.raises(IdempotencyInProgress):
        await once(store, "alice", "k2", fingerprint_of("add tea"), command)
    assert len(command.appended) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_a_key_that_is_not_1_to_255_printable_characters_is_refused_before_anything_runs(key):
    command = Command()
    with pytest.raises(InvalidIdempotencyKey):
        await once(Store(), "alice", key, fingerprint_of("add tea"), command)
    assert command.appended == []


async def test_a_failed_command_releases_its_key_so_a_retry_runs():
    store = Store()
    with pytest.raises(ConnectionError):
        await once(store, "alice", "k1", fingerprint_of("add tea"), Command(fails=ConnectionError("log down")))
    assert store.records == {}
    command = Command()
    await once(store, "alice", "k1", fingerprint_of("add tea"), command)
    assert len(command.appended) == 1


async def test_with_the_store_down_a_keyed_create_still_runs_with_derived_ids_but_an_update_is_refused():
    command = Command()
    first = await once(Store(down=True), "alice", "k1", fingerprint_of("add tea"), command, creates=True)
    second = await once(Store(down=True), "alice", "k1", fingerprint_of("add tea"), command, creates=True)
    assert first["id"] == second["id"]  # appended twice with the same ids: every read model keeps the first
    with pytest.raises(IdempotencyUnavailable):
        await once(Store(down=True), "alice", "k2", fingerprint_of("patch"), command)
    assert len(command.appended) == 2


async def test_the_routes_answer_the_wrappers_refusals_as_documented():
    """command_api/routes/running.run maps them: 400, 422, 409 and 503 naming Idempotency-Key."""
    from types import SimpleNamespace

    from adapters.http_api import ApiError
    from application.command_handlers import CommandContext
    from command_api.routes import running

    class Request:
        method, url = "POST", SimpleNamespace(path="/v1/memories", query="")
        headers: dict = {}
        state = SimpleNamespace()

        async def body(self):
            return b'{"text": "tea"}'

    store = Store()
    deps = SimpleNamespace(base=CommandContext(embedder=None, publisher=None, memories=None, correlation_id=""),
                           idempotency=store)

    async def work(ctx):
        assert ctx.correlation_id  # the request's correlation id reaches the handler, with the key's ids
        return {"ok": True, "memory_id": ctx.ids("memory", 0)}

    expected = {"": (400, "invalid_request"), "k1": (422, "idempotency_key_reused")}
    answer = await running.run(deps, Request(), "alice", "k1", work)
    assert answer == await running.run(deps, Request(), "alice", "k1", work)  # replayed, not run again
    store.records[("alice", "k1")]["fp"] = "another body"
    for key, (status, code) in expected.items():
        with pytest.raises(ApiError) as refused:
            await running.run(deps, Request(), "alice", key, work)
        assert (refused.value.status, refused.value.code, refused.value.details) == (
            status, code, {"field": "Idempotency-Key"})
    store.down = True
    with pytest.raises(ApiError) as refused:
        await running.run(deps, Request(), "alice", "k3", work)
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (503, "idempotency_unavailable", 2)
