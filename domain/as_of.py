"""`as_of`: the past moment a read asks about, and which of a user's events it covers (pure).

A read with `as_of` is answered with the state the read models had at that moment, rebuilt
from the log (application/as_of.py). The moment is either
- a time (ISO 8601; naive = UTC): the user's events in log order, up to the first one that
  happened (`occurred_at`) after it. A prefix, as the read models applied them, so clocks of
  two command processes a few milliseconds apart never make a later event appear without an
  earlier one. A time in the future is refused beyond FUTURE_SKEW (clock skew is read as now);
- a consistency token (domain/consistency.py, what a command returned): the user's events
  up to and including that position in the user's partition (events are keyed by user id, so
  one partition holds all of them, in order). A token of another topic, or naming no position
  in the user's partition (another user's write: offsets of two partitions do not compare),
  is refused.
Either way the refusal is InvalidAsOf (the APIs answer 422 naming the field `as_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from domain.consistency import ConsistencyToken, InvalidConsistencyToken

FUTURE_SKEW = timedelta(seconds=60)  # a client's clock ahead by less than this asks for now
MAX_LENGTH = 4_096


class InvalidAsOf(ValueError):
    """An as_of that names no moment this log can answer for (or a request `field` that cannot
    go with one)."""

    def __init__(self, message: str, field: str = "as_of"):
        super().__init__(message)
        self.field = field


class LogUnreadable(Exception):
    """The log could not be read back (Kafka unreachable or too slow, or the key store that opens its
    events): the APIs answer 503 naming `dependency`."""

    def __init__(self, message: str, dependency: str = "kafka"):
        super().__init__(message)
        self.dependency = dependency


@dataclass(frozen=True)
class Moment:
    """A past moment of one user's log: `time`, or `offset` in `partition` (inclusive)."""
    raw: str
    partition: int
    time: datetime | None = None
    offset: int | None = None

    def key(self) -> tuple:
        """What identifies the events it covers (the rebuilt states' cache key)."""
        return (self.partition, self.time, self.offset)

    def covers(self, offset: int, occurred_at: datetime) -> bool:
        """Whether the user's event at `offset` (which happened at `occurred_at`) is in the past
        of this moment. The first event it does not cover ends the prefix."""
        if self.offset is not None:
            return offset <= self.offset
        return occurred_at <= self.time


def parse(raw: str, topic: str, partition: int, partitions: int, now: datetime) -> Moment:
    """The moment `raw` names for a user whose events are in `partition` of `topic`."""
    text = raw.strip()
    if not text or len(text) > MAX_LENGTH:
        raise InvalidAsOf("as_of must be an ISO 8601 time or a consistency token")
    if "/" in text:
        return _of_token(text, topic, partition, partitions)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith(("Z", "z")) else text)
        at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    except ValueError:
        raise InvalidAsOf(f"as_of {text[:80]!r} is neither an ISO 8601 time (2026-05-01T14:00:00Z) nor a "
                          "consistency token (<topic>/<partition>:<offset>)") from None
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise InvalidAsOf(f"as_of {text[:80]!r} is outside the years 1-9999 in UTC") from None
    if at > now + FUTURE_SKEW:
        raise InvalidAsOf(f"as_of {at.isoformat()} is in the future (now is {now.isoformat()}): the log has no "
                          "state to show for it yet")
    return Moment(raw, partition, time=min(at, now))


def _of_token(text: str, topic: str, partition: int, partitions: int) -> Moment:
    try:
        token = ConsistencyToken.checked(text, topic, partitions)
    except InvalidConsistencyToken as exc:
        raise InvalidAsOf(str(exc).replace("consistency_token", "as_of token")) from None
    offsets = dict(token.offsets)
    if partition not in offsets:
        named = ", ".join(str(p) for p in offsets)
        raise InvalidAsOf(f"as_of token names partition {named}, but this user's events are in partition {partition} "
                          "(a token of another user's write names no moment of this user's log)")
    return Moment(text, partition, offset=offsets[partition])
