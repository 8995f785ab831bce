"""Time expressions in a query, resolved against the request's reference time (pure).

`resolve("what did I do last week?", now)` -> TimeWindow(start, end, phrase). The search
uses the window as a filter or a boost on occurred_at. Windows are half-open
[start, end) in the reference time's timezone. Phrases relative to another event ("two
days before the meeting") need that event's date and are reported with `anchor` set and
no window; the caller may resolve the anchor through search.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): n for n, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): n for n, name in enumerate(calendar.day_name)}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
           "couple of": 2, "few": 3, "several": 3}

_NUM = r"(\d+|a couple of|couple of|a few|few|several|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT = r"(day|week|month|year)s?"
_MONTH = r"(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(" + "|".join(WEEKDAYS) + r")"


@dataclass(frozen=True)
class TimeWindow:
    start: datetime | None
    end: datetime | None
    phrase: str
    anchor: str | None = None  # "the meeting" in "two days before the meeting"
    offset_days: int = 0  # signed offset from the anchor


def _day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


# The calendar a window may span: what Python's datetime (years 1-9999) and the databases
# (Postgres, Neo4j: more) all hold, less a day at each end so that a bound in any UTC offset
# still converts to UTC. Window arithmetic is done on day numbers and month indexes (plain
# ints, unbounded) and clamped into [FIRST_DAY, LAST_DAY] only when a bound is made: "100000
# years ago" is an empty window at the start of the calendar, never an OverflowError.
FIRST_DAY = date(1, 1, 2)
LAST_DAY = date(9999, 12, 31)  # a window ends at its midnight at the latest (exclusive)
_FIRST, _LAST = FIRST_DAY.toordinal(), LAST_DAY.toordinal()
MAX_COUNT = 10**9  # "99999999999 days ago" counts as this many: past either end of the calendar all the same


def within_calendar(at: datetime) -> bool:
    """Whether `at` (aware) is a usable reference time: its UTC instant within
    [FIRST_DAY, LAST_DAY), so that every bound made from it converts."""
    try:
        utc = at.astimezone(timezone.utc)
    except OverflowError:
        return False
    return _FIRST <= utc.toordinal() < _LAST


def _bound(ordinal: int, like: datetime, clock: time | None = None) -> datetime:
    """The moment of day `ordinal` (at `clock`, else midnight) in `like`'s timezone, clamped
    to the calendar (a clamped bound is the calendar's end at midnight)."""
    if ordinal < _FIRST:
        ordinal, clock = _FIRST, None
    elif ordinal >= _LAST:
        ordinal, clock = _LAST, None
    return datetime.combine(date.fromordinal(ordinal), clock or time(), tzinfo=like.tzinfo)


def _span(start: int, end: int, like: datetime, phrase: str) -> TimeWindow:
    """The window of days [start, end) (ordinals, possibly past the calendar's ends)."""
    return TimeWindow(_bound(start, like), _bound(end, like), phrase)


def _month_ordinal(index: int) -> int:
    """The day number of the first day of month `index` (year * 12 + month - 1); past the
    calendar's ends, a number past them (the bound clamps it)."""
    year, month = divmod(index, 12)
    if year < 1:
        return _FIRST - 1
    if year > 9999:
        return _LAST + 1
    return date(year, month + 1, 1).toordinal()


def _month_index(at: datetime | date) -> int:
    return at.year * 12 + at.month - 1


def _months_back(at: datetime, months: int) -> datetime:
    """`at` moved by `months` (the day clamped to the month's length), at the same time of day."""
    year, month = divmod(_month_index(at) - months, 12)
    if not 1 <= year <= 9999:
        return _bound(_FIRST - 1 if year < 1 else _LAST + 1, at)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return _bound(date(year, month + 1, day).toordinal(), at, at.time())


def _number(text: str) -> int:
    if text.isdigit():
        return int(text) if len(text) <= 9 else MAX_COUNT  # more digits than any date needs
    return NUMBERS[text]


def _unit_window(unit: str, now: datetime, shift: int, phrase: str) -> TimeWindow:
    """The calendar `unit` (day, ISO week, month, year) containing `now`, moved by `shift` units."""
    today = _day(now).toordinal()
    if unit == "day":
        return _span(today + shift, today + shift + 1, now, phrase)
    if unit == "week":
        monday = today - now.weekday() + 7 * shift  # weeks start on Monday (ISO)
        return _span(monday, monday + 7, now, phrase)
    months = 1 if unit == "month" else 12
    first = _month_index(now) + shift * months if unit == "month" else (now.year + shift) * 12
    return _span(_month_ordinal(first), _month_ordinal(first + months), now, phrase)


def _rules(now: datetime):
    """(pattern, match -> TimeWindow | None), most specific first."""
    today = _day(now).toordinal()

    def relative_to_anchor(m):
        n, unit, direction, anchor = _number(m[1]), m[2], m[3], m[4]
        days = n * {"day": 1, "week": 7, "month": 30, "year": 365}[unit]
        return TimeWindow(None, None, m[0], anchor=anchor.strip(), offset_days=-days if direction == "before" else days)

    def ago(m):
        return _unit_window(m[2], now, -_number(m[1]), m[0])

    def last_or_this(m):
        which, unit = m[1], m[2]
        shift = -1 if which in ("last", "past", "previous") else 1 if which == "next" else 0
        return _unit_window(unit, now, shift, m[0])

    def past_n(m):
        n, unit = _number(m[1]), m[2]
        if unit == "day":
            start = _bound(today - n + 1, now)
        elif unit == "week":
            start = _bound(now.toordinal() - 7 * n, now, now.time())
        else:
            start = _months_back(now, n * (1 if unit == "month" else 12))
        return TimeWindow(start, _bound(today + 1, now), m[0])

    def weekday(m):
        back = (now.weekday() - WEEKDAYS[m[2]]) % 7 or 7  # the most recent one before today
        return _span(today - back, today - back + 1, now, m[0])

    def month_year(m):
        index = int(m[2]) * 12 + MONTHS[m[1]] - 1
        return _span(_month_ordinal(index), _month_ordinal(index + 1), now, m[0])

    def day_month_year(m):
        return _date_window(int(m[3]), MONTHS[m[2]], int(m[1]), m[0])

    def month_day_year(m):
        return _date_window(int(m[3]), MONTHS[m[1]], int(m[2]), m[0])

    def iso(m):
        return _date_window(int(m[1]), int(m[2]), int(m[3]), m[0])

    def _date_window(year, month, day, phrase):
        try:
            start = date(year, month, day).toordinal()
        except ValueError:
            return None  # "31 February", year 0: not a date (a month rule may still match)
        return _span(start, start + 1, now, phrase)

    def month_only(m):
        month = MONTHS[m[1]]
        index = (now.year if month <= now.month else now.year - 1) * 12 + month - 1  # the most recent such month
        return _span(_month_ordinal(index), _month_ordinal(index + 1), now, m[0])

    def year_only(m):
        index = int(m[1]) * 12
        return _span(_month_ordinal(index), _month_ordinal(index + 12), now, m[0])

    def fixed(days_back, span=1):
        return lambda m: _span(today - days_back, today - days_back + span, now, m[0])

    return [
        (rf"\b{_NUM}\s+{_UNIT}\s+(before|after)\s+((?:the|my|our|his|her|their)\s+[\w' -]+?)(?=[?.!,]|$)",
         relative_to_anchor),
        (rf"\b{_NUM}\s+{_UNIT}\s+ago\b", ago),
        (rf"\b(?:in\s+|over\s+|during\s+)?the\s+(?:last|past)\s+{_NUM}\s+{_UNIT}\b", past_n),
        (rf"\b(last|this|past|previous|next)\s+{_UNIT}\b", last_or_this),
        (rf"\b(last|on)?\s*{_WEEKDAY}\b", weekday),
        (r"\b(\d{4})-(\d{2})-(\d{2})\b", iso),
        (rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", day_month_year),
        (rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", month_day_year),
        (rf"\b{_MONTH},?\s+(\d{{4}})\b", month_year),
        (r"\bday before yesterday\b", fixed(2)),
        (r"\byesterday\b", fixed(1)),
        (r"\b(?:today|tonight|this morning|this afternoon|this evening)\b", fixed(0)),
        (r"\b(?:recently|lately)\b", fixed(29, 30)),
        (rf"\bin\s+{_MONTH}(?!\s*\d)", month_only),
        (r"\bin\s+((?:19|20)\d{2})\b", year_only),
    ]


def around_anchor(window: TimeWindow, at: datetime) -> TimeWindow:
    """The window of a phrase relative to an event ("two days before the meeting"), once the
    event is dated `at`: the day `offset_days` from it, give or take a day (clamped)."""
    day = _day(at).toordinal() + window.offset_days
    return TimeWindow(_bound(day - 1, at), _bound(day + 2, at), window.phrase, window.anchor, window.offset_days)


def resolve(query: str, now: datetime) -> TimeWindow | None:
    """The first time expression of `query` (most specific rule wins), or None."""
    text = query.lower()
    for pattern, build in _rules(now):
        match = re.search(pattern, text)
        if match:
            window = build(match)
            if window is not None:
                return window
    return None
