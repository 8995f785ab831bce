"""Core memory blocks: the pure rules (domain/core_memory.py), the Postgres projection on its
in-memory double, and the serialized edits (application/core_memory.py) on in-memory ports
(a lagging projector included): concurrent appends never lose an acknowledged edit nor exceed
the limit."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from adapters.tokenizer import token_counter
from application.core_memory import BlockEdit, CoreMemoryEdits, CoreMemoryReads
from domain import core_memory
from domain.consistency import ConsistencyToken
from domain.core_memory import Block, BlockNotFound, BlockTooLarge, OldContentNotFound
from domain.events import (CoreMemoryBlockAppended, CoreMemoryBlockCreated, CoreMemoryBlockDeleted,
                           CoreMemoryBlockReplaced, UserErased)
from projectors.applied import Applied
from projectors.core_memory_rows import block_of
from projectors.in_memory_pg import InMemoryPg
from projectors.pg_projection import project_batch

WORDS = lambda text: len(text.split())  # noqa: E731 - a tokenizer for rules that do not care which
ENV = dict(user_id="ana", actor="t", correlation_id="c")


def block(value="I am Ana's assistant.", limit=20, version=1, agent_id=None) -> Block:
    return Block("ana", agent_id, "persona", value, limit, version)


# --- the rules ----------------------------------------------------------------------------------------------------


def test_append_adds_a_line_and_counts_against_the_limit():
    event, value, size = core_memory.append_event(block(), ENV, "persona", None, "I like jazz.", WORDS)
    assert isinstance(event, CoreMemoryBlockAppended) and event.version == 2
    assert value == "I am Ana's assistant.\nI like jazz." and size == 7
    with pytest.raises(BlockTooLarge) as refused:
        core_memory.append_event(block(limit=8), ENV, "persona", None, "I like jazz a lot.", WORDS)
    assert (refused.value.limit, refused.value.size) == (8, 9) and "limit of 8" in str(refused.value)


def test_replace_changes_every_occurrence_and_needs_the_old_content():
    current = block("Ana likes tea. Tea is hot.")
    event, value, _ = core_memory.replace_event(current, ENV, "persona", None, "likes tea", "likes coffee", WORDS)
    assert value == "Ana likes coffee. Tea is hot." and event.version == 2
    _, value, _ = core_memory.replace_event(block("a b a"), ENV, "persona", None, "a", "c", WORDS)
    assert value == "c b c"  # Letta's semantics: every occurrence
    with pytest.raises(OldContentNotFound):
        core_memory.replace_event(current, ENV, "persona", None, "likes milk", "x", WORDS)
    with pytest.raises(BlockTooLarge):
        core_memory.replace_event(block("a", limit=16), ENV, "persona", None, "a", "word " * 17, WORDS)


def test_unknown_block_and_set_semantics():
    for edit in (lambda: core_memory.append_event(None, ENV, "persona", None, "x", WORDS),
                 lambda: core_memory.replace_event(None, ENV, "persona", None, "x", "y", WORDS),
                 lambda: core_memory.delete_event(None, ENV, "persona", None)):
        with pytest.raises(BlockNotFound):
            edit()
    created, _, _ = core_memory.set_event(None, ENV, "persona", None, "hello", None, None, WORDS)
    assert isinstance(created, CoreMemoryBlockCreated) and created.limit_tokens == core_memory.DEFAULT_LIMIT_TOKENS
    reset, value, _ = core_memory.set_event(block(), ENV, "persona", None, "new whole", 100, None, WORDS)
    assert isinstance(reset, CoreMemoryBlockReplaced) and reset.old_content == block().value and value == "new whole"
    with pytest.raises(BlockTooLarge):  # a lower limit than the value it would hold
        core_memory.set_event(block(), ENV, "persona", None, "one two three", 2, None, WORDS)
    with pytest.raises(core_memory.TooManyBlocks):
        core_memory.set_event(None, ENV, "x", None, "", None, None, WORDS, blocks_in_scope=core_memory.MAX_BLOCKS)


def test_limits_are_counted_with_the_projects_tokenizer():
    count = token_counter(core_memory.ENCODING).count
    text = "tokenization " * 20
    assert core_memory.checked_size("p", text, 100, count) == count(text) != WORDS(text)


# --- projection: the rules the read model applies, replayable ---------------------------------------------------


def events_of_a_block():
    created = CoreMemoryBlockCreated(**ENV, label="persona", value="I help Ana.", limit_tokens=50)
    appended = CoreMemoryBlockAppended(**ENV, label="persona", content="Ana likes tea.", version=2)
    replaced = CoreMemoryBlockReplaced(**ENV, label="persona", old_content="tea", new_content="coffee", version=3,
                                       limit_tokens=80)
    stale = CoreMemoryBlockAppended(**ENV, label="persona", content="raced", version=3)  # made for version 2
    return created, appended, replaced, stale


def batch(*events, start=0):
    return [Applied(0, start + i, e) for i, e in enumerate(events)]


async def test_the_projection_applies_edits_in_order_and_skips_a_conflict_on_record():
    pg = InMemoryPg()
    created, appended, replaced, stale = events_of_a_block()
    await project_batch(pg, batch(created, appended, replaced, stale))
    row = pg.core_blocks[("ana", "", "persona")]
    assert (row["value"], row["version"], row["limit_tokens"]) == ("I help Ana.\nAna likes coffee.", 3, 80)
    history = sorted(pg.core_history.values(), key=lambda r: r["log_offset"])
    assert [(h["event_type"], h["applied"]) for h in history] == [
        ("CoreMemoryBlockCreated", True), ("CoreMemoryBlockAppended", True), ("CoreMemoryBlockReplaced", True),
        ("CoreMemoryBlockAppended", False)]
    assert history[-1]["skipped"].startswith("conflict") and history[2]["old_value"] == "I help Ana.\nAna likes tea."
    await project_batch(pg, batch(created, appended, replaced, stale))  # redelivered: nothing changes
    assert pg.core_blocks[("ana", "", "persona")] == row and len(pg.core_history) == 4


async def test_replay_rebuilds_the_same_blocks_and_erasure_removes_them():
    events = [*events_of_a_block(), CoreMemoryBlockCreated(**ENV, label="human", value="Ana", limit_tokens=50,
                                                            agent_id="cursor")]
    first, second = InMemoryPg(), InMemoryPg()
    await project_batch(first, batch(*events))
    for item in batch(*events):
        await project_batch(second, [item])
    assert first.core_blocks == second.core_blocks
    other = CoreMemoryBlockCreated(user_id="bob", actor="t", label="persona", value="Bob", limit_tokens=50)
    await project_batch(first, batch(other, UserErased(user_id="ana", actor="t"), start=10))
    assert list(first.core_blocks) == [("bob", "", "persona")]
    assert all(r["user_id"] == "bob" for r in first.core_history.values())


async def test_a_deleted_block_can_be_created_again():
    pg = InMemoryPg()
    created = CoreMemoryBlockCreated(**ENV, label="persona", value="v1", limit_tokens=50)
    again = CoreMemoryBlockCreated(**ENV, label="persona", value="v2", limit_tokens=60)
    await project_batch(pg, batch(created, CoreMemoryBlockDeleted(**ENV, label="persona", version=2), again))
    assert (pg.core_blocks[("ana", "", "persona")]["value"], pg.core_blocks[("ana", "", "persona")]["version"]) == (
        "v2", 1)


# --- the context: core blocks first, memories in the rest -----------------------------------------------------


def test_core_blocks_come_first_and_the_whole_stays_within_budget():
    count = token_counter("cl100k_base").count
    blocks = [block("I am a terse assistant.", 50), Block("ana", None, "human", "Ana, a Go developer in Lyon.", 50, 1)]
    memories = [{"id": str(i), "memory": f"Memory number {i} about Lyon and Go.", "occurred_at": None}
                for i in range(40)]
    for budget in (20, 40, 60, 200, 400):
        section = core_memory.core_section(blocks, budget, count)
        text, tokens, chosen = core_memory.with_core(section.text, memories, budget, count)
        assert tokens == count(text) <= budget
        if section.included:
            assert text.startswith("## Core memory\n<persona>") or text.startswith("## Core memory\n<human>")
        if budget >= 60:
            assert [b.label for b in section.included] == ["persona", "human"] and chosen.included
    tight = core_memory.core_section(blocks, count(core_memory.render(blocks[:1])), count)
    assert [b.label for b in tight.included] == ["persona"] and [b.label for b in tight.omitted] == ["human"]


# --- the edits: serialized per block, against a lagging read model --------------------------------------------


class LaggingLog:
    """A publisher whose events reach the in-memory read model after a random delay (a projector's lag)."""

    def __init__(self, pg: InMemoryPg):
        self.pg, self.offset, self.applied_to = pg, -1, -1
        self.acknowledged: list = []

    async def publish(self, events):
        self.offset += 1
        offset = self.offset
        self.acknowledged.append(events[0])

        async def later():
            await asyncio.sleep(random.uniform(0, 0.02))
            while self.applied_to != offset - 1:  # a projector applies in log order
                await asyncio.sleep(0.001)
            await project_batch(self.pg, [Applied(0, offset, events[0])])
            self.applied_to = offset
        asyncio.ensure_future(later())
        return ConsistencyToken.of("t", [(0, offset)])

    async def applied(self, token: str) -> None:
        wanted = ConsistencyToken.decode(token).offsets[0][1]
        while self.applied_to < wanted:
            await asyncio.sleep(0.001)


class Reads:
    def __init__(self, pg: InMemoryPg):
        self.pg = pg

    async def block(self, user_id, agent_id, label):
        return block_of(self.pg.core_blocks.get((user_id, agent_id or "", label)))

    async def blocks(self, user_id, agent_ids):
        return [block_of(r) for k, r in self.pg.core_blocks.items() if k[0] == user_id and (k[1] or None) in agent_ids]

    async def history(self, user_id, agent_id, label):
        return [r for r in self.pg.core_history.values() if (r["user_id"], r["agent_id"], r["label"]) ==
                (user_id, agent_id or "", label)]


class Locks:
    def __init__(self):
        self.locks: dict[str, asyncio.Lock] = {}
        self.tokens: dict[str, str] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key):
        locks = self

        class Held:
            last_token = None

            async def wrote(self, token):
                locks.tokens[key] = token
        async with self.locks.setdefault(key, asyncio.Lock()):
            held = Held()
            held.last_token = self.tokens.get(key)  # read once the lock is had, as the Redis locks do
            yield held


