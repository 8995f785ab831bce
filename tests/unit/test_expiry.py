"""Memory expiry's pure rules (domain/expiry.py) with a fixed clock, the request models that apply
them (application/requests.py: a 422 naming the field, never a silent drop), and the answer cache's
rule that an answer holding an expired memory is never served."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from application.requests import AddMemoryRequest, BatchAddRequest, UpdateMemoryRequest
from domain.expiry import (MAX_TTL_SECONDS, ExpiryError, as_utc, expiry_of, is_expired, unexpired)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)


def test_a_memory_is_expired_from_its_instant_on():
    assert not is_expired(None, NOW)
    assert is_expired(NOW - MS, NOW) and is_expired(NOW, NOW)
    assert not is_expired(NOW + MS, NOW) and not is_expired(NOW + timedelta(seconds=1), NOW)
    # a naive time is UTC; another offset is the same instant
    assert is_expired(datetime(2026, 3, 1, 12, 0), NOW)
    assert not is_expired(datetime(2026, 3, 1, 13, 0, 1, tzinfo=timezone(timedelta(hours=1))), NOW)


def test_ttl_counts_from_now_and_expires_at_must_be_in_the_future():
    assert expiry_of(None, 60, NOW) == NOW + timedelta(seconds=60)
    assert expiry_of(NOW + MS, None, NOW) == NOW + MS
    assert expiry_of(None, None, NOW) is None
    assert expiry_of(datetime(2026, 3, 2), None, NOW) == datetime(2026, 3, 2, tzinfo=timezone.utc)
    for expires_at, ttl, field in [(NOW, None, "expires_at"), (NOW - MS, None, "expires_at"),
                                   (None, 0, "ttl_seconds"), (None, -5, "ttl_seconds"),
                                   (None, MAX_TTL_SECONDS + 1, "ttl_seconds"), (None, True, "ttl_seconds"),
                                   (NOW + timedelta(days=1), 60, "ttl_seconds")]:
        with pytest.raises(ExpiryError) as refused:
            expiry_of(expires_at, ttl, NOW)
        assert refused.value.field == field
    assert expiry_of(None, MAX_TTL_SECONDS, NOW) == NOW + timedelta(seconds=MAX_TTL_SECONDS)


def test_unexpired_documents_by_their_iso_expiry():
    docs = [{"id": "gone", "expires_at": (NOW - MS).isoformat()}, {"id": "at", "expires_at": NOW.isoformat()},
            {"id": "there", "expires_at": (NOW + timedelta(seconds=1)).isoformat()}, {"id": "never"},
            {"id": "null", "expires_at": None}]
    assert [d["id"] for d in unexpired(docs, NOW)] == ["there", "never", "null"]
    assert as_utc(datetime(2026, 1, 1)).tzinfo is timezone.utc


def _refusal(model, body) -> list[tuple]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in refused.value.errors()]


def test_add_bodies_name_the_expiry_field_they_break():
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert _refusal(AddMemoryRequest, {"text": "x", "expires_at": "2020-01-01T00:00:00Z"})[0][0] == "expires_at"
    assert "future" in _refusal(AddMemoryRequest, {"text": "x", "expires_at": "2020-01-01"})[0][1]
    assert _refusal(AddMemoryRequest, {"text": "x", "expires_at": "next tuesday"})[0][0] == "expires_at"
    for ttl in (0, -1, 1.5, "60", True, MAX_TTL_SECONDS + 1):
        assert _refusal(AddMemoryRequest, {"text": "x", "ttl_seconds": ttl})[0][0] == "ttl_seconds", ttl
    both = _refusal(AddMemoryRequest, {"text": "x", "expires_at": future, "ttl_seconds": 60})
    assert both == [("ttl_seconds", "give expires_at or ttl_seconds, not both")]
    assert _refusal(BatchAddRequest, {"memories": [{"text": "ok"}, {"text": "x", "ttl_seconds": 0}]})[0][0] == \
        "memories.1.ttl_seconds"


def test_an_add_carries_the_absolute_expiry():
    body = AddMemoryRequest.model_validate({"text": "x", "ttl_seconds": 90})
    assert body.expiry(NOW) == NOW + timedelta(seconds=90)
    naive = AddMemoryRequest.model_validate({"text": "x", "expires_at": "2099-01-01T08:00:00"})
    assert naive.expiry(NOW) == datetime(2099, 1, 1, 8, tzinfo=timezone.utc)
    offset = AddMemoryRequest.model_validate({"text": "x", "expires_at": "2099-01-01T08:00:00+02:00"})
    assert offset.expiry(NOW) == datetime(2099, 1, 1, 6, tzinfo=timezone.utc)
    assert AddMemoryRequest.model_validate({"text": "x"}).expiry(NOW) is None


def test_an_update_sets_clears_or_leaves_the_expiry():
    cleared = UpdateMemoryRequest.model_validate({"expires_at": None})
    assert cleared.clears_expiry and cleared.changes_expiry and cleared.expiry(NOW) is None
    moved = UpdateMemoryRequest.model_validate({"ttl_seconds": 5})
    assert not moved.clears_expiry and moved.expiry(NOW) == NOW + timedelta(seconds=5)
    untouched = UpdateMemoryRequest.model_validate({"text": "new"})
    assert not untouched.clears_expiry and not untouched.changes_expiry and untouched.expiry(NOW) is None
    assert _refusal(UpdateMemoryRequest, {})[0][1].endswith("importance, expires_at, ttl_seconds")


def test_mem0s_expiration_date_is_inclusive_and_null_clears_it():
    from application import mem0_shapes as shapes

    messages = [{"role": "user", "content": "My trial ends soon."}]
    assert shapes.add_body({"messages": messages, "expiration_date": "2030-01-31"})["expires_at"] == \
        "2030-02-01T00:00:00+00:00"
    assert shapes.add_body({"messages": messages, "expiration_date": "2030-01-31T10:00:00+00:00"})["expires_at"] == \
        "2030-01-31T10:00:00+00:00"
    assert "expires_at" not in shapes.add_body({"messages": messages, "expiration_date": None})
    assert shapes.update_body({"expiration_date": None}) == {"expires_at": None}
    assert shapes.update_body({"text": "a", "expiration_date": "2030-01-31"}) == {
        "text": "a", "expires_at": "2030-02-01T00:00:00+00:00"}
    assert "expires_at" not in shapes.update_body({"text": "a"})
    with pytest.raises(shapes.Mem0ShapeError) as refused:
        shapes.add_body({"messages": messages, "expiration_date": "2030-02-30"})
    assert refused.value.field == "expiration_date"
    assert shapes.mem0_field("expires_at") == "expiration_date"


async def test_the_events_carry_the_absolute_expiry_and_a_changed_expiry_brings_an_expired_memory_back():
    from application import command_handlers as handlers
    from domain.commands import AddMemory, UpdateMemory
    from domain.events import MemoryCreated, MemoryRestored, MemoryUpdated
    from tests.unit.fakes import FakeEmbedder, FakeMemories, FakePublisher

    memory = "6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"
    publisher = FakePublisher()
    ctx = handlers.CommandContext(embedder=FakeEmbedder(), publisher=publisher, correlation_id="req-1",
                                  memories=FakeMemories({memory: ("u", "forgotten")}))
    [created], _ = await handlers.add_memories([AddMemory(user_id="u", actor="user:u", text="on call",
                                                          expires_at=NOW)], ctx)
    assert isinstance(created, MemoryCreated) and created.expires_at == NOW
    event, _ = await handlers.update_memory(UpdateMemory(user_id="u", actor="user:u", memory_id=memory,
                                                         clears_expiry=True), ctx)
    assert isinstance(event, MemoryUpdated) and event.expiry_cleared and event.expires_at is None
    restored = publisher.events[-1]
    assert isinstance(restored, MemoryRestored) and restored.causation_id == event.event_id
    before = len(publisher.events)
    await handlers.update_memory(UpdateMemory(user_id="u", actor="user:u", memory_id=memory, importance=0.5), ctx)
    assert len(publisher.events) == before + 1  # only an expiry change restores
    ctx.memories.known[memory] = ("u", "active")
    await handlers.update_memory(UpdateMemory(user_id="u", actor="user:u", memory_id=memory, expires_at=NOW), ctx)
    assert isinstance(publisher.events[-1], MemoryUpdated)  # active: nothing to restore


async def test_restoring_a_memory_whose_expiry_has_passed_is_refused_with_the_way_back():
    from application import command_handlers as handlers
    from domain.commands import RestoreMemory
    from tests.unit.fakes import FakeEmbedder, FakeMemories, FakePublisher

    memory = "6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"
    publisher = FakePublisher()
    lookup = FakeMemories({memory: ("u", "forgotten")})
    lookup.expires = {memory: datetime(2001, 1, 1, tzinfo=timezone.utc)}
    ctx = handlers.CommandContext(embedder=FakeEmbedder(), publisher=publisher, correlation_id="r", memories=lookup)
    with pytest.raises(handlers.NothingToRestore, match="expired at 2001-01-01.*PATCH its expires_at"):
        await handlers.restore_memory(RestoreMemory(user_id="u", actor="user:u", memory_id=memory), ctx)
    assert publisher.events == []
    lookup.expires[memory] = datetime.now(timezone.utc) + timedelta(days=1)  # moved: restorable
    event, _ = await handlers.restore_memory(RestoreMemory(user_id="u", actor="user:u", memory_id=memory), ctx)
    assert publisher.events == [event]
