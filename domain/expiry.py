"""Memory expiry: a memory can say when it stops being true (a sprint goal, an on-call rotation).

Pure rules, no clock of their own: the caller passes `now` (a command's time, a read's time), so
tests control time and every reader applies the same boundary. A memory with `expires_at` is
expired from that instant on (`expires_at <= now`): reads hide it at once, and the forget worker
later appends MemoryExpired so every read model and the history say so.

An add or an update gives either an absolute `expires_at` (ISO 8601; a naive time is UTC) or a
relative `ttl_seconds`; the event always carries the absolute time, so a replay decides the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

MAX_TTL_SECONDS = 10 * 366 * 86_400  # ten years: beyond that, a time is clearer than a number of seconds
EXPIRED_REASON = "expired"  # the reason MemoryExpired carries, shown in the history


class ExpiryError(ValueError):
    """A refused expiry; `field` is the request field to name in the 4xx."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def as_utc(value: datetime) -> datetime:
    """A naive time is taken as UTC; an aware one is converted to UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def check_ttl(ttl_seconds: int) -> int:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise ExpiryError("ttl_seconds", "must be a whole number of seconds")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ExpiryError("ttl_seconds", f"must be between 1 and {MAX_TTL_SECONDS} seconds, got {ttl_seconds}")
    return ttl_seconds


def check_future(expires_at: datetime, now: datetime) -> datetime:
    """`expires_at` in UTC, if it is after `now` (an expiry in the past would store a memory nobody sees)."""
    expires_at = as_utc(expires_at)
    if expires_at <= now:
        raise ExpiryError("expires_at", f"must be in the future (it is {expires_at.isoformat()}, now is "
                                        f"{now.isoformat()})")
    return expires_at


def expiry_of(expires_at: datetime | None, ttl_seconds: int | None, now: datetime) -> datetime | None:
    """The absolute expiry a request asks for (None: none): `expires_at` as given, or `now` plus
    `ttl_seconds`. Both at once is refused: which one would win is a guess."""
    if expires_at is not None and ttl_seconds is not None:
        raise ExpiryError("ttl_seconds", "give expires_at or ttl_seconds, not both")
    if ttl_seconds is not None:
        return now + timedelta(seconds=check_ttl(ttl_seconds))
    if expires_at is not None:
        return check_future(expires_at, now)
    return None


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    """Expired from the instant itself on: at `expires_at` a read no longer shows it."""
    return expires_at is not None and as_utc(expires_at) <= now


def unexpired(documents: Iterable[dict], now: datetime) -> list[dict]:
    """The documents (API shape: `expires_at` ISO 8601 or None/absent) not expired at `now`."""
    return [d for d in documents if not is_expired(_instant(d.get("expires_at")), now)]


def _instant(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
