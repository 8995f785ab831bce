"""domain/turn_context: which turns of a request a memory carries as its context (pure)."""

from datetime import datetime, timedelta, timezone

from domain.turn_context import CONTEXT_MAX_CHARS, EMBEDDED_CONTEXT_CHARS, Turn, embedded_text, preceding_turns

DAY = datetime(2024, 5, 8, 13, 0, tzinfo=timezone.utc)
ANA = ("ana", None, None, None)


def turns(*texts, scope=ANA, at=DAY):
    return [Turn(t, scope, at) for t in texts]


def test_each_turn_carries_the_two_before_it_oldest_first():
    assert preceding_turns(turns("a: hi", "b: we went to Paris", "a: loved it?", "b: yes, that one!")) == [
        None, "a: hi", "a: hi\nb: we went to Paris", "b: we went to Paris\na: loved it?"]


def test_other_scopes_are_skipped_not_counted():
    mixed = [Turn("ana 1", ANA, DAY), Turn("bob 1", ("bob", None, None, None), DAY),
             Turn("ana 2", ANA, DAY), Turn("ana in run r", ("ana", None, "r", None), DAY)]
    assert preceding_turns(mixed) == [None, None, "ana 1", None]


def test_turns_far_apart_in_time_are_other_conversations():
    days_apart = turns("monday: the trip") + turns("friday: yes that one", at=DAY + timedelta(days=4))
    assert preceding_turns(days_apart) == [None, None]
    hours_apart = turns("one") + turns("two", at=DAY + timedelta(hours=2))
    assert preceding_turns(hours_apart) == [None, "one"]


def test_a_turn_without_its_own_time_joins_only_others_without_one():
    assert preceding_turns([Turn("x", ANA, None), Turn("y", ANA, None), Turn("z", ANA, DAY)]) == [None, "x", None]


def test_a_long_context_keeps_its_last_characters():
    long = "w" * (CONTEXT_MAX_CHARS + 50)
    context = preceding_turns(turns(long, "next"))[1]
    assert len(context) == CONTEXT_MAX_CHARS and context == long[-CONTEXT_MAX_CHARS:]


def test_count_is_a_parameter():
    assert preceding_turns(turns("a", "b", "c"), count=1) == [None, "a", "b"]


def test_the_vector_is_of_the_context_then_the_text():
    assert embedded_text("b: yes, that one!", "a: we went to Paris") == "a: we went to Paris\nb: yes, that one!"


def test_without_context_the_vector_is_of_the_text_alone():
    assert embedded_text("hello", None) == "hello"
    assert embedded_text("hello", "") == "hello"


def test_a_long_context_leaves_room_for_the_text_in_the_vector():
    context = "x" * 50 + "y" * EMBEDDED_CONTEXT_CHARS
    assert embedded_text("the text", context) == "y" * EMBEDDED_CONTEXT_CHARS + "\nthe text"
