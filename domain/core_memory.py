"""Core memory blocks (MemGPT/Letta's core memory): the rules, pure.

A block is a small named text (`persona`, `human`, `project`...) of one user, user-wide or
of one agent (`agent_id`), that is always placed first in the context block and that an agent
edits itself: append a line, replace a passage, set the whole. Each block has a size limit in
tokens (cl100k_base, the project's tokenizer), checked at command time: an edit that would
exceed it is refused, nothing appended.

Concurrency: the command side serializes the check-and-append of one block (application/
core_memory.py), and each edit event carries `version`, the block's version it produces.
The projection applies an edit only onto the version before it (`apply`), so a replay always
rebuilds the same blocks, and an edit that raced past the lock (it cannot, short of the lock
expiring) is recorded as a conflict in the block's history instead of corrupting the block.

Edits follow Letta's tools: an append adds the content on a new line; a replace changes every
occurrence of `old_content` (which must be in the block) into `new_content`; new_content ""
deletes the passage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from domain.context_block import ContextBlock, build_context
from domain.events import (CoreMemoryBlockAppended, CoreMemoryBlockCreated, CoreMemoryBlockDeleted,
                           CoreMemoryBlockReplaced, Event)

LABEL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a short slug: persona, human, project, my-repo
ENCODING = "cl100k_base"  # what block limits are counted in, whatever a context request's encoding
DEFAULT_LIMIT_TOKENS = 500
MIN_LIMIT_TOKENS = 16
MAX_LIMIT_TOKENS = 8_000  # core memory is read on every context request: small by design
MAX_BLOCKS = 32  # per user and scope (user-wide, or one agent)
MAX_CONTENT_CHARS = 64_000  # a request body's text: far above any block limit
CORE_HEADER = "## Core memory"
CONTEXT_SEPARATOR = "\n\n"  # between the core section and the memories in a context block

EDIT_EVENTS = (CoreMemoryBlockCreated, CoreMemoryBlockAppended, CoreMemoryBlockReplaced, CoreMemoryBlockDeleted)


@dataclass(frozen=True)
class Block:
    user_id: str
    agent_id: str | None  # None: user-wide
    label: str
    value: str
    limit_tokens: int
    version: int  # 1 at creation, +1 per edit
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class CoreMemoryError(Exception):
    """A refused edit: nothing is appended."""


class BlockNotFound(CoreMemoryError):
    def __init__(self, label: str, agent_id: str | None):
        scope = f" of agent {agent_id!r}" if agent_id else ""
        super().__init__(f"core memory block {label!r}{scope} not found")


class BlockTooLarge(CoreMemoryError):
    def __init__(self, label: str, size: int, limit: int):
        super().__init__(f"core memory block {label!r} would hold {size} tokens, over its limit of {limit} "
                         f"({ENCODING}); nothing was changed: shorten it (replace) or raise limit_tokens (PUT)")
        self.label, self.size, self.limit = label, size, limit


class OldContentNotFound(CoreMemoryError):
    def __init__(self, label: str):
        super().__init__(f"old_content is not in core memory block {label!r} (it must match exactly, "
                         "case and whitespace included); read the block and retry")


class TooManyBlocks(CoreMemoryError):
    def __init__(self, count: int):
        super().__init__(f"this scope has {count} core memory blocks, the most it may have ({MAX_BLOCKS}); "
                         "delete one first")


class BlockBusy(CoreMemoryError):
    """Another edit of the same block held it past the wait: retry (409 with Retry-After)."""

    def __init__(self, label: str):
        super().__init__(f"another edit of core memory block {label!r} is in progress; retry shortly")


def appended_value(value: str, content: str) -> str:
    return f"{value}\n{content}" if value else content


def replaced_value(label: str, value: str, old_content: str, new_content: str) -> str:
    if not old_content or old_content not in value:
        raise OldContentNotFound(label)
    return value.replace(old_content, new_content)


def checked_size(label: str, value: str, limit: int, count: Callable[[str], int]) -> int:
    """The tokens of `value`; BlockTooLarge past `limit`."""
    size = count(value) if value else 0
    if size > limit:
        raise BlockTooLarge(label, size, limit)
    return size


# --- command time: the event an edit makes of the current block, or why it is refused -----------------------------


def set_event(current: Block | None, envelope: dict, label: str, agent_id: str | None, value: str,
              limit_tokens: int | None, description: str | None, count: Callable[[str], int],
              blocks_in_scope: int = 0) -> tuple[Event, str, int]:
    """PUT: create the block, or set the whole value (and its limit, when given) of the existing one.
    (event, the value after, its tokens)."""
    if current is None:
        if blocks_in_scope >= MAX_BLOCKS:
            raise TooManyBlocks(blocks_in_scope)
        limit = limit_tokens or DEFAULT_LIMIT_TOKENS
        size = checked_size(label, value, limit, count)
        return (CoreMemoryBlockCreated(**envelope, label=label, agent_id=agent_id, value=value, limit_tokens=limit,
                                       description=description), value, size)
    limit = limit_tokens or current.limit_tokens
    size = checked_size(label, value, limit, count)
    # The whole value is the passage replaced: the same event as a replace, one rule in the projection.
    return (CoreMemoryBlockReplaced(**envelope, label=label, agent_id=agent_id, old_content=current.value,
                                    new_content=value, version=current.version + 1,
                                    limit_tokens=limit_tokens, description=description), value, size)


def append_event(current: Block | None, envelope: dict, label: str, agent_id: str | None, content: str,
                 count: Callable[[str], int]) -> tuple[Event, str, int]:
    if current is None:
        raise BlockNotFound(label, agent_id)
    value = appended_value(current.value, content)
    size = checked_size(label, value, current.limit_tokens, count)
    return (CoreMemoryBlockAppended(**envelope, label=label, agent_id=agent_id, content=content,
                                    version=current.version + 1), value, size)


def replace_event(current: Block | None, envelope: dict, label: str, agent_id: str | None, old_content: str,
                  new_content: str, count: Callable[[str], int]) -> tuple[Event, str, int]:
    if current is None:
        raise BlockNotFound(label, agent_id)
    value = replaced_value(label, current.value, old_content, new_content)
    size = checked_size(label, value, current.limit_tokens, count)
    return (CoreMemoryBlockReplaced(**envelope, label=label, agent_id=agent_id, old_content=old_content,
                                    new_content=new_content, version=current.version + 1), value, size)


def delete_event(current: Block | None, envelope: dict, label: str, agent_id: str | None) -> Event:
    if current is None:
        raise BlockNotFound(label, agent_id)
    return CoreMemoryBlockDeleted(**envelope, label=label, agent_id=agent_id, version=current.version + 1)


# --- projection time: what an edit event does to the block it names ------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """An edit's effect: the block after it (None: there is none), and, when it changed nothing, why."""
    block: Block | None
    skipped: str | None = None  # "exists", "missing", "conflict: ..." or "old_content not found"


