"""The latest consistency token of each user this client wrote for (read-your-writes).

Every write answers with a token, `<topic>/<partition>:<offset>[,...]`: where in the log it
landed. The client keeps, per user, the highest offset seen in each partition (so a slow
answer to an older concurrent write never moves the token back) and passes it with that
user's next reads, which the query API answers only once its read models applied it.
The token is otherwise opaque: one the client cannot parse simply replaces the previous.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


def _parse(token: str) -> tuple[str, dict[int, int]] | None:
    topic, sep, rest = token.rpartition("/")
    if not sep or not topic or not rest:
        return None
    offsets: dict[int, int] = {}
    for part in rest.split(","):
        partition, colon, offset = part.partition(":")
        if not colon or not partition.isdigit() or not offset.isdigit():
            return None
        offsets[int(partition)] = max(int(offset), offsets.get(int(partition), -1))
    return topic, offsets


def merge(old: str | None, new: str) -> str:
    """A token covering both (the highest offset per partition); `new` if they cannot be merged."""
    if not old:
        return new
    a, b = _parse(old), _parse(new)
    if a is None or b is None or a[0] != b[0]:
        return new
    offsets = dict(a[1])
    for partition, offset in b[1].items():
        offsets[partition] = max(offset, offsets.get(partition, -1))
    return f"{a[0]}/" + ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))


class TokenStore:
    """Thread-safe, bounded (least recently used users are forgotten first)."""

    def __init__(self, max_users: int = 10_000):
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.max_users = max_users

    def remember(self, user_id: str, token: str | None) -> None:
        if not user_id or not token:
            return
        with self._lock:
            self._tokens[user_id] = merge(self._tokens.get(user_id), token)
            self._tokens.move_to_end(user_id)
            while len(self._tokens) > self.max_users:
                self._tokens.popitem(last=False)

    def get(self, user_id: str | None) -> str | None:
        if not user_id:
            return None
        with self._lock:
            return self._tokens.get(user_id)

    def forget(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._tokens.clear()
            else:
                self._tokens.pop(user_id, None)
