"""The terms the sparse index keeps for fuzzy matching, and how a query name is looked up (pure).

The sparse index (adapters/sparse_index.py) matches names, identifiers and misspellings
with Levenshtein automata (fuzzy term queries) over two unstemmed fields, and this module
decides what a query name is looked up as, so both sides split alike:

- `words`: every run of letters and digits, lower-cased (Tantivy's simple tokenizer does it
  at indexing time: `Caroline:` -> `caroline`, `don't` -> `don`, `t`);
- `idents` (`identifiers()`): each identifier of the text, a run of non-space characters with
  `_ . / \\ : @ # -` inside or camelCase, kept whole, its path pieces, and its camel humps:
  `tools/release_build.sh` gives `tools/release_build.sh`, `release_build.sh`;
  `getUserName` gives `getusername`, `get`, `user`, `name`.
A misspelt identifier then matches a whole (`release_buidl.sh`), a fragment matches its
parts (`UserName`), a misspelt name its words (`Carolyne`).

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
_CANDIDATE = re.compile(r"[_./\\:@#-]\S|[a-z0-9][A-Z]")  # a cheap first cut: an identifier has one of these
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


def _pieces(token: str) -> list[str]:
    """A whole identifier and its path pieces that are identifiers too, lower-cased."""
    out = [token.lower()]
    if "/" in token or "\\" in token:
        for piece in map(_strip, re.split(r"[/\\]", token)):
            if piece and piece != token and _is_identifier(piece):
                out.append(piece.lower())
    return out


def identifiers(text: str) -> list[str]:
    """The `idents` terms of a text: each identifier whole, its path pieces and its camel
    humps, lower-cased, each once, in order (words of MAX_WORD characters or fewer)."""
    seen: dict[str, None] = {}
    if not _CANDIDATE.search(text):
        return []
    for chunk in text.split():
        token = _strip(chunk) if _CANDIDATE.search(chunk) else ""
        if not token or not _is_identifier(token):
            continue
        for term in _pieces(token) + [h for run in _ALNUM.findall(token) if _CAMEL.search(run) for h in _parts(run)]:
            if len(term) <= MAX_WORD:
                seen.setdefault(term, None)
    return list(seen)


def name_terms(name: str) -> tuple[list[str], list[str]]:
    """(whole identifiers, words) of a query name: a memory matches the name when one of
    the wholes matches one of its identifiers, or when every word matches one of its words
    or identifier humps (each fuzzily)."""
    wholes: dict[str, None] = {}
    parts: dict[str, None] = {}
    for chunk in _CHUNK.findall(name):
        token = _strip(chunk)
        if not token:
            continue
        if _is_identifier(token):
            for whole in _pieces(token):
                wholes.setdefault(whole, None)
        for part in _parts(token):
            parts.setdefault(part, None)
    return [w for w in wholes if len(w) <= MAX_WORD], [p for p in parts if len(p) <= MAX_WORD]


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
