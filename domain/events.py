"""Domain events: immutable facts, named in the past tense.

Every event carries the envelope fields of the contract (event_id, event_type,
schema_version, occurred_at, user_id, actor, correlation_id, causation_id).
`occurred_at` is when the event happened; a memory's own `happened_at` is when the
remembered thing happened (the REST field `occurred_at` of an add).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ClassVar


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class Event:
    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    user_id: str
    actor: str
    event_id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = field(default_factory=new_id)
    causation_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MemoryCreated(Event):
    event_type: ClassVar[str] = "MemoryCreated"
    schema_version: ClassVar[int] = 1

    memory_id: str
    text: str
    embedding: tuple[float, ...]
    embedding_model: str
    happened_at: datetime
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    importance: float | None = None


EVENT_TYPES: dict[str, type[Event]] = {cls.event_type: cls for cls in (MemoryCreated,)}
