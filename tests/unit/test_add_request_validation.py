import pytest
from pydantic import ValidationError

from command_api.requests import AddMemoryRequest


def test_text_or_messages_exactly_one():
    with pytest.raises(ValidationError, match="exactly one"):
        AddMemoryRequest(user_id="u")
    with pytest.raises(ValidationError, match="exactly one"):
        AddMemoryRequest(user_id="u", text="a", messages=[{"role": "user", "content": "b"}])


def test_messages_become_one_memory_each_with_the_role():
    body = AddMemoryRequest(user_id="u", messages=[{"role": "user", "content": "I like tea"},
                                                   {"role": "assistant", "content": "Noted"}])
    assert body.texts() == [("I like tea", {"role": "user"}), ("Noted", {"role": "assistant"})]


def test_naive_occurred_at_is_taken_as_utc():
    body = AddMemoryRequest(user_id="u", text="t", occurred_at="2023-05-08T13:56:00")
    assert body.occurred_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("field, value", [("user_id", ""), ("text", "  "), ("importance", 1.5),
                                          ("categories", ["c"] * 33), ("text", "x" * 32_001)])
def test_bad_fields_are_named(field, value):
    body = {"user_id": "u", "text": "t", field: value}
    with pytest.raises(ValidationError) as info:
        AddMemoryRequest(**body)
    assert field in str(info.value)


@pytest.mark.parametrize("field, value", [("text", "a\ud800b"), ("categories", ["\udfff"]), ("metadata", {"k\ud800": 1}),
                                          ("metadata", {"k": ["\ud800"]})])
def test_a_lone_surrogate_is_refused_by_name(field, value):
    """JSON may escape one ("\\ud800"); no UTF-8 text (the log, the embedder) can hold it."""
    with pytest.raises(ValidationError, match="lone surrogates") as info:
        AddMemoryRequest(**{"user_id": "u", "text": "t", field: value})
    assert field in str(info.value)
    with pytest.raises(ValidationError, match="lone surrogates"):
        AddMemoryRequest(user_id="u", messages=[{"role": "user", "content": "\ud83d"}])


def test_a_nul_character_in_metadata_is_refused():
    """Postgres jsonb cannot hold \\u0000: the projector would dead-letter the event."""
    for metadata in ({"k": "a\x00b"}, {"k": {"deeper": ["\x00"]}}):
        with pytest.raises(ValidationError, match="NUL"):
            AddMemoryRequest(user_id="u", text="t", metadata=metadata)
    assert AddMemoryRequest(user_id="u", text="t", metadata={"k": "a\\u0000b"}).metadata == {"k": "a\\u0000b"}
