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


# --- tokens that cannot exist (issue 19): refused, never waited for ---------------------------

import asyncio  # noqa: E402

from domain.consistency import NotYetApplied, wait_until_applied  # noqa: E402

TOPIC = "recallstack.memory.events"


@pytest.mark.parametrize("raw, message", [
    (f"{TOPIC}/1:99999999999999999999999", "past any Kafka offset"),
    (f"{TOPIC}/1:-1", "not <partition>:<offset>"),
    (f"{TOPIC}/1:\u0663", "not <partition>:<offset>"),  # an Arabic-Indic digit: int() would take it
    (f"{TOPIC}/1:\u00b2", "not <partition>:<offset>"),  # a superscript: isdigit() is True, int() fails
    (f"{TOPIC}/1:" + "9" * 5000, "longer than"),
    (f"{TOPIC}/" + "9" * 30 + ":1", "names partition 9999"),
    (f"{TOPIC}/12:1", "has partitions 0-11"),
    (f"{TOPIC}/0:1,4096:1", "partition 4096"),
    ("other.topic/0:1", "names topic 'other.topic'"),
    ("\x00\udcff/0:1", "names topic"),
    ("garbage", "not of the form"),
])
def test_a_token_that_cannot_exist_is_refused_at_once(raw, message):
    async def never():
        raise AssertionError("no read model is asked about a token that cannot exist")

    with pytest.raises(InvalidConsistencyToken, match=message) as caught:
        asyncio.run(wait_until_applied(raw, TOPIC, "postgres", never, 2_000, partitions=12))
    str(caught.value).encode("utf-8", "backslashreplace")


def test_an_offset_the_log_has_not_reached_is_refused_without_waiting_out_the_bound():
    async def applied():
        return {0: 41}

    async def ends():
        return {0: 42, 1: 0}

    async def main():
        began = asyncio.get_running_loop().time()
        with pytest.raises(InvalidConsistencyToken, match="partition 0 offset 999999999999, which the log has not"):
            await wait_until_applied(f"{TOPIC}/0:999999999999", TOPIC, "postgres", applied, 5_000, 12, ends)
        assert asyncio.get_running_loop().time() - began < 1.0
        with pytest.raises(InvalidConsistencyToken, match="partition 1 offset 0"):  # an empty partition
            await wait_until_applied(f"{TOPIC}/1:0", TOPIC, "postgres", applied, 5_000, 12, ends)
    asyncio.run(main())


def test_a_written_offset_not_yet_applied_still_waits_and_then_answers_not_yet_applied():
    async def applied():
        return {0: 10}

    async def ends():
        return {0: 42}

    with pytest.raises(NotYetApplied):
        asyncio.run(wait_until_applied(f"{TOPIC}/0:41", TOPIC, "postgres", applied, 100, 12, ends))


def test_log_ends_that_fail_or_hang_decide_nothing():
    polls = []

    async def applied():
        polls.append(1)
        return {0: 41} if len(polls) > 3 else {}

    async def broken():
        raise ConnectionError("Kafka is down")

    async def hanging():
        await asyncio.sleep(60)

    for ends in (broken, hanging):
        polls.clear()
        asyncio.run(wait_until_applied(f"{TOPIC}/0:41", TOPIC, "postgres", applied, 2_000, 12, ends))
        assert len(polls) == 4


def test_a_satisfied_token_never_asks_the_log():
    async def applied():
        return {0: 41}

    async def ends():
        raise AssertionError("asked")

    asyncio.run(wait_until_applied(f"{TOPIC}/0:41", TOPIC, "postgres", applied, 100, 12, ends))
