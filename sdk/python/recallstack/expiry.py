"""A memory's expiry as the SDK sends it: `expires_at` (a datetime or an ISO 8601 string; naive is
UTC), `ttl_seconds`, or mem0's `expiration_date` (a YYYY-MM-DD date, inclusive: the memory leaves at
the next midnight UTC, as on mem0's platform). The server checks the rest (in the future, in range)
and answers 422 naming the field. On an update, None for `expires_at` or `expiration_date` clears
the expiry; leaving them out keeps it (`UNSET`)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from recallstack.errors import InvalidRequest

UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET", "__bool__": lambda self: False})()


def expiry_body(expires_at: Any = UNSET, ttl_seconds: int | None = None, expiration_date: Any = UNSET) -> dict:
    """The body fields of an expiry (empty when none is given; `expires_at: None` clears one)."""
    if expires_at is not UNSET and expiration_date is not UNSET:
        raise InvalidRequest("give expires_at or expiration_date (mem0's name), not both", code="invalid_request",
                             details={"field": "expiration_date"})
    if expiration_date is not UNSET:
        expires_at = _end_of(expiration_date)
    body: dict[str, Any] = {}
    if expires_at is not UNSET:
        body["expires_at"] = expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    return body


def _end_of(day: Any) -> Any:
    """mem0's inclusive date as the instant the memory leaves: the next midnight in UTC."""
    if day is None or isinstance(day, datetime):
        return day
    if isinstance(day, str) and len(day) == 10:
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise InvalidRequest("expiration_date: a YYYY-MM-DD date", code="invalid_request",
                                 details={"field": "expiration_date"}) from None
    if isinstance(day, date):
        return datetime.combine(day + timedelta(days=1), time(), timezone.utc)
    return day  # an ISO 8601 time: the server judges it
