"""The token-budgeted context block of POST /v1/context (pure: no I/O).

Given memories already ranked best-first, `build_context` writes a block ready to paste
into a prompt, one memory a line, that never exceeds `max_tokens` as counted by the
caller's tokenizer, header and footer included:

    ## Relevant memories (most relevant first)
    - [2023-05-08] Caroline went to the LGBTQ support group.
    - [2023-05-07] Melanie painted a sunrise.

Selection is greedy in rank order: a memory that does not fit is skipped and the next
ones are still tried (a shorter one may fit in what is left).

Token counts are not additive: BPE merges a line break with its neighbours (".\n" is
one token in cl100k). A line's cost is therefore what it adds after the line before it,
counted on the end of that line plus the new one (exact for tokenizers that split text
into words first, as all OpenAI-style BPEs do); the finished text is then counted once,
and should a tokenizer merge further than that, the choice is redone with the overshoot
held back. So `tokens` is exactly count_tokens(text), never over budget, at the price of
about two short counts per candidate instead of a count of the whole block each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

DEFAULT_HEADER = "## Relevant memories (most relevant first)"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"

# Control characters (C0, DEL, C1) become spaces; then every run of whitespace
# (which includes \n, \r, \u2028...) becomes one space: a memory stays on its line.
_CONTROLS_TO_SPACE = {c: " " for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))}


@dataclass(frozen=True)
class ContextBlock:
    text: str  # "" when nothing fits (or nothing was given)
    tokens: int  # count_tokens(text), exactly
    included: list[str] = field(default_factory=list)  # ids of the memories in the block, in block order
    omitted: int = 0  # memories given but not in the block (did not fit, or had no text)
    truncated: bool = False  # the budget (or an empty text) left something out: omitted > 0


def sanitize(text: str) -> str:
    """One line of plain text: control characters and line breaks collapse to single spaces."""
    return " ".join(text.translate(_CONTROLS_TO_SPACE).split())


def memory_line(memory: Mapping[str, Any], date_format: str = DEFAULT_DATE_FORMAT) -> str | None:
    """`- [date] text` (no date part without `occurred_at`); None for a memory with no text."""
    text = sanitize(memory.get("memory") or "")
    if not text:
        return None
    when = _as_date(memory.get("occurred_at"))
    return f"- [{when.strftime(date_format)}] {text}" if when is not None else f"- {text}"


def build_context(memories: Sequence[Mapping[str, Any]], max_tokens: int, count_tokens: Callable[[str], int], *,
                  header: str = DEFAULT_HEADER, footer: str = "",
                  date_format: str = DEFAULT_DATE_FORMAT) -> ContextBlock:
    """The block of the best-ranked memories that fits `max_tokens`, header and footer included.

    `memories` are mappings with at least `id` and `memory` (the text), best first;
    `occurred_at` (datetime, date or ISO 8601 string) dates each line. An empty header
    or footer is left out. A block with no memory in it is empty (text "", 0 tokens):
    a header alone tells the model nothing.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    lines = [memory_line(m, date_format) for m in memories]
    counted: dict[str, int] = {}

    def count(text: str) -> int:  # a skipped line leaves the same previous line: its counts repeat
        if text not in counted:
            counted[text] = count_tokens(text)
        return counted[text]

    def line_cost(previous: str | None, line: str) -> int:
        """What appending "\n" + line after `previous` adds (BPE merges the break with its neighbours)."""
        if previous is None:
            return count(line)
        tail = _tail(previous)
        return count(tail + "\n" + line) - count(tail)

    header_cost = count(header) if header else 0
    footer_cost = count("\n" + footer) if footer else 0  # reserved up front: it follows whichever line is last
    held_back = 0
    while True:
        used, previous, chosen = header_cost, header or None, []
        for index, line in enumerate(lines):
            if used + footer_cost >= max_tokens - held_back:
                break  # full: a line is at least one token
            if line is None:
                continue
            cost = line_cost(previous, line)
            if used + cost + footer_cost <= max_tokens - held_back:
                chosen.append(index)
                used += cost
                previous = line
        if not chosen:
            return ContextBlock(text="", tokens=0, included=[], omitted=len(memories), truncated=bool(memories))
        text = "\n".join([*([header] if header else []), *(lines[i] for i in chosen), *([footer] if footer else [])])
        tokens = count_tokens(text)
        if tokens <= max_tokens:
            omitted = len(memories) - len(chosen)
            return ContextBlock(text=text, tokens=tokens, included=[str(memories[i]["id"]) for i in chosen],
                                omitted=omitted, truncated=omitted > 0)
        # The local costs missed a merge (a tokenizer that looks further): hold the overshoot back, choose again.
        held_back += tokens - max_tokens


def _tail(text: str, chars: int = 64) -> str:
    """The end of `text` from a word start: enough context for the tokens around a line break,
    without recounting a long memory for every candidate after it."""
    if len(text) <= chars:
        return text
    space = text.find(" ", len(text) - chars)
    return text[space:] if space != -1 else text[-chars:]


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):  # a datetime is a date too
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None  # an unreadable date drops the date, not the memory
    raise TypeError(f"occurred_at must be a datetime, date or ISO 8601 string, got {type(value).__name__}")
