"""Who says a line: the `Name: text` convention of chat transcripts and agent memories
(`Caroline: I moved to Sweden`). Pure: standard library `re` only.

A speaker is one to three Title-case words before a colon, not a label such as `Note:`,
`Summary:` or `User:` (those name no one)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["named", "said_by", "speaker_span", "split_speaker", "spoken_by"]

_SPEAKER = re.compile(r"^\s*([A-Z][a-z][\w'’-]*(?:[ \t]+[A-Z][a-z][\w'’-]*){0,2})[ \t]*:[ \t]+(?=\S)")
_NOT_SPEAKERS = frozenset("""
    note notes remember important update reminder todo fyi edit warning also btw question answer user assistant
    system summary context tldr subject example tip info error bug fix task goal problem solution reason step
    result output input re fwd ps pps caveat disclaimer heads hint idea issue status action decision plan
    """.split())


def speaker_span(content: str) -> tuple[int, int, int] | None:
    """(start, end) of the speaker's name and where the rest begins, or None."""
    match = _SPEAKER.match(content)
    if match and match.group(1).split()[0].lower() not in _NOT_SPEAKERS:
        return match.start(1), match.end(1), match.end()
    return None


def split_speaker(content: str) -> tuple[str, str]:
    """(speaker name or "", the rest): `Caroline: I went ...` gives ("Caroline", "I went ...")."""
    span = speaker_span(content)
    if span is None:
        return "", content
    start, end, rest = span
    return content[start:end], content[rest:]


def spoken_by(content: str, names: Iterable[str]) -> bool:
    """Whether the line's speaker is one of `names` (a query's, domain/query_terms.names):
    the whole name or its first word, case aside ("John" names `John Smith: ...`)."""
    return said_by(content, named(names))


def named(names: Iterable[str]) -> frozenset[str]:
    """`names` as `said_by` compares them: case-folded once for all of a search's candidates."""
    return frozenset(name.casefold() for name in names)


def said_by(content: str, wanted: frozenset[str]) -> bool:
    """`spoken_by` with the names already `named`."""
    speaker = split_speaker(content)[0].casefold()
    return bool(speaker) and (speaker in wanted or speaker.split()[0] in wanted)
