"""Core memory blocks in the SDK: the request builders `Client` and `AsyncClient` send, and the
`Block` record (docs/api.md, "Core memory blocks").

Letta's tool names and signatures, so an agent written for Letta's core memory calls the same:
`core_memory_append(label, content)`, `core_memory_replace(label, old_content, new_content)`,
plus `core_memory_read(label)`, `core_memory_list()`, `core_memory_set(label, value, ...)`,
`core_memory_delete(label)` and `core_memory_history(label)`. Every method takes `user_id` (default
the client's) and `agent_id` (none: the user-wide block). Kept apart from client.py, which holds
mem0's methods.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

from recallstack.errors import InvalidRequest
from recallstack.ids import optional_id
from recallstack.types import Record, WriteResult, _datetime, _Field

LABEL_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the API's label pattern (domain/core_memory.py)


class Block(Record):
    """A core memory block: `label`, `agent_id` (None: user-wide), `value`, `tokens` it holds and its
    `limit_tokens` (cl100k_base), `description`, `version` (1 at creation, +1 per edit)."""

    label = _Field[str](default="")
    agent_id = _Field["str | None"]()
    value = _Field[str](default="")
    tokens = _Field[int](default=0)
    limit_tokens = _Field[int](default=0)
    description = _Field["str | None"]()
    version = _Field[int](default=0)
    created_at = _Field["datetime | None"](convert=_datetime)
    updated_at = _Field["datetime | None"](convert=_datetime)

    def __str__(self) -> str:
        return self.value


def label_arg(value: Any) -> str:
    if not isinstance(value, str) or not LABEL_RE.fullmatch(value):
        raise InvalidRequest(f"label: not a block label (1-64 of a-z 0-9 _ -, starting with a letter or digit): "
                             f"{value!r:.80}", code="invalid_request", details={"field": "label"})
    return value


def _path(label: str, suffix: str = "") -> str:
    return f"/v1/core-memory/{quote(label_arg(label), safe='')}{suffix}"


class CoreMemoryRequests:
    """The builders of the core memory methods (mixed into client._Requests: `_user` and `_Call` come
    from there, `_Call` passed in as `_call` to avoid an import cycle)."""

    def _block_call(self, method: str, label: str, parse, *, user_id, agent_id, suffix: str = "",
                    body: dict | None = None, write: bool = False, idempotency_key: str | None = None,
                    token: str | None = None, listing: bool = False):
        from recallstack.client import _Call

        user_id = self._user(user_id)  # type: ignore[attr-defined]
        params = {"user_id": user_id, "agent_id": optional_id(agent_id, "agent_id")}
        path = "/v1/core-memory" if listing else _path(label, suffix)
        if write:
            return _Call(method, path, parse, params=params, body=body, user_id=user_id, write=True,
                         idempotency_key=idempotency_key or str(uuid.uuid4()))
        return _Call(method, path, parse, params=params, user_id=user_id, token_in="query", token=token)

    def core_memory_read(self, label: str, *, user_id: str | None = None, agent_id: str | None = None,
                         consistency_token: str | None = None) -> Block:
        """One block (`Block`; `str(block)` is its value). Raises `NotFound` for an unknown label."""
        return self._block_call("GET", label, Block, user_id=user_id, agent_id=agent_id,
                                token=consistency_token)  # type: ignore[return-value]

    def core_memory_list(self, *, user_id: str | None = None, agent_id: str | None = None,
                         consistency_token: str | None = None) -> list[Block]:
        """The user's user-wide blocks, or one agent's, oldest first."""
        return self._block_call("GET", "", lambda body: [Block(b) for b in body.get("results", [])],
                                user_id=user_id, agent_id=agent_id, token=consistency_token,
                                listing=True)  # type: ignore[return-value]

    def core_memory_set(self, label: str, value: str = "", *, limit_tokens: int | None = None,
                        description: str | None = None, user_id: str | None = None, agent_id: str | None = None,
                        idempotency_key: str | None = None) -> WriteResult:
        """Create the block, or set its whole value (and its limit or description when given).
        Raises `InvalidRequest` (422 block_too_large) when the value exceeds the limit."""
        body = {"value": value, **({"limit_tokens": limit_tokens} if limit_tokens is not None else {}),
                **({"description": description} if description is not None else {})}
        return self._block_call("PUT", label, WriteResult, user_id=user_id, agent_id=agent_id, body=body,
                                write=True, idempotency_key=idempotency_key)  # type: ignore[return-value]

    def core_memory_append(self, label: str, content: str, *, user_id: str | None = None,
                           agent_id: str | None = None, idempotency_key: str | None = None) -> WriteResult:
        """Letta's core_memory_append: `content` on a new line at the end of the block. Raises
        `InvalidRequest` (block_too_large, naming the limit and the size) past the limit, `NotFound`
        for an unknown block, `Conflict` (409 core_memory_busy) when another edit held it too long."""
        return self._block_call("POST", label, WriteResult, user_id=user_id, agent_id=agent_id, suffix="/append",
                                body={"content": content}, write=True,
                                idempotency_key=idempotency_key)  # type: ignore[return-value]

    def core_memory_replace(self, label: str, old_content: str, new_content: str, *, user_id: str | None = None,
                            agent_id: str | None = None, idempotency_key: str | None = None) -> WriteResult:
        """Letta's core_memory_replace: every occurrence of `old_content` (exact) becomes
        `new_content` ("" deletes it). Raises `InvalidRequest` (old_content_not_found, block_too_large)."""
        return self._block_call("POST", label, WriteResult, user_id=user_id, agent_id=agent_id, suffix="/replace",
                                body={"old_content": old_content, "new_content": new_content}, write=True,
                                idempotency_key=idempotency_key)  # type: ignore[return-value]

    def core_memory_delete(self, label: str, *, user_id: str | None = None, agent_id: str | None = None,
                           idempotency_key: str | None = None) -> WriteResult:
        """Delete the block (its history stays until the user is erased)."""
        return self._block_call("DELETE", label, WriteResult, user_id=user_id, agent_id=agent_id, write=True,
                                idempotency_key=idempotency_key)  # type: ignore[return-value]

    def core_memory_history(self, label: str, *, user_id: str | None = None, agent_id: str | None = None,
                            consistency_token: str | None = None) -> list[dict]:
        """Every edit of the block in log order: event_type, actor, occurred_at, version, old_value,
        new_value, applied (False: skipped, with `skipped` saying why)."""
        return self._block_call("GET", label, lambda body: list(body.get("history", [])), user_id=user_id,
                                agent_id=agent_id, suffix="/history",
                                token=consistency_token)  # type: ignore[return-value]


METHODS = ("core_memory_read", "core_memory_list", "core_memory_set", "core_memory_append", "core_memory_replace",
           "core_memory_delete", "core_memory_history")
