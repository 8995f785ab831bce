"""The user profile's pure parts: the offline builder (domain/profile.py: which memory lands in which
section, importance order, size bounds), the projection of UserProfileUpdated into the in-memory
Postgres double, and the refresher's decisions (consolidation/profiles.py) on fake reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from consolidation.profiles import OfflineProfileBuilder, ProfileRefresher, build_profile
from domain.events import UserProfileUpdated
from domain.profile import (SECTIONS, ProfileBounds, ProfileMemory, bounded, build_offline, empty_profile, memory_ids,
                            section_of)
from projectors.applied import Applied
from projectors.in_memory_pg import InMemoryPg
from projectors.pg_projection import HANDLERS, project_batch
from tests.unit.projection_events import erased, new_user

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def memory(memory_id: str, text: str, importance: float | None = None, minutes: int = 0, categories=()):
    return ProfileMemory(memory_id, text, tuple(categories), importance, T0 + timedelta(minutes=minutes))


MEMORIES = [
    memory("pref", "I prefer dark mode in every editor.", 0.5),
    memory("sister", "My sister Ana lives in Lisbon.", 0.4),
    memory("rule", "Always answer in French.", 0.7),
    memory("proj", "We decided to build the billing service in Rust.", 0.5),
    memory("tool", "I use Neovim and tmux every day.", 0.4),
    memory("boss", "Bob is my manager.", 0.4),
    memory("vegan", "Vegan since 2019.", 0.6, categories=("preference",)),  # the caller's category decides
    memory("misc", "The office is on the third floor.", 0.3),
]


def texts(profile: dict, section: str) -> list[str]:
    return [item["text"] for item in profile[section]]


def test_each_memory_lands_in_its_section_with_its_id():
    profile = build_offline(MEMORIES)
    assert set(profile) == set(SECTIONS)
    assert texts(profile, "preferences") == ["Vegan since 2019.", "I prefer dark mode in every editor."]
    assert texts(profile, "instructions") == ["Always answer in French."]
    assert texts(profile, "projects") == ["We decided to build the billing service in Rust."]
    # facts: personal details, and what fits no other section
    assert set(texts(profile, "facts")) == {"My sister Ana lives in Lisbon.", "I use Neovim and tmux every day.",
                                            "Bob is my manager.", "The office is on the third floor."}
    assert texts(profile, "tools") == ["Neovim"]
    # equal importance and time: by id. French is a language, Rust (after `in`) is no one
    assert texts(profile, "people") == ["Bob (manager)", "Ana (sister)"]
    assert profile["people"][1]["memory_ids"] == ["sister"] and profile["tools"][0]["memory_ids"] == ["tool"]
    assert memory_ids(profile) == {m.memory_id for m in MEMORIES}


def test_categories_map_to_sections_and_the_first_section_wins():
    assert section_of(memory("a", "whatever", categories=("Instruction", "preference"))) == "instructions"
    assert section_of(memory("b", "whatever", categories=("work",))) == "projects"
    assert section_of(memory("c", "whatever", categories=("unknown-tag",))) == "facts"
    assert section_of(memory("d", "I love jazz.")) == "preferences"  # no categories: the offline categoriser


def test_items_are_ordered_by_importance_then_newest_then_id():
    memories = [memory("low", "I like tea.", 0.2), memory("old", "I like coffee.", 0.8, minutes=0),
                memory("new", "I like cocoa.", 0.8, minutes=5), memory("b", "I like milk.", 0.5),
                memory("a", "I like water.", 0.5)]
    assert [i["memory_ids"][0] for i in build_offline(memories)["preferences"]] == ["new", "old", "a", "b", "low"]
    # a name mentioned by more memories ranks first
    named = [memory("1", "I use Emacs.", 0.9), memory("2", "I use Vim at work.", 0.3),
             memory("3", "I use Vim at home.", 0.3)]
    assert build_offline(named)["tools"] == [{"text": "Vim", "memory_ids": ["2", "3"]},
                                             {"text": "Emacs", "memory_ids": ["1"]}]


def test_size_bounds_hold():
    bounds = ProfileBounds(max_items=3, max_item_chars=40, max_ids_per_item=2, max_memories=10)
    many = [memory(f"m{n:02d}", f"I like thing number {n} " + "very much " * 20, 0.5, minutes=n) for n in range(30)]
    profile = build_offline(many, bounds)
    assert len(profile["preferences"]) == 3
    assert all(len(i["text"]) <= 40 and i["text"].endswith("…") for i in profile["preferences"])
    # only the 10 most important (here: newest) memories are read
    assert memory_ids(profile) <= {f"m{n:02d}" for n in range(20, 30)}
    cut = bounded({"tools": [{"text": "X", "memory_ids": ["a", "b", "a", "c"]}, {"text": " ", "memory_ids": ["a"]},
                             {"text": "Y", "memory_ids": []}]}, bounds)
    assert cut["tools"] == [{"text": "X", "memory_ids": ["a", "b"]}]  # deduplicated, capped; empty items dropped
    with pytest.raises(ValueError):
        ProfileBounds(max_items=0)


def test_same_memories_same_profile_and_none_is_empty():
    assert build_offline(MEMORIES) == build_offline(list(reversed(MEMORIES)))
    assert build_offline([]) == empty_profile()


def profile_event(user: str, version: int, text: str = "x", **fields) -> UserProfileUpdated:
    return UserProfileUpdated(user_id=user, actor="worker:consolidate", version=version, builder="offline",
                              profile={**empty_profile(), "facts": [{"text": text, "memory_ids": ["m"]}]},
                              built_from=f"t/0:{version}", memory_count=1, occurred_at=T0 + timedelta(minutes=version),
                              **fields)


async def test_the_projection_keeps_the_newest_version_and_erasure_removes_it():
    user, other = new_user(), new_user()
    store = InMemoryPg()
    v1, v2, v1_again = profile_event(user, 1, "one"), profile_event(user, 2, "two"), profile_event(user, 1, "late")
    await project_batch(store, [Applied(0, 1, v1), Applied(0, 2, v2), Applied(0, 3, v1_again),
                                Applied(0, 4, profile_event(other, 1))])
    row = store.profiles[user]
    assert (row["version"], row["profile"]["facts"][0]["text"], row["built_from"]) == (2, "two", "t/0:2")
    assert row["updated_at"] == v2.occurred_at and row["last_event_id"] == v2.event_id
    await project_batch(store, [Applied(0, 5, erased(user, 9))])
    assert user not in store.profiles and other in store.profiles
    assert UserProfileUpdated in HANDLERS


class FakeReads:
    def __init__(self, memories, stored=None, last_change="t/0:5"):
        self._memories, self._stored, self._last = memories, stored, last_change

    async def stored(self, user_id):
        return self._stored

    async def last_change(self, user_id):
        return self._last

    async def memories(self, user_id, limit):
        return self._memories[:limit]

    async def users(self):
        return []


async def test_the_refresher_appends_only_what_is_new():
    offline = OfflineProfileBuilder()
    first = await ProfileRefresher(FakeReads(MEMORIES), offline).refresh("u")
    assert first.version == 1 and first.builder == "offline" and first.built_from == "t/0:5"
    assert first.memory_count == len(MEMORIES) and first.profile == build_offline(MEMORIES)
    stored = {"version": 1, "built_from": "t/0:5", "profile": first.profile}
    assert await ProfileRefresher(FakeReads(MEMORIES, stored), offline).refresh("u") is None  # nothing changed
    same = await ProfileRefresher(FakeReads(MEMORIES, stored, "t/0:9"), offline).refresh("u")
    assert same is None  # memories changed (an access, metadata...) but the profile says the same
    fewer = await ProfileRefresher(FakeReads(MEMORIES[1:], stored, "t/0:9"), offline).refresh("u")
    assert fewer.version == 2 and "pref" not in memory_ids(fewer.profile)
    emptied = await ProfileRefresher(FakeReads([], stored, "t/0:9"), offline).refresh("u")
    assert emptied.profile == empty_profile()  # the last memory went: so does what the profile said
    assert await ProfileRefresher(FakeReads([], None, None), offline).refresh("u") is None  # no memories, no profile
    again = await ProfileRefresher(FakeReads(MEMORIES[1:], stored, "t/0:9"), offline).refresh("u")
    assert again.event_id == fewer.event_id  # derived: a pass run twice cannot make two events of one version


class FailingBuilder:
    name = "llm:broken"

    async def build(self, memories):
        raise RuntimeError("endpoint down")


async def test_a_failing_llm_builder_falls_back_to_the_offline_one():
    offline = OfflineProfileBuilder()
    profile, name = await build_profile(FailingBuilder(), offline, MEMORIES)
    assert name == "offline" and profile == build_offline(MEMORIES)
