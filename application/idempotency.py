"""Idempotency-Key as a wrapper of any command use case: a retried command returns the first
answer and appends nothing new. No HTTP and no Redis here (the store is a port:
command_api/idempotency.py IdempotencyStore keeps claims and answers in Redis).

The first request with a key claims it (pending); once its events are in the log its answer
is stored under the key. A retry with the same key and request gets that answer; the same key
with another request is IdempotencyConflict; a retry while the first still runs waits for it
briefly, then IdempotencyInProgress. Event and memory ids derive from the key and the request's
fingerprint, so a retry that slips past the store carries the same ids. With the store down a
keyed create (`creates`) still runs, unrecorded (a create never overwrites in any read model);
any other keyed command is IdempotencyUnavailable (retried after a later change it would apply
again over it).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("5b0f6c1e-8a1f-4c55-9a77-6f0d3f1f2a10")
Ids = Callable[[str, int], str]  # (kind, index) -> the id of the command's index-th event or memory of that kind


class IdempotencyConflict(Exception):
    """The key was used with another request body."""


class IdempotencyInProgress(Exception):
    """The first request with this key has not finished."""


class IdempotencyUnavailable(Exception):
    """The store is down: the key cannot be honoured."""


class InvalidIdempotencyKey(ValueError):
    """A key must be 1-255 printable characters."""


class AnswerStore(Protocol):
    async def begin(self, user_id: str, key: str, fp: str) -> dict | None:
        """Claim the key: None when this request is the first, else the earlier answer."""

    async def finish(self, user_id: str, key: str, fp: str, answer: dict) -> None: ...

    async def abandon(self, user_id: str, key: str) -> None: ...


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def derived_id(user_id: str, key: str, kind: str, index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}\x00{user_id}\x00{key}\x00{index}"))


def checked_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise InvalidIdempotencyKey("Idempotency-Key: 1-255 printable characters")
    return key


async def once(store: AnswerStore, user_id: str, key: str | None, fp: Callable[[], Awaitable[str]],
               work: Callable[[Ids | None], Awaitable[dict]], creates: bool = False) -> dict:
    """The answer of `work` (given the ids to use, None without a key), or of the first run with
    `key`. `fp`: the request's fingerprint (asked only with a key)."""
    if key is None:
        return await work(None)
    checked_key(key)
    request_fp = await fp()
    recorded = True  # the key's claim and answer are kept in the store
    try:
        earlier = await store.begin(user_id, key, request_fp)
    except IdempotencyUnavailable as exc:
        if not creates:
            log.warning("idempotency store: %s", exc)
            raise
        log.warning("idempotency store: %s; a keyed create appends unrecorded", exc)
        earlier, recorded = None, False
    if earlier is not None:
        return earlier
    try:
        answer = await work(lambda kind, index: derived_id(user_id, f"{key}\x00{request_fp}", kind, index))
    except BaseException:
        if recorded:
            await store.abandon(user_id, key)
        raise
    if recorded:
        try:
            await store.finish(user_id, key, request_fp, answer)
        except Exception:  # the write is in the log: acknowledge it; the claim expires by itself
            log.warning("could not store the answer of Idempotency-Key for %s", user_id, exc_info=True)
    return answer
