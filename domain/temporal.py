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
from datetime import datetime, timedelta

MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): n for n, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): n for n, name in enumerate(calendar.day_name)}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
           "couple of": 2, "few": 3, "several": 3}
UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}

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


def _month_start(year: int, month: int, like: datetime) -> datetime:
    return like.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(at: datetime, months: int) -> datetime:
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBERS[text]


def _window(unit: str, start: datetime) -> tuple[datetime, datetime]:
    if unit == "day":
        return start, start + timedelta(days=1)
    if unit == "week":
        return start, start + timedelta(days=7)
    if unit == "month":
        return start, _add_months(start, 1)
    return start, start.replace(year=start.year + 1)


def _unit_start(unit: str, now: datetime) -> datetime:
    today = _day(now)
    if unit == "day":
        return today
    if unit == "week":
        return today - timedelta(days=today.weekday())  # weeks start on Monday (ISO)
    if unit == "month":
        return today.replace(day=1)
    return today.replace(month=1, day=1)


def _shift(unit: str, at: datetime, n: int) -> datetime:
    if unit == "day":
        return at + timedelta(days=n)
    if unit == "week":
        return at + timedelta(weeks=n)
    if unit == "month":
        return _add_months(at, n)
    return _add_months(at, 12 * n)


def _rules(now: datetime):
    """(pattern, match -> TimeWindow | None), most specific first."""
    today = _day(now)

    def relative_to_anchor(m):
        n, unit, direction, anchor = _number(m[1]), m[2], m[3], m[4]
        days = n * {"day": 1, "week": 7, "month": 30, "year": 365}[unit]
        return TimeWindow(None, None, m[0], anchor=anchor.strip(), offset_days=-days if direction == "before" else days)

    def ago(m):
        n, unit = _number(m[1]), m[2]
        start = _shift(unit, _unit_start(unit, now), -n)
        return TimeWindow(*_window(unit, start), m[0])

    def last_or_this(m):
        which, unit = m[1], m[2]
        start = _unit_start(unit, now)
        if which in ("last", "past", "previous"):
            start = _shift(unit, start, -1)
        elif which == "next":
            start = _shift(unit, start, 1)
        return TimeWindow(*_window(unit, start), m[0])

    def past_n(m):
        n, unit = _number(m[1]), m[2]
        return TimeWindow(_shift(unit, today, -n) + timedelta(days=1) if unit == "day" else _shift(unit, now, -n),
                          today + timedelta(days=1), m[0])

    def weekday(m):
        back = (today.weekday() - WEEKDAYS[m[2]]) % 7 or 7  # the most recent one before today
        start = today - timedelta(days=back)
        return TimeWindow(start, start + timedelta(days=1), m[0])

    def month_year(m):
        month, year = MONTHS[m[1]], int(m[2])
        start = _month_start(year, month, now)
        return TimeWindow(start, _add_months(start, 1), m[0])

    def day_month_year(m):
        day, month, year = int(m[1]), MONTHS[m[2]], int(m[3])
        return _date_window(year, month, day, m[0])

    def month_day_year(m):
        month, day, year = MONTHS[m[1]], int(m[2]), int(m[3])
        return _date_window(year, month, day, m[0])

    def iso(m):
        return _date_window(int(m[1]), int(m[2]), int(m[3]), m[0])

    def _date_window(year, month, day, phrase):
        try:
            start = now.replace(year=year, month=month, day=day, hour=0, minute=0, second=0, microsecond=0)
        except ValueError:
            return None  # "31 February": not a date
        return TimeWindow(start, start + timedelta(days=1), phrase)

    def month_only(m):
        month = MONTHS[m[1]]
        year = now.year if month <= now.month else now.year - 1  # the most recent such month
        start = _month_start(year, month, now)
        return TimeWindow(start, _add_months(start, 1), m[0])

    def year_only(m):
        start = now.replace(year=int(m[1]), month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return TimeWindow(start, start.replace(year=start.year + 1), m[0])

    def fixed(days_back, span=1):
        return lambda m: TimeWindow(today - timedelta(days=days_back), today - timedelta(days=days_back - span), m[0])

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
        (r"\b(?:recently|lately)\b", lambda m: TimeWindow(today - timedelta(days=29), today + timedelta(days=1), m[0])),
        (rf"\bin\s+{_MONTH}(?!\s*\d)", month_only),
        (r"\bin\s+((?:19|20)\d{2})\b", year_only),
    ]


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
