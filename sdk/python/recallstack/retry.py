"""When and how long the SDK waits before trying a request again (pure: no I/O).

Retried: 429, 502, 503, 504, a 409 `idempotency_in_progress` (the first try of the same
write is still running), and transport failures (connection refused or reset, timeouts).
Every write carries an Idempotency-Key that stays the same across its retries, so a
retried write is applied once, whatever happened to the earlier try.

Waits (n = 0 for the first retry):
- no Retry-After: full jitter, `uniform(0, min(max_delay, base_delay * 2**n))`;
- Retry-After r (seconds or an HTTP date): `r + uniform(0, min(max_delay, base_delay * 2**n))`:
  never earlier than the server asked, spread so that clients told the same r do not all
  come back at once. A Retry-After beyond the remaining budget ends the retries at once.
Limits: at most `max_attempts` tries in all, and no new try starts after `total_timeout`
seconds from the first (a try in flight runs to its own timeout).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How persistently a client retries. `RetryPolicy.none()` never retries."""

    max_attempts: int = 5          # tries in all, the first included
    base_delay: float = 0.25       # seconds; doubles with each retry
    max_delay: float = 8.0         # cap of the exponential part
    total_timeout: float = 30.0    # no try starts later than this after the first
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.total_timeout < 0:
            raise ValueError("delays and total_timeout must not be negative")

    @classmethod
    def none(cls) -> "RetryPolicy":
        return cls(max_attempts=1)

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The full-jitter part of the wait before retry number `retry` (0-based)."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * (2 ** min(retry, 62))))

    def start(self, *, clock: Callable[[], float] = time.monotonic,
              rng: random.Random | None = None) -> "RetryState":
        return RetryState(self, clock, rng or random.Random())


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def retryable(outcome: httpx.Response | BaseException, policy: RetryPolicy) -> bool:
    if isinstance(outcome, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return False  # a wrong URL or a malformed request: trying again cannot help
    if isinstance(outcome, httpx.TransportError):
        return True
    if isinstance(outcome, BaseException):
        return False
    if outcome.status_code in policy.retry_statuses:
        return True
    return outcome.status_code == 409 and error_code(outcome) == "idempotency_in_progress"


class RetryState:
    """The retries of one logical call: `next_delay(outcome)` says how long to wait before
    the next try, or None when the outcome is final (a success, an error not worth
    retrying, or the budget is spent)."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float], rng: random.Random):
        self.policy, self.clock, self.rng = policy, clock, rng
        self.started = clock()
        self.attempts = 0
        self.gave_up: str | None = None  # why the last retryable outcome was not retried
        self.last_retry_after: float | None = None

    def next_delay(self, outcome: httpx.Response | BaseException) -> float | None:
        self.attempts += 1
        self.last_retry_after = None
        if not retryable(outcome, self.policy):
            return None
        if isinstance(outcome, httpx.Response):
            self.last_retry_after = retry_after_seconds(outcome.headers.get("retry-after"))
        if self.attempts >= self.policy.max_attempts:
            self.gave_up = f"gave up after {self.attempts} attempts"
            return None
        remaining = self.policy.total_timeout - (self.clock() - self.started)
        if remaining <= 0:
            self.gave_up = f"gave up after {self.policy.total_timeout:g}s"
            return None
        ask = self.last_retry_after
        if ask is not None and ask > remaining:
            self.gave_up = (f"the server asked to retry after {ask:g}s, beyond the remaining "
                            f"{remaining:.1f}s of the retry budget")
            return None
        delay = (ask or 0.0) + self.policy.backoff(self.attempts - 1, self.rng)
        return min(delay, remaining)