def edits(pg: InMemoryPg) -> tuple[CoreMemoryEdits, LaggingLog]:
    log = LaggingLog(pg)
    return CoreMemoryEdits(Reads(pg), Locks(), log, log.applied, WORDS), log


async def test_parallel_appends_all_land_in_some_order_or_are_refused_never_over_the_limit():
    pg = InMemoryPg()
    core, log = edits(pg)
    await core.edit(BlockEdit(kind="set", user_id="ana", actor="t", label="notes", value="start", limit_tokens=16), "c")
    lines = [f"line{i} x" for i in range(10)]  # 2 words each: 1 + 7 * 2 = 15 fit, the 8th would make 17
    outcomes = await asyncio.gather(*(core.edit(BlockEdit(kind="append", user_id="ana", actor="t", label="notes",
                                                          content=line), "c") for line in lines),
                                    return_exceptions=True)
    await log.applied(ConsistencyToken.of("t", [(0, log.offset)]).encode())
    landed = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(landed) == 7 and all(isinstance(r, BlockTooLarge) for r in refused) and len(refused) == 3
    row = pg.core_blocks[("ana", "", "notes")]
    assert WORDS(row["value"]) == 15 <= row["limit_tokens"] and row["version"] == 8
    assert all(e.content in row["value"] for e in log.acknowledged[1:])  # every acknowledged append is there
    assert all(h["applied"] for h in pg.core_history.values())  # none raced: no conflict on record


