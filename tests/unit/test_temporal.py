"""Time expressions resolved against a reference time: a table of cases."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from domain.temporal import resolve

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
