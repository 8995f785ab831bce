"""An in-memory double of the Redis read model's writes (projectors/redis_projection.RedisWrites):
what projectors/redis_store.APPLY_LUA does to the keys of one version, in dicts, so every event's
effect is tested without a server (tests/unit/test_projections_redis.py) and the script is held
to the same observable state (tests/integration/test_read_model_contract.py).

Sorted sets are dicts member -> score, ordered as Redis orders them (score, then member). The
answers other writers cache per user (query API answers, Idempotency-Key answers), which an
erasure also deletes, are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.redis_read_model import RECENT_LIMIT
from projectors.applied import Applied
from projectors.redis_projection import iso

FORGET = ("forgotten", ("active", "archived"))
RESTORE = ("active", ("forgotten", "archived"))


def _newest(zset: dict[str, int]) -> list[str]:
    return sorted(zset, key=lambda member: (zset[member], member), reverse=True)


class InMemoryRedis:
    """RedisWrites over dicts: `docs` (id -> hash), per user `ids`, `recent`, `inactive` (sorted
    sets), `all` (set) and `gen`, and `watermarks` (partition -> offset) of `topic`."""

    def __init__(self, topic: str = "events", limit: int = RECENT_LIMIT):
        self.topic, self.limit = topic, limit
        self.docs: dict[str, dict[str, str]] = {}
        self.sets: dict[tuple[str, str], dict[str, int]] = {}  # (user, ids|recent|inactive) -> sorted set
        self.all: dict[str, set[str]] = {}
        self.gen: dict[str, int] = {}
        self.watermarks: dict[int, int] = {}

    # --- RedisWrites ---------------------------------------------------------------------------

    def create(self, at: Applied, doc: dict[str, str], score: int) -> None:
        self._step(at, lambda: self._create(at, doc, score))

    def consolidate(self, at: Applied, doc: dict[str, str], score: int, sources: list[str]) -> None:
        def apply() -> None:
            if not self._create(at, doc, score):
                return
            for source in sources:
                state = self.docs.get(source, {}).get("state")
                if state in ("active", "forgotten") and self._changeable(source, at):
                    self._set_state(source, at, state, "archived")
        self._step(at, apply)

    def update(self, at: Applied, memory_id: str, fields: dict[str, str]) -> None:
        def apply() -> None:
            if self._changeable(memory_id, at):
                self._touch(memory_id, at, **fields)
                self._bump(at)
        self._step(at, apply)

    def delete(self, at: Applied, memory_id: str) -> None:
        def apply() -> None:
            if self._changeable(memory_id, at):
                self._mark_deleted(memory_id, at)
                self._bump(at)
                self._refill(at.event.user_id)
        self._step(at, apply)

    def delete_scope(self, at: Applied, scope: dict[str, str]) -> None:
        def apply() -> None:
            user = at.event.user_id
            deleted = 0
            for memory_id in [*self._members(user, "ids"), *self._members(user, "inactive")]:
                doc = self.docs.get(memory_id, {})
                if all(doc.get(name) == value for name, value in scope.items()) \
                        and not self._seen(memory_id, at, "_ct", "_cp", "_co") and self._changeable(memory_id, at):
                    self._mark_deleted(memory_id, at)
                    deleted += 1
            if deleted:
                self._bump(at)
                self._refill(user)
        self._step(at, apply)

    def forget(self, at: Applied, memory_id: str) -> None:
        self._step(at, lambda: self._transition(memory_id, at, *FORGET))

    def restore(self, at: Applied, memory_id: str) -> None:
        self._step(at, lambda: self._transition(memory_id, at, *RESTORE))

    def erase_user(self, at: Applied) -> None:
        def apply() -> None:
            user = at.event.user_id
            for memory_id in {*self.all.get(user, ()), *self._members(user, "ids"), *self._members(user, "inactive")}:
                if self.docs.get(memory_id, {}).get("user_id") == user:
                    del self.docs[memory_id]
            for what in ("ids", "recent", "inactive"):
                self.sets.pop((user, what), None)
            self.all.pop(user, None)
            self._bump(at)
        self._step(at, apply)

    def advance(self, at: Applied) -> None:
        self._step(at, lambda: None)

    # --- what the script's helpers do ----------------------------------------------------------

    def _step(self, at: Applied, apply: Callable[[], None]) -> None:
        """A record at or below its partition's watermark is skipped; otherwise applied, and the watermark moves."""
        if at.offset > self.watermarks.get(at.partition, -1):
            apply()
            self.watermarks[at.partition] = at.offset

    def _zset(self, user: str, what: str) -> dict[str, int]:
        return self.sets.setdefault((user, what), {})

    def _members(self, user: str, what: str) -> list[str]:
        """ZRANGE 0 -1: lowest score first."""
        return _newest(self.sets.get((user, what), {}))[::-1]

    def _trim_recent(self, user: str) -> None:
        recent = self._zset(user, "recent")
        for member in _newest(recent)[self.limit:]:
            del recent[member]

    def _refill(self, user: str) -> None:
        recent, ids = self._zset(user, "recent"), self._zset(user, "ids")
        have = len(recent)
        if have < self.limit and len(ids) > have:
            for member in _newest(ids)[have:self.limit]:
                recent[member] = ids[member]
            self._trim_recent(user)

    def _position(self, at: Applied, prefix: str = "") -> dict[str, str]:
        return {f"_{prefix}t": self.topic, f"_{prefix}p": str(at.partition), f"_{prefix}o": str(at.offset)}

    def _seen(self, memory_id: str, at: Applied, topic_field="_t", partition_field="_p", offset_field="_o") -> bool:
        doc = self.docs.get(memory_id, {})
        return (doc.get(topic_field) == self.topic and doc.get(partition_field) == str(at.partition)
                and int(doc[offset_field]) >= at.offset)

    def _changeable(self, memory_id: str, at: Applied) -> bool:
        doc = self.docs.get(memory_id)
        return (doc is not None and doc.get("user_id") == at.event.user_id and doc.get("state") != "deleted"
                and doc.get("_e") != at.event.event_id and not self._seen(memory_id, at))

    def _bump(self, at: Applied) -> None:
        self.gen[at.event.user_id] = self.gen.get(at.event.user_id, 0) + 1

    def _touch(self, memory_id: str, at: Applied, **fields: str) -> None:
        doc = self.docs[memory_id]
        doc.update(updated_at=iso(at.event.occurred_at), _e=at.event.event_id, **self._position(at), **fields)
        doc["version"] = str(int(doc["version"]) + 1)

    def _create(self, at: Applied, doc: dict[str, str], score: int) -> bool:
        memory_id, user = doc["id"], at.event.user_id
        if memory_id in self.docs:
            return False
        self.docs[memory_id] = {"state": "active", "version": "1", "_e": at.event.event_id, **self._position(at),
                                **self._position(at, "c"), **doc}
        self._zset(user, "ids")[memory_id] = score
        self.all.setdefault(user, set()).add(memory_id)
        self._zset(user, "recent")[memory_id] = score
        self._trim_recent(user)
        self._bump(at)
        return True

    def _mark_deleted(self, memory_id: str, at: Applied) -> None:
        self._touch(memory_id, at, state="deleted")
        for what in ("ids", "recent", "inactive"):
            self._zset(at.event.user_id, what).pop(memory_id, None)

    def _set_state(self, memory_id: str, at: Applied, was: str, to: str) -> None:
        """active <-> archived/forgotten: the id moves between `ids` (and `recent`) and `inactive`
        with its score (created_at), so a restore puts it back where it was."""
        user = at.event.user_id
        self._touch(memory_id, at, state=to)
        ids, inactive, recent = self._zset(user, "ids"), self._zset(user, "inactive"), self._zset(user, "recent")
        if was == "active":
            inactive[memory_id] = ids.pop(memory_id, 0)
            recent.pop(memory_id, None)
            self._refill(user)
        elif to == "active":
            score = inactive.pop(memory_id, 0)
            ids[memory_id] = recent[memory_id] = score
            self._trim_recent(user)

    def _transition(self, memory_id: str, at: Applied, to: str, from_states: tuple[str, ...]) -> None:
        state = self.docs.get(memory_id, {}).get("state")
        if state in from_states and self._changeable(memory_id, at):
            self._set_state(memory_id, at, state, to)
            self._bump(at)