async def test_reads_answer_sizes_and_history():
    pg = InMemoryPg()
    core, log = edits(pg)
    await core.edit(BlockEdit(kind="set", user_id="ana", actor="t", label="persona", value="I help."), "c")
    await core.edit(BlockEdit(kind="append", user_id="ana", actor="t", label="persona", content="Be brief."), "c")
    await log.applied(ConsistencyToken.of("t", [(0, log.offset)]).encode())

    async def guarded(read):
        return await read

    async def no_wait(token):
        return None
    reads = CoreMemoryReads(Reads(pg), no_wait, guarded, WORDS)
    got = await reads.get_block("ana", None, "persona", None)
    assert (got["value"], got["tokens"], got["version"]) == ("I help.\nBe brief.", 4, 2)
    assert [b["label"] for b in (await reads.list_blocks("ana", None, None))["results"]] == ["persona"]
    assert len((await reads.history("ana", None, "persona", None))["history"]) == 2
    with pytest.raises(BlockNotFound):
        await reads.get_block("ana", "other-agent", "persona", None)


def test_the_base_url_sends_edits_to_the_command_api_and_reads_to_the_query_api():
    from gateway.routes import COMMAND, QUERY, route
    assert route("PUT", "/v1/core-memory/persona") == COMMAND
    assert route("POST", "/v1/core-memory/persona/append") == COMMAND
    assert route("POST", "/v1/core-memory/persona/replace") == COMMAND
    assert route("DELETE", "/v1/core-memory/persona") == COMMAND
    assert route("GET", "/v1/core-memory") == QUERY and route("GET", "/v1/core-memory/persona/history") == QUERY


def test_the_sdks_check_labels_as_the_api_does():
    from pathlib import Path

    from recallstack.core_memory import LABEL_RE
    assert f"^{LABEL_RE.pattern}$" == core_memory.LABEL_PATTERN
    typescript = (Path(__file__).resolve().parents[2] / "sdk/typescript/src/core-memory.ts").read_text()
    assert f"export const LABEL_RE = /{core_memory.LABEL_PATTERN}/;" in typescript
