"""A user profile: a structured summary of who a user is, built from their memories (pure).

mem0 2.2 calls it a user profile; agents want "who is this user" without composing it from
searches. A profile has fixed sections (SECTIONS), each a list of items `{text, memory_ids}`,
where `memory_ids` are the memories the item came from (so a client can cite or open them):

- preferences   what the user likes, dislikes, prefers
- facts         facts about the person (personal details, things that happened to them, and
                any memory that fits no other section)
- projects      what they work on, plan or decided, and technical context
- tools         the products and tools they use (names, from the memories' entities)
- people        the people in their life (names, with the tie when one is said: `Ana (sister)`)
- instructions  how they want to be treated or worked with (`always`, `never`, `from now on`)

`build_offline(memories)` is the offline builder, the default and the fallback when an LLM
builder fails: a memory's statement goes to the first section its categories map to
(CATEGORY_SECTIONS, in SECTIONS order; without categories, `domain.extraction.categorize` of
its text), names come from `domain.entities.extract`. Items are ordered by importance (the
memory's, or `initial_importance` of its text), then newest first, then id; names by how many
memories mention them, then the best importance. `bounded(...)` holds any profile (the LLM's
too) to the size bounds (ProfileBounds). Same memories in, same profile out (replay-safe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from domain.entities import extract
from domain.extraction import categorize
from domain.importance import initial_importance

SECTIONS = ("preferences", "facts", "projects", "tools", "people", "instructions")
STATEMENT_SECTIONS = ("instructions", "preferences", "projects", "facts")  # first match wins, in this order
# A memory's categories (the offline categoriser's, an LLM's or a caller's own) -> its section.
CATEGORY_SECTIONS: dict[str, str] = {
    "instruction": "instructions", "instructions": "instructions", "rule": "instructions", "rules": "instructions",
    "policy": "instructions",
    "preference": "preferences", "preferences": "preferences", "likes": "preferences", "dislikes": "preferences",
    "taste": "preferences", "food": "preferences",
    "project": "projects", "projects": "projects", "plan": "projects", "plans": "projects", "goal": "projects",
    "goals": "projects", "decision": "projects", "decisions": "projects", "work": "projects",
    "technical": "projects", "tech": "projects", "code": "projects",
    "personal": "facts", "person": "facts", "fact": "facts", "facts": "facts", "event": "facts", "bio": "facts",
    "family": "facts", "health": "facts", "identity": "facts",
}
PEOPLE_TIES = frozenset(
    "friend sister brother sibling mother father parent husband wife partner spouse son daughter child boss manager "
    "colleague coworker cousin aunt uncle grandmother grandfather niece nephew girlfriend boyfriend fiance roommate "
    "neighbor mentor teacher".split())
# Words the offline person pass takes for names: roles and languages (`answer in French`).
_NOT_PEOPLE = frozenset("user assistant english french german spanish italian portuguese dutch chinese japanese korean "
                        "russian arabic hindi polish swedish".split())
_TIE_WORDS = "|".join(sorted(PEOPLE_TIES, key=len, reverse=True))
_ADJECTIVES = r"(?:(?:best|little|older|younger|big|new|old)\s+)?"


@dataclass(frozen=True)
class ProfileMemory:
    """What the builder reads of one active memory."""
    memory_id: str
    text: str
    categories: tuple[str, ...] = ()
    importance: float | None = None
    created_at: datetime | None = None

    @property
    def weight(self) -> float:
        return self.importance if self.importance is not None else initial_importance(self.text)


@dataclass(frozen=True)
class ProfileBounds:
    """Size bounds of a profile: an agent puts it in a prompt."""
    max_items: int = 12  # per section
    max_item_chars: int = 280
    max_ids_per_item: int = 8
    max_memories: int = 1_000  # the most important memories a build reads (an LLM's prompt stays bounded)

    def __post_init__(self):
        if min(self.max_items, self.max_item_chars, self.max_ids_per_item, self.max_memories) < 1:
            raise ValueError("every profile bound must be at least 1")


def empty_profile() -> dict[str, list]:
    return {section: [] for section in SECTIONS}


def by_importance(memories: Iterable[ProfileMemory]) -> list[ProfileMemory]:
    """Most important first, then newest, then by id (a total order: the same profile every time)."""
    return sorted(memories, key=lambda m: (-m.weight, -(m.created_at.timestamp() if m.created_at else 0.0),
                                           m.memory_id))


def section_of(memory: ProfileMemory) -> str:
    """The statement section of a memory (see the module docstring)."""
    categories = [c.strip().lower() for c in memory.categories] or list(categorize(memory.text))
    found = {CATEGORY_SECTIONS[c] for c in categories if c in CATEGORY_SECTIONS}
    return next((s for s in STATEMENT_SECTIONS if s in found), "facts")


def build_offline(memories: Sequence[ProfileMemory], bounds: ProfileBounds = ProfileBounds()) -> dict[str, list]:
    """The profile of these memories, without an LLM (see the module docstring)."""
    ordered = by_importance(memories)[:bounds.max_memories]
    profile = empty_profile()
    for memory in ordered:
        profile[section_of(memory)].append({"text": memory.text, "memory_ids": [memory.memory_id]})
    tools: dict[str, _Name] = {}
    people: dict[str, _Name] = {}
    for memory in ordered:
        entities, relations = extract(memory.text)
        ties = {r.target.casefold(): r.type for r in relations if r.type in PEOPLE_TIES}  # with a speaker
        for entity in entities:
            if entity.type == "product":
                _mention(tools, entity.name, memory)
            elif entity.type == "person" and entity.name.casefold() not in _NOT_PEOPLE \
                    and not re.search(rf"\bin\s+{re.escape(entity.name)}\b", memory.text):  # `in Rust`, `in Lisbon`
                _mention(people, entity.name, memory, ties.get(entity.name.casefold()) or _tie(memory.text, entity.name))
    profile["tools"] = [n.item() for n in _ranked(tools)]
    profile["people"] = [n.item() for n in _ranked(people)]
    return bounded(profile, bounds)


def bounded(profile: dict, bounds: ProfileBounds = ProfileBounds()) -> dict[str, list]:
    """The profile held to the bounds: every section present, at most `max_items` items each,
    texts cut on a word, ids deduplicated and capped; items without text or ids dropped."""
    out = empty_profile()
    for section in SECTIONS:
        for item in profile.get(section) or ():
            text = _cut(" ".join(str(item.get("text") or "").split()), bounds.max_item_chars)
            ids = list(dict.fromkeys(str(i) for i in item.get("memory_ids") or ()))[:bounds.max_ids_per_item]
            if text and ids and len(out[section]) < bounds.max_items:
                out[section].append({"text": text, "memory_ids": ids})
    return out


def memory_ids(profile: dict) -> set[str]:
    """Every memory id a profile cites."""
    return {i for section in SECTIONS for item in profile.get(section) or () for i in item["memory_ids"]}


class _Name:
    def __init__(self, name: str):
        self.name, self.ids, self.best, self.tie = name, [], 0.0, None

    def item(self) -> dict:
        return {"text": f"{self.name} ({self.tie})" if self.tie else self.name, "memory_ids": list(self.ids)}


def _mention(names: dict[str, _Name], name: str, memory: ProfileMemory, tie: str | None = None) -> None:
    entry = names.setdefault(name.casefold(), _Name(name))
    if memory.memory_id not in entry.ids:
        entry.ids.append(memory.memory_id)
        entry.best = max(entry.best, memory.weight)
    entry.tie = entry.tie or tie


def _tie(text: str, name: str) -> str | None:
    """The user's tie to `name` said in `text`: `my sister Ana`, `Bob is my manager`, `Cleo, my friend`."""
    quoted = re.escape(name)
    found = (re.search(rf"\bmy\s+{_ADJECTIVES}({_TIE_WORDS})s?\s*,?\s*(?:named\s+|called\s+)?{quoted}\b", text, re.I)
             or re.search(rf"\b{quoted}\s*(?:,|is|was|,\s*who\s+is)\s*my\s+{_ADJECTIVES}({_TIE_WORDS})\b", text, re.I))
    return found[1].lower() if found else None


def _ranked(names: dict[str, _Name]) -> list[_Name]:
    # Insertion order is the memories' importance order: a stable tie-break.
    return sorted(names.values(), key=lambda n: (-len(n.ids), -n.best))


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[:limit - 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head) + "…"
