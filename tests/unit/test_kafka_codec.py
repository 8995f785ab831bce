from datetime import datetime, timezone

import pytest

from adapters import kafka_codec
from domain.events import MemoryCreated


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
