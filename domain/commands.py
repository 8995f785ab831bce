"""Commands: requests to change state, named in the imperative. They may be refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class AddMemory:
    user_id: str
    text: str
    actor: str
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    importance: float | None = None
    happened_at: datetime | None = None
    correlation_id: str | None = None
