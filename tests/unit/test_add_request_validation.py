import pytest
from pydantic import ValidationError

from application.requests import AddMemoryRequest


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


@pytest.mark.parametrize("metadata", [{"x": float("nan")}, {"x": [1, {"y": float("inf")}]}, {"x": -float("inf")},
                                      {"x": 10 ** 400}])
def test_metadata_numbers_must_be_finite_doubles_also_when_built_in_python(metadata):
    """The HTTP parser refuses these first; `recallstack import` validates files with the model."""
    with pytest.raises(ValidationError, match="finite|within") as info:
        AddMemoryRequest(user_id="u", text="t", metadata=metadata)
    assert "metadata" in str(info.value)
    assert AddMemoryRequest(user_id="u", text="t", metadata={"x": 1e308, "y": 2 ** 64}).metadata["y"] == 2 ** 64


def test_metadata_depth_is_measured_without_recursion():
    deep: dict = {}
    for _ in range(5_000):  # deeper than Python's recursion limit
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested deeper than 5"):
        AddMemoryRequest(user_id="u", text="t", metadata=deep)


@pytest.mark.parametrize("value", ["NaN", "Infinity", float("nan"), float("inf")])
def test_importance_is_finite_even_as_a_string(value):
    with pytest.raises(ValidationError, match="importance"):
        AddMemoryRequest(user_id="u", text="t", importance=value)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_outside_years_1_to_9999_in_utc_is_refused(when):
    with pytest.raises(ValidationError, match="0001-01-01 and 9999-12-31") as info:
        AddMemoryRequest(user_id="u", text="t", occurred_at=when)
    assert "occurred_at" in str(info.value)


def test_occurred_at_is_kept_in_utc():
    body = AddMemoryRequest(user_id="u", text="t", occurred_at="2023-05-08T15:56:00+02:00")
    assert body.occurred_at.isoformat() == "2023-05-08T13:56:00+00:00"


def test_a_huge_vector_component_is_not_normalised_rather_than_an_overflow():
    with pytest.raises(ValidationError, match="L2-normalised"):
        AddMemoryRequest(user_id="u", text="t", embedding=[1e308, 1e308], embedding_model="m")


def test_key_and_user_labels_are_unicode_text():
    from application.requests import IssueKeyRequest, RegisterUserRequest

    with pytest.raises(ValidationError, match="lone surrogate"):
        IssueKeyRequest(scopes=["read"], name="k\ud800")
    with pytest.raises(ValidationError, match="lone surrogate"):
        RegisterUserRequest(user_id="u", display_name="\udfff")
    with pytest.raises(ValidationError, match="0001-01-01 and 9999-12-31"):
        IssueKeyRequest(scopes=["read"], expires_at="9999-12-31T23:59:59-14:00")
    assert IssueKeyRequest(scopes=["read"], name="\u202e\U0001f600").name == "\u202e\U0001f600"
