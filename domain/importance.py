"""Importance of a memory: scored at write time, boosted by access, decaying with time (pure).

Groundwork for the memory-intelligence issue (forgetting and consolidation workers use
these; nothing calls them on the write path yet).

Write-time score (`initial_importance`), in [0, 1]: a base of 0.3, plus
- 0.35 for an explicit request to remember ("remember that", "don't forget", "note that"),
- 0.2 for a preference ("I prefer", "I like", "I hate", "my favourite"),
- 0.2 for a decision or an instruction ("we decided", "always", "never", "from now on", "must"),
- 0.1 for a named thing (a capitalised name, an identifier, an email, a path, a number with a unit),
capped at 1. Greetings and filler ("thanks", "ok", "hi there") score 0.05.

Current importance (`current_importance`):

    importance(now) = min(1, base * 0.5 ** (age_days / half_life_days)
                              + access_boost * log2(1 + accesses) * 0.5 ** (idle_days / half_life_days))

`age_days` counts from when the memory was written, `idle_days` from its last access (or
its writing, never accessed): an old memory that is still used keeps its weight, one that
nobody reads fades. A pinned memory is always 1.

Forgetting (`forgetting_action`): below `forget_below` it is hidden (MemoryForgotten,
restorable); below `delete_below` and older than `min_age_days` it is deleted; pinned
memories are never touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

BASE = 0.3
FILLER_SCORE = 0.05
_REMEMBER = re.compile(r"\b(remember|don'?t forget|do not forget|note that|keep in mind|for the record)\b", re.I)
_PREFERENCE = re.compile(r"\b(i|we) (really )?(prefer|like|love|hate|dislike|enjoy|want|need)\b|\bmy favou?rite\b"
                         r"|\b(allergic|vegetarian|vegan)\b", re.I)
_DECISION = re.compile(r"\b(decided|decision|agreed|always|never|from now on|must|should always|should never"
                       r"|make sure|policy)\b", re.I)
_NAMED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+\b|[A-Za-z0-9_.+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}"
                    r"|\b\w+[_/.]\w+\b|\b\d+(\.\d+)?\s?(ms|s|gb|mb|kb|%|px|pt|km|kg|years?|days?)\b")
_FILLER = re.compile(r"^\W*(hi|hey|hello|thanks|thank you|ok|okay|cool|great|sure|yes|no|bye|lol|nice)"
                     r"( there| you| so much| a lot)?\W*$", re.I)


def initial_importance(text: str) -> float:
    """The heuristic write-time importance of `text` (see the module docstring)."""
    if not text.strip() or _FILLER.match(text.strip()):
        return FILLER_SCORE
    score = BASE
    if _REMEMBER.search(text):
        score += 0.35
    if _PREFERENCE.search(text):
        score += 0.2
    if _DECISION.search(text):
        score += 0.2
    if _NAMED.search(text):
        score += 0.1
    return round(min(1.0, score), 4)


def current_importance(base: float, written_at: datetime, now: datetime, *, accesses: int = 0,
                       last_accessed_at: datetime | None = None, half_life_days: float = 30.0,
                       access_boost: float = 0.1, pinned: bool = False) -> float:
    """Importance at `now` (see the module docstring); a time in the future counts as now."""
    if pinned:
        return 1.0
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    if accesses < 0:
        raise ValueError(f"accesses must be >= 0, got {accesses}")
    age_days = max(0.0, (now - written_at).total_seconds() / 86_400)
    idle_days = max(0.0, (now - (last_accessed_at or written_at)).total_seconds() / 86_400)
    decayed = base * 0.5 ** (age_days / half_life_days)
    used = access_boost * math.log2(1 + accesses) * 0.5 ** (idle_days / half_life_days)
    return round(min(1.0, decayed + used), 6)


@dataclass(frozen=True)
class ForgettingPolicy:
    forget_below: float = 0.05
    delete_below: float = 0.01
    min_age_days: float = 90.0

    def __post_init__(self):
        if not 0 <= self.delete_below <= self.forget_below <= 1:
            raise ValueError("thresholds must satisfy 0 <= delete_below <= forget_below <= 1")


def forgetting_action(importance: float, age_days: float, policy: ForgettingPolicy, pinned: bool = False) -> str:
    """"keep", "forget" (hide, restorable) or "delete" for a memory of that importance and age."""
    if pinned:
        return "keep"
    if importance < policy.delete_below and age_days >= policy.min_age_days:
        return "delete"
    if importance < policy.forget_below:
        return "forget"
    return "keep"
