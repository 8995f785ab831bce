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


class FakeNotices:
    """Pure stand-in for adapters.applied_notices: records each wait, and the projector
    'commits' (the positions move, a notice is heard) when the first wait starts."""

    def __init__(self, commit):
        self.generation, self.waits, self.commit = 5, [], commit

    async def after(self, generation: int, timeout: float) -> None:
        self.waits.append((generation, timeout))
        self.commit()
        self.generation += 1


def test_a_wait_with_notices_sleeps_until_the_next_commit_and_reads_the_generation_before_the_positions():
    applied = {0: 10}
    reads = []

    async def positions():
        reads.append(notices.generation)  # what the wait saw of the generation when it read
        return dict(applied)

    notices = FakeNotices(lambda: applied.update({0: 41}))
    asyncio.run(wait_until_applied(f"{TOPIC}/0:41", TOPIC, "postgres", positions, 5_000, 12, notices=notices))
    assert reads == [5, 6]  # read, woken by the commit, read again: found
    # It waited for a generation after the one read before the positions (a commit in between
    # is not missed), for at most the poll's delay: polling remains the fallback.
    assert len(notices.waits) == 1 and notices.waits[0][0] == 5 and notices.waits[0][1] <= 0.05


def test_a_wait_with_notices_still_gives_up_after_its_timeout():
    class Silent:
        generation = 0

        async def after(self, generation, timeout):
            await asyncio.sleep(timeout)

    async def positions():
        return {0: 10}

    with pytest.raises(NotYetApplied):
        asyncio.run(wait_until_applied(f"{TOPIC}/0:41", TOPIC, "postgres", positions, 60, 12, notices=Silent()))


def test_without_notices_polls_are_at_most_10_ms_apart(monkeypatch):
    """A wait nobody wakes polls every 10 ms once past the first few: it never oversleeps an
    apply by more than that (the graph and Redis have no notices)."""
    import domain.consistency as consistency

    pauses = []

    async def no_sleep(seconds):
        pauses.append(seconds)

    monkeypatch.setattr(consistency.asyncio, "sleep", no_sleep)
    polls = []

    async def applied():
        polls.append(1)
        return {0: 41} if len(polls) > 12 else {}

    asyncio.run(wait_until_applied(f"{TOPIC}/0:41", TOPIC, "neo4j", applied, 60_000, 12))
    assert pauses[:4] == [0.002, 0.004, 0.008, 0.01]
    assert max(pauses) == consistency.MAX_POLL_UNNOTIFIED_S == 0.01
