"""The values and ports of memory intelligence: extracted facts, reconciliation decisions,
summaries. Pure types only; the offline implementations are in domain/extraction.py,
domain/reconciliation.py and domain/consolidation.py, the LLM ones in consolidation/llm.py.

The extraction worker and the consolidation worker depend on the three protocols below,
never on a concrete implementation; bootstrap picks the LLM ones when an endpoint is
configured and the offline ones otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

from domain.events import ChatMessage, Entity, Relation

Action = Literal["ADD", "UPDATE", "DELETE", "NONE"]
ACTIONS: tuple[Action, ...] = ("ADD", "UPDATE", "DELETE", "NONE")


@dataclass(frozen=True)
class Fact:
    """One self-contained statement worth remembering, taken from a conversation."""
    text: str
    message_indexes: tuple[int, ...] = ()  # which messages of the conversation it came from
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    importance: float | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """An existing memory of the same scope, similar to a fact (cosine similarity in [-1, 1])."""
    memory_id: str
    text: str
    similarity: float


@dataclass(frozen=True)
class Decision:
    """What to do with a fact: ADD a new memory, UPDATE `memory_id` to `text`, DELETE
    `memory_id` (the fact says it no longer holds), or NONE (already known)."""
    action: Action
    fact: Fact
    reason: str
    memory_id: str | None = None  # the existing memory for UPDATE / DELETE / NONE
    text: str | None = None  # the new text for ADD / UPDATE (default: the fact's)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")
        if self.action in ("UPDATE", "DELETE") and not self.memory_id:
            raise ValueError(f"{self.action} needs the memory_id it applies to")

    @property
    def new_text(self) -> str:
        return self.text or self.fact.text


@dataclass(frozen=True)
class ReconciliationPolicy:
    """Cosine thresholds of the offline reconciliation (RECALLSTACK_RECONCILE_*)."""
    duplicate_at: float = 0.90  # at or above: the fact is already known (NONE)
    related_at: float = 0.75  # at or above, below duplicate_at: candidate for UPDATE / DELETE
    candidates: int = 5  # similar memories looked up per fact

    def __post_init__(self):
        if not -1 <= self.related_at <= self.duplicate_at <= 1:
            raise ValueError("thresholds must satisfy -1 <= related_at <= duplicate_at <= 1")


class FactExtractor(Protocol):
    name: str  # "offline" or "llm:<model>", recorded in the events' actor

    async def extract(self, messages: Sequence[ChatMessage]) -> list[Fact]: ...


class Reconciler(Protocol):
    async def decide(self, facts: Sequence[Fact], candidates: Sequence[Sequence[Candidate]]) -> list[Decision]:
        """One decision per fact, given the similar existing memories of each (same order)."""


class Summarizer(Protocol):
    async def summarize(self, texts: Sequence[str]) -> str:
        """One memory that says what all `texts` say (oldest first), without repeating."""


@dataclass(frozen=True)
class Intelligence:
    """The three ports, as bootstrap wires them."""
    extractor: FactExtractor
    reconciler: Reconciler
    summarizer: Summarizer
    notes: dict = field(default_factory=dict)  # e.g. {"llm": "gpt-4o-mini at http://..."} for status
