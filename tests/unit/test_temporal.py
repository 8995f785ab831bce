"""Time expressions resolved against a reference time: a table of cases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.temporal import around_anchor, resolve, within_calendar

NOW = datetime(2023, 5, 10, 15, 30, tzinfo=timezone.utc)  # a Wednesday


def d(y, m, day):
    return datetime(y, m, day, tzinfo=timezone.utc)


@pytest.mark.parametrize("query, start, end", [
    ("what did I eat yesterday?", d(2023, 5, 9), d(2023, 5, 10)),
    ("plans for today", d(2023, 5, 10), d(2023, 5, 11)),
    ("the day before yesterday", d(2023, 5, 8), d(2023, 5, 9)),
    ("what happened last week", d(2023, 5, 1), d(2023, 5, 8)),
    ("this week's tasks", d(2023, 5, 8), d(2023, 5, 15)),
    ("books I read last month", d(2023, 4, 1), d(2023, 5, 1)),
    ("goals for this year", d(2023, 1, 1), d(2024, 1, 1)),
    ("trips last year", d(2022, 1, 1), d(2023, 1, 1)),
    ("what did Caroline do in May 2023?", d(2023, 5, 1), d(2023, 6, 1)),
    ("in March", d(2023, 3, 1), d(2023, 4, 1)),
    ("in August", d(2022, 8, 1), d(2022, 9, 1)),  # the most recent August
    ("in 2021", d(2021, 1, 1), d(2022, 1, 1)),
    ("on 8 May 2023", d(2023, 5, 8), d(2023, 5, 9)),
    ("on May 8, 2023", d(2023, 5, 8), d(2023, 5, 9)),
    ("the 25th of December 2022", d(2022, 12, 25), d(2022, 12, 26)),
    ("notes from 2023-04-30", d(2023, 4, 30), d(2023, 5, 1)),
    ("two days ago", d(2023, 5, 8), d(2023, 5, 9)),
    ("3 weeks ago", d(2023, 4, 17), d(2023, 4, 24)),
    ("a month ago", d(2023, 4, 1), d(2023, 5, 1)),
    ("a couple of years ago", d(2021, 1, 1), d(2022, 1, 1)),
    ("last Friday", d(2023, 5, 5), d(2023, 5, 6)),
    ("on Wednesday", d(2023, 5, 3), d(2023, 5, 4)),  # today is Wednesday: the one before
    ("in the last 3 days", d(2023, 5, 8), d(2023, 5, 11)),
    ("recently", d(2023, 4, 11), d(2023, 5, 11)),
])
def test_time_expressions_resolve_to_half_open_windows(query, start, end):
    window = resolve(query, NOW)
    assert window is not None, query
    assert (window.start, window.end) == (start, end), (query, window)


def test_a_phrase_relative_to_another_event_names_the_anchor():
    window = resolve("what did she do two days before the charity race?", NOW)
    assert (window.start, window.anchor, window.offset_days) == (None, "the charity race", -2)


@pytest.mark.parametrize("query", ["what is my favourite colour", "I have 2023 reasons"])
def test_no_time_expression_gives_none(query):
    assert resolve(query, NOW) is None


def test_an_impossible_day_falls_back_to_its_month():
    window = resolve("on 31 February 2023", NOW)
    assert (window.start, window.end, window.phrase) == (d(2023, 2, 1), d(2023, 3, 1), "february 2023")


def test_month_ends_are_clamped():
    window = resolve("a month ago", datetime(2023, 3, 31, tzinfo=timezone.utc))
    assert (window.start, window.end) == (d(2023, 2, 1), d(2023, 3, 1))


# --- the calendar's ends (issue 19): every phrase and reference time resolves to a window the
# databases hold (or to none), never to an OverflowError or ValueError -------------------------

FIRST, LAST = d(1, 1, 2), d(9999, 12, 31)  # domain.temporal.FIRST_DAY / LAST_DAY at midnight UTC


@pytest.mark.parametrize("query, start, end", [
    ("what happened in December 9999", d(9999, 12, 1), LAST),  # its end clamped
    ("100000 years ago", FIRST, FIRST),  # wholly before the calendar: an empty window
    ("99999999999 days ago", FIRST, FIRST),
    ("9" * 5000 + " days ago", FIRST, FIRST),  # more digits than int() parses by default
    ("in December 0000", FIRST, FIRST),  # year 0
    ("on 9999-12-31", LAST, LAST),  # the calendar's last day is its exclusive end
    ("in the last 99999999999 years", FIRST, d(2023, 5, 11)),
    ("over the past 123456789012345 weeks", FIRST, d(2023, 5, 11)),
    ("the past 99999 months", FIRST, d(2023, 5, 11)),
    ("-5 days ago", d(2023, 5, 5), d(2023, 5, 6)),  # the sign is not part of the number
])
def test_out_of_range_phrases_are_clamped_to_the_calendar(query, start, end):
    window = resolve(query, NOW)
    assert window is not None and (window.start, window.end) == (start, end), (query, window)


@pytest.mark.parametrize("query", ["in 99999 centuries", "last 1e9 weeks", "notes from 0000-01-01",
                                   "in December 10000", "on 32 January 2023 or so"])
def test_phrases_that_name_no_usable_time_give_no_window(query):
    window = resolve(query, NOW)
    assert window is None or (window.start <= window.end and window.phrase != query), (query, window)


EDGES = [datetime(1, 1, 2, tzinfo=timezone.utc), datetime(9999, 12, 30, 23, 59, tzinfo=timezone.utc),
         datetime(1, 1, 2, tzinfo=timezone(timedelta(hours=23, minutes=59))),
         datetime(9999, 12, 30, 23, 59, tzinfo=timezone(timedelta(hours=-23, minutes=-59)))]
PHRASES = ["yesterday", "today", "tomorrow", "last week", "next week", "this month", "next month", "last year",
           "next year", "in the last 3 days", "the past 2 weeks", "the last 5 months", "the past 10 years",
           "in March", "on Monday", "recently", "3 years ago", "in 2021", "in May 2023", "on 8 May 2023",
           "2023-04-30", "99999999999 weeks ago", "the past 99999999999 days"]


@pytest.mark.parametrize("now", EDGES, ids=["first-utc", "last-utc", "first-east", "last-west"])
def test_every_phrase_at_the_calendars_ends_gives_bounds_that_convert_to_utc(now):
    for phrase in PHRASES:
        window = resolve(phrase, now)
        if window is None:
            continue
        assert window.start <= window.end, (phrase, window)
        for bound in (window.start, window.end):
            utc = bound.astimezone(timezone.utc)  # what asyncpg and the Neo4j driver do
            assert d(1, 1, 1) <= utc < datetime.max.replace(tzinfo=timezone.utc), (phrase, bound)


def test_an_anchor_far_off_is_clamped_too():
    window = resolve("what happened 99999999999 days before the meeting?", NOW)
    assert window.anchor == "the meeting"
    assert (around_anchor(window, NOW).start, around_anchor(window, NOW).end) == (FIRST, FIRST)
    near = around_anchor(resolve("two days after the meeting", NOW), NOW)
    assert (near.start, near.end) == (d(2023, 5, 11), d(2023, 5, 14))


@pytest.mark.parametrize("at, usable", [
    (NOW, True), (datetime(1, 1, 2, tzinfo=timezone.utc), True),
    (datetime(1, 1, 1, 23, tzinfo=timezone.utc), False),
    (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), False),  # year 0 in UTC
    (datetime(9999, 12, 30, 23, 59, tzinfo=timezone.utc), True),
    (datetime(9999, 12, 31, tzinfo=timezone.utc), False),
    (datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))), False),  # year 10000 in UTC
])
def test_a_reference_time_is_usable_only_inside_the_calendar(at, usable):
    assert within_calendar(at) is usable
