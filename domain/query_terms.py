"""What the lexical and graph sources look for in a query (pure: no I/O).

- `keywords`: the query's content words (lower-case, letters and digits only, stop
  words dropped), for a full-text OR query: a memory that shares any of them is a
  candidate, ranked by how well it matches. Only [a-z0-9] survive, so a keyword can
  never carry tsquery syntax (they travel as parameters anyway).
- `names`: names and identifiers worth fuzzy (trigram) matching: the entities the
  offline extractor finds (people, products, files, code identifiers...) plus
  capitalised words and identifier-like tokens, so "Carolin" or "getUserNme" still
  finds the memory that spells it right.
"""

from __future__ import annotations

import re

from domain.entities import extract
from domain.temporal import MONTHS, WEEKDAYS

STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't
my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd
she'll she's should shouldn't so some such than that that's the their theirs them themselves then there
there's these they they'd they'll they're they've this those through to too under until up very was wasn't we
we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom why why's
with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
also did does get got just like likely would will yes ok okay hey hi hello thanks thank really much many
""".split())

_WORD = re.compile(r"[a-z0-9]+")
_IDENTIFIER = re.compile(r"[A-Za-z0-9]*[_./][A-Za-z0-9_./]*[A-Za-z0-9]|[a-z]+[A-Z][A-Za-z0-9]*")
_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z0-9'-]{2,}\b")
MAX_KEYWORDS = 24
MAX_NAMES = 6


def keywords(query: str) -> list[str]:
    """Content words of `query` in order of appearance, each once."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower().replace("'s ", " ")):
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)[:MAX_KEYWORDS]


def tsquery_text(words: list[str]) -> str | None:
    """A to_tsquery('english', ...) text that matches any of `words` (None when empty)."""
    clean = [w for w in words if _WORD.fullmatch(w)]
    return " | ".join(clean) if clean else None


def names(query: str) -> list[str]:
    """Names and identifiers in `query`, each once, at most MAX_NAMES, longest first
    among equals in order of appearance."""
    entities, _ = extract(query)
    found: dict[str, None] = {}
    for entity in entities:
        if entity.type not in ("date", "quantity") and len(entity.name) >= 3:
            found.setdefault(entity.name, None)
    for match in _IDENTIFIER.finditer(query):
        if len(match[0]) >= 3:
            found.setdefault(match[0], None)
    for match in _CAPITALISED.finditer(query):
        word = match[0]
        if not query[:match.start()].strip() or query[:match.start()].rstrip()[-1] in ".!?:;\"'(":
            continue  # "Quick question: ..." or "Remind me ...": capitalised by position, not a name
        lower = word.lower()
        if lower not in STOP_WORDS and lower not in MONTHS and lower not in WEEKDAYS \
                and not any(word in name for name in found):
            found.setdefault(word, None)
    return list(found)[:MAX_NAMES]
