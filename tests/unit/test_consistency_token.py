import pytest

from domain.consistency import ConsistencyToken, InvalidConsistencyToken


def test_encode_decode_round_trip_keeps_highest_offset_per_partition():
    token = ConsistencyToken.of("recallstack.memory.events", [(3, 10), (1, 5), (3, 12)])
    assert token.encode() == "recallstack.memory.events/1:5,3:12"
    assert ConsistencyToken.decode(token.encode()) == token


def test_satisfied_only_when_every_partition_reached():
    token = ConsistencyToken.decode("t/1:5,3:12")
    assert not token.satisfied_by({1: 5})
    assert not token.satisfied_by({1: 5, 3: 11})
    assert token.satisfied_by({1: 6, 3: 12})
    assert token.missing({1: 5, 3: 11}) == [(3, 12)]


@pytest.mark.parametrize("raw", ["", "no-slash", "t/", "t/1", "t/a:1", "t/1:-2", "t/1:5,x"])
def test_malformed_tokens_are_refused_with_the_reason(raw):
    with pytest.raises(InvalidConsistencyToken, match="consistency_token"):
        ConsistencyToken.decode(raw)
