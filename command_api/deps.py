"""What the command API's routes are given: the handlers' context (its ports), the
Idempotency-Key store, and where the Postgres read model stands (read-your-writes on
X-Consistency-Token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adapters.http_auth import Authenticator
from application.command_handlers import CommandContext
from application.core_memory import CoreMemoryEdits
from application.idempotency import AnswerStore

Positions = Callable[[], Awaitable[dict[int, int]]]


@dataclass
class CommandDeps:
    base: CommandContext  # each request gets a copy with its correlation id (and a keyed one its ids)
    idempotency: AnswerStore
    positions: Positions  # the Postgres read model's applied offsets
    consistency_wait_ms: int
    auth: Authenticator
    infer_default: bool = False  # an add of messages is extracted (ReceiveConversation) unless it says `infer`
    log_ends: Positions | None = None  # a token past the log's end is a 400
    core_memory: CoreMemoryEdits | None = None  # core memory blocks' edits (application/core_memory.py)