def apply(current: Block | None, event: Event) -> Applied:
    """The block after `event` (deterministic: replay rebuilds the same). An edit applies only
    onto the version just before its own; otherwise the block stays as it is."""
    if isinstance(event, CoreMemoryBlockCreated):
        if current is not None:
            return Applied(current, "exists")
        return Applied(Block(event.user_id, event.agent_id, event.label, event.value, event.limit_tokens, 1,
                             event.description, event.occurred_at, event.occurred_at))
    if current is None:
        return Applied(None, "missing")
    if event.version != current.version + 1:
        return Applied(current, f"conflict: made for version {event.version - 1}, the block is at {current.version}")
    if isinstance(event, CoreMemoryBlockDeleted):
        return Applied(None)
    if isinstance(event, CoreMemoryBlockAppended):
        value = appended_value(current.value, event.content)
        return Applied(replace(current, value=value, version=event.version, updated_at=event.occurred_at))
    if event.old_content and event.old_content not in current.value:
        return Applied(current, "old_content not found")
    # An empty old_content is a PUT over an empty block: the new content is the whole value.
    value = current.value.replace(event.old_content, event.new_content) if event.old_content else event.new_content
    return Applied(replace(current, value=value, version=event.version, updated_at=event.occurred_at,
                           limit_tokens=event.limit_tokens or current.limit_tokens,
                           description=event.description if event.description is not None else current.description))


# --- the context block: core blocks first, then memories in the rest of the budget --------------------------------


@dataclass(frozen=True)
class CoreSection:
    text: str  # "" when no block fits (or there is none)
    tokens: int
    included: list[Block]
    omitted: list[Block]  # did not fit in the budget


def render(blocks: Sequence[Block]) -> str:
    """`## Core memory` then each block as <label>value</label> (Letta's layout), in the order given."""
    if not blocks:
        return ""
    parts = [CORE_HEADER, *(f"<{b.label}>\n{b.value}\n</{b.label}>" for b in blocks)]
    return "\n".join(parts)


def core_section(blocks: Sequence[Block], max_tokens: int, count: Callable[[str], int]) -> CoreSection:
    """The blocks that fit `max_tokens` (counted whole: a handful of blocks), in order; one that
    does not fit is left out and the next ones still tried."""
    included: list[Block] = []
    omitted: list[Block] = []
    tokens = 0
    for block in blocks:
        candidate = [*included, block]
        size = count(render(candidate))
        if size <= max_tokens:
            included, tokens = candidate, size
        else:
            omitted.append(block)
    return CoreSection(render(included), tokens, included, omitted)


def with_core(core_text: str, memories: Sequence, max_tokens: int,
              count: Callable[[str], int]) -> tuple[str, int, ContextBlock]:
    """The whole context: the core section, then the best memories in what is left of `max_tokens`
    (exact: the joined text is counted, and the memories' budget shrinks by any overshoot)."""
    if not core_text:
        block = build_context(memories, max_tokens, count)
        return block.text, block.tokens, block
    budget = max_tokens - count(core_text + CONTEXT_SEPARATOR)
    while True:
        if budget > 0:
            block = build_context(memories, budget, count)
        else:
            block = ContextBlock("", 0, [], omitted=len(memories), truncated=bool(memories))
        text = f"{core_text}{CONTEXT_SEPARATOR}{block.text}" if block.text else core_text
        tokens = count(text)
        if tokens <= max_tokens or not block.text:
            return text, tokens, block
        budget -= tokens - max_tokens
