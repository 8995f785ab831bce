"""User profiles in the consolidation pass: a user whose memories changed since their last profile
gets a new version (UserProfileUpdated), built by the LLM when one is configured and by the offline
builder (domain/profile.py) otherwise or when the LLM fails.

Refreshing is debounced by the pass itself: the consolidation worker passes over a user at most
once per `consolidate_interval_s` after a change (consolidation/faust_app.py), so a burst of writes
gives one profile. A pass skips a user whose last memory change (`built_from`, from the Postgres
projection's history) is the one their profile was built from, without building anything (no LLM
call), and appends nothing when the new build says exactly what the stored one says. The event id
is derived from (user, version, built_from), so a pass that crashed after appending and runs again cannot make
two different events of one version; the projection keeps the first of a version anyway.
"""

from __future__ import annotations

import logging
import uuid
from typing import Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field

from adapters.llm import LlmClient
from consolidation.prompts import load_prompt
from domain.events import UserProfileUpdated
from domain.profile import SECTIONS, ProfileBounds, ProfileMemory, build_offline, bounded, by_importance

log = logging.getLogger(__name__)

ACTOR = "worker:consolidate"
LLM_MAX_MEMORIES = 200  # the most important memories an LLM build is shown (its prompt stays bounded)
LLM_MAX_CHARS = 400  # of each memory's text in the prompt
_IDS = uuid.UUID("5a0c7e21-9b8f-4d3e-a6c1-2f4b8d9e0a17")


class ProfileBuilder(Protocol):
    name: str  # "offline" or "llm:<model>": the event's `builder`

    async def build(self, memories: Sequence[ProfileMemory]) -> dict: ...


class OfflineProfileBuilder:
    name = "offline"

    def __init__(self, bounds: ProfileBounds = ProfileBounds()):
        self.bounds = bounds

    async def build(self, memories: Sequence[ProfileMemory]) -> dict:
        return build_offline(memories, self.bounds)


class _Item(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)  # extra keys are ignored
    text: str = Field(min_length=1)
    memories: list[str] = []


class ProfileAnswer(BaseModel):
    preferences: list[_Item] = []
    facts: list[_Item] = []
    projects: list[_Item] = []
    tools: list[_Item] = []
    people: list[_Item] = []
    instructions: list[_Item] = []


class LlmProfileBuilder:
    """The profile by an OpenAI-compatible chat endpoint (adapters/llm.py). Memories are shown as
    short refs (m1, m2...: models mangle UUIDs); a ref the model invents is dropped, and so is an
    item left citing none. LlmError / LlmUnavailable propagate: the caller falls back."""

    def __init__(self, client: LlmClient, bounds: ProfileBounds = ProfileBounds(), prompt_version: str | None = None):
        self.client, self.bounds = client, bounds
        self.prompt = load_prompt("profile", prompt_version)
        self.name = f"llm:{client.model}"

    async def build(self, memories: Sequence[ProfileMemory]) -> dict:
        shown = by_importance(memories)[:LLM_MAX_MEMORIES]
        if not shown:
            return bounded({}, self.bounds)
        refs = {f"m{n}": m.memory_id for n, m in enumerate(shown, 1)}
        lines = [f"{ref} [{', '.join(m.categories) or '-'}] {' '.join(m.text.split())[:LLM_MAX_CHARS]}"
                 for ref, m in zip(refs, shown)]
        answer = await self.client.complete_json(self.prompt.system, self.prompt.render(memories="\n".join(lines)),
                                                 ProfileAnswer)
        profile = {section: [{"text": item.text, "memory_ids": [refs[r] for r in item.memories if r in refs]}
                             for item in getattr(answer, section)] for section in SECTIONS}
        return bounded(profile, self.bounds)


async def build_profile(builder: ProfileBuilder, offline: ProfileBuilder,
                        memories: Sequence[ProfileMemory]) -> tuple[dict, str]:
    """(the profile, the builder's name): the LLM's when it answers with something, else the offline one."""
    if builder is not offline:
        try:
            profile = await builder.build(memories)
            if any(profile[s] for s in SECTIONS) or not memories:
                return profile, builder.name
            log.warning("the LLM profile cited none of %d memories; using the offline profile", len(memories))
        except Exception as exc:  # an LLM outage degrades the profile, never blocks the pass
            log.warning("LLM profile failed (%s); using the offline profile", exc)
    return await offline.build(memories), offline.name


class ProfileRefresher:
    """One user's profile refresh, inside a consolidation pass; `reads` is adapters/profile_reads."""

    def __init__(self, reads, builder: ProfileBuilder, offline: ProfileBuilder | None = None,
                 bounds: ProfileBounds = ProfileBounds()):
        self.reads, self.builder, self.bounds = reads, builder, bounds
        self.offline = offline or (builder if builder.name == "offline" else OfflineProfileBuilder(bounds))

    async def users(self) -> list[str]:
        return await self.reads.users()

    async def refresh(self, user_id: str) -> UserProfileUpdated | None:
        """The user's next profile version, or None when there is nothing new to say."""
        stored = await self.reads.stored(user_id)
        built_from = await self.reads.last_change(user_id)
        if stored is not None and stored["built_from"] == built_from:
            return None  # no memory changed since the stored profile was built
        memories = await self.reads.memories(user_id, self.bounds.max_memories)
        if stored is None and not memories:
            return None
        profile, builder = await build_profile(self.builder, self.offline, memories)
        if stored is not None and stored["profile"] == profile:
            return None  # the same content: not appended again
        version = (stored["version"] if stored is not None else 0) + 1
        return UserProfileUpdated(
            user_id=user_id, actor=ACTOR, event_id=str(uuid.uuid5(_IDS, f"{user_id}/{version}/{built_from}")), version=version,
            profile=profile, builder=builder, built_from=built_from, memory_count=len(memories))
