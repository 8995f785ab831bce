"""The words the sparse index keeps for fuzzy matching, and how a query name is looked up (pure).

The sparse index (adapters/sparse_index.py) matches names, identifiers and misspellings
with Levenshtein automata (fuzzy term queries) over a field of unstemmed words. This
module decides those words, for a memory's text and for a query's names alike, so both
sides split them the same way:

- a plain word is its letters and digits, lower-cased (`Caroline:` -> `caroline`,
  `don't` -> `don`, `t`);
- an identifier (a run of non-space characters with `_ . / \\ : @ # -` inside, or camelCase)
  is kept whole as well as split: `tools/release_build.sh` gives `tools/release_build.sh`,
  `tools`, `release_build.sh`, `release`, `build`, `sh`; `getUserName` gives
  `getusername`, `get`, `user`, `name`. A misspelt identifier then matches the whole
  (`release_buidl.sh`), a fragment matches its parts (`UserName`).

`entity_words` are the lower-cased words of entity names as the graph keys them
(adapters/neo4j_read_model.py `_norm`): the cheap "does this user have an entity named
like that" test the graph source is skipped on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_WORD = 100  # longer tokens (hashes, blobs) are not worth fuzzy matching: left out
EXACT_BELOW = 4  # shorter terms are matched exactly (one edit would match half the dictionary)
TWO_EDITS_FROM = 8  # from this length a term forgives two edits (one below)
PREFIX_FROM = 5  # from this length a term also matches as the start of a longer word ("Carol" -> Caroline)

_CHUNK = re.compile(r"\S+")
_INNER = re.compile(r"[_./\\:@#-]")
_CAMEL = re.compile(r"[a-z0-9][A-Z]")
_ALNUM = re.compile(r"[^\W_]+")  # letters and digits (any script)
_HUMP_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # getUser|Name, XML|Parser


def _strip(chunk: str) -> str:
    start, end = 0, len(chunk)
    while start < end and not chunk[start].isalnum():
        start += 1
    while end > start and not chunk[end - 1].isalnum():
        end -= 1
    return chunk[start:end]


def _is_identifier(token: str) -> bool:
    return bool(_INNER.search(token) or _CAMEL.search(token))


def _parts(token: str) -> list[str]:
    """Letters-and-digits runs of `token`, camel humps split, lower-cased."""
    out = []
    for run in _ALNUM.findall(token):
        humps = _HUMP_BOUNDARY.sub(" ", run).split() if _CAMEL.search(run) else [run]
        out += [h.lower() for h in humps]
    return out


def _tokens(text: str) -> Iterable[tuple[str, bool]]:
    """(token, is a whole identifier) pairs of `text`, in order, repeats included."""
    for match in _CHUNK.finditer(text):
        token = _strip(match[0])
        if not token:
            continue
        if _is_identifier(token):
            whole = token.lower()
            yield whole, True
            if "/" in token or "\\" in token:
                for piece in re.split(r"[/\\]", token):
                    piece = _strip(piece)
                    if piece and piece.lower() != whole and _is_identifier(piece):
                        yield piece.lower(), True
        for part in _parts(token):
            yield part, False


def words(text: str) -> list[str]:
    """The distinct fuzzy-matchable words of a memory's text, in order of first appearance."""
    seen: dict[str, None] = {}
    for token, _whole in _tokens(text):
        if len(token) <= MAX_WORD:
            seen.setdefault(token, None)
    return list(seen)


def name_terms(name: str) -> tuple[list[str], list[str]]:
    """(whole identifiers, words) of a query name: a memory matches the name when one of
    the wholes matches one of its words, or when every word does (each fuzzily)."""
    wholes: dict[str, None] = {}
    parts: dict[str, None] = {}
    for token, whole in _tokens(name):
        if len(token) <= MAX_WORD:
            (wholes if whole else parts).setdefault(token, None)
    return list(wholes), list(parts)


def edits(term: str) -> int:
    """How many edits (a transposition counts one) a term forgives."""
    return 0 if len(term) < EXACT_BELOW else 1 if len(term) < TWO_EDITS_FROM else 2


def as_prefix(term: str) -> bool:
    """Whether a term also matches the start of a longer word."""
    return len(term) >= PREFIX_FROM


def entity_words(names: Iterable[str]) -> list[str]:
    """The distinct words of entity names, whitespace-collapsed and lower-cased as the
    graph keys them, in order of first appearance."""
    seen: dict[str, None] = {}
    for name in names:
        for word in " ".join(str(name).split()).lower().split(" "):
            if word:
                seen.setdefault(word, None)
    return list(seen)
