import io
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from fastavro import schemaless_writer

import schemas
from adapters import kafka_codec
from domain.events import (ChatMessage, ConversationReceived, Entity, MemoryAccessed, MemoryCreated, MemoryUpdated,
                           Relation)


def make_event(**over):
    fields = dict(
        user_id="u1", actor="user:u1", memory_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10",
        text="I prefer dark mode", embedding=(0.5, -0.25, 0.125), embedding_model="m",
        happened_at=datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc),
        metadata={"source": "chat", "n": 3}, categories=("preferences",), importance=0.5,
    )
    fields.update(over)
    return MemoryCreated(**fields)


def test_round_trip_keeps_every_field():
    event = make_event()
    value, headers = kafka_codec.encode(event)
    assert kafka_codec.decode(value, headers) == event


def test_optional_fields_round_trip_as_none():
    event = make_event(agent_id=None, importance=None, categories=(), metadata={})
    value, headers = kafka_codec.encode(event)
    assert kafka_codec.decode(value, headers) == event


def test_missing_or_unknown_schema_header_is_refused():
    value, _ = kafka_codec.encode(make_event())
    with pytest.raises(kafka_codec.UnknownSchema, match="header"):
        kafka_codec.decode(value, [])
    with pytest.raises(kafka_codec.UnknownSchema, match="fingerprint"):
        kafka_codec.decode(value, [(kafka_codec.SCHEMA_HEADER, b"0000")])


def test_nested_records_round_trip():
    event = make_event(entities=(Entity("Alice", "person"), Entity("Acme", "organization")),
                       relations=(Relation("Alice", "works_at", "Acme"),))
    value, headers = kafka_codec.encode(event)
    assert kafka_codec.decode(value, headers) == event
    conversation = ConversationReceived(
        user_id="u1", actor="user:u1", conversation_id=str(uuid.uuid4()),
        messages=(ChatMessage("user", "I moved to Lyon"), ChatMessage("assistant", "Noted")),
        happened_at=datetime(2024, 1, 2, tzinfo=timezone.utc), metadata={"channel": "slack"})
    assert kafka_codec.decode(*kafka_codec.encode(conversation)) == conversation


def test_v1_bytes_are_upcast_to_the_latest_version():
    v1 = schemas.versions("MemoryCreated")[0]
    assert v1.version == 1 and schemas.latest("MemoryCreated").version == 4
    original = make_event()
    record = kafka_codec.to_record(original)
    record["schema_version"] = 1
    buf = io.BytesIO()
    schemaless_writer(buf, v1.parsed, record)
    event = kafka_codec.decode(buf.getvalue(), [(kafka_codec.SCHEMA_HEADER, v1.fingerprint.encode())])
    assert event == original and event.entities == () and event.relations == () and event.context is None
    assert event.expires_at is None


def test_none_means_unchanged_and_differs_from_empty():
    base = dict(user_id="u1", actor="user:u1", memory_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10")
    for event in (MemoryUpdated(**base), MemoryUpdated(**base, metadata={}, categories=(), text="")):
        assert kafka_codec.decode(*kafka_codec.encode(event)) == event


def test_datetimes_decode_as_aware_utc():
    paris = timezone(timedelta(hours=2))
    event = make_event(happened_at=datetime(2023, 5, 8, 15, 56, 0, 123456, tzinfo=paris),
                       occurred_at=datetime(2023, 5, 8, 13, 56, 1))  # naive: taken as UTC, never local time
    decoded = kafka_codec.decode(*kafka_codec.encode(event))
    assert decoded.happened_at == datetime(2023, 5, 8, 13, 56, 0, 123456, tzinfo=timezone.utc)
    assert decoded.occurred_at == datetime(2023, 5, 8, 13, 56, 1, tzinfo=timezone.utc)
    assert decoded.happened_at.tzinfo is timezone.utc and decoded.occurred_at.tzinfo is timezone.utc


def test_a_malformed_uuid_is_refused_on_encode_not_on_read():
    with pytest.raises(ValueError, match="memory_id must be a UUID"):
        kafka_codec.encode(make_event(memory_id="not-a-uuid"))
    accessed = MemoryAccessed(user_id="u1", actor="user:u1", memory_ids=(str(uuid.uuid4()), "m2"), source="get")
    with pytest.raises(ValueError, match=r"memory_ids\[1\] must be a UUID"):
        kafka_codec.encode(accessed)
