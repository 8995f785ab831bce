"""What a speaker says of themself about common things: `Jon: I'm passionate about dancing`,
`Gina: I built a new website`, `Jon: Lost my job as a banker`. Pure: standard library `re` only.

Chat seldom names two capitalised entities with a verb between them ("Ana works at Acme"), so
the name patterns of domain/entities.py find few relations in a conversation. A person's
first-person statements about lowercase things (their hobbies, work, projects, things they
made, groups they joined) are what a conversation is mostly about. Each gives a `topic`
entity and a typed relation from the speaker:

    I (really) love|enjoy|like|adore X, I'm into|passionate about|a fan of X, my love for X   likes
    I play|practise|took up|got into X                                                     practices
    I started|opened|launched|founded|set up X                                             started
    I'm working on X                                                                        works_on
    I work|worked as a X, my job|career as a X                                              works_as
    I'm learning|studying X, taking X classes|lessons                                      learns
    I made|built|created|designed|wrote|painted|baked X                                    made
    I bought X, I got a new X                                                               owns
    I joined X                                                                              member_of
    my X, for a studio, store, business, band, dog... (a short list of things one owns)     has
    I volunteer at|with|for X                                                               volunteers_at

X is a noun phrase of one to three lowercase words after optional determiners (`a`, `my`,
`our own`...): it ends at punctuation, a preposition, a conjunction or a pronoun, and its
last word is no pronoun, adverb or vague word (`it`, `this`, `a lot`, `things`, `time`,
`so much`), so `I love it` and `I made a lot of friends` give nothing. A list goes on:
`my love for dance and fashion` gives both. Capitalised names are left to domain/entities.py
(`I love Paris`). A topic is named in lowercase, so `Dancing` and `dancing` are one node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Topic", "first_person_topics"]


@dataclass(frozen=True)
class Topic:
    relation: str
    name: str
    start: int
    end: int


_I = (r"(?<![\w'’])(?:I|we)(?:['’](?:m|ve|re|d))?\s+"
      r"(?:(?:am|are|have|had|been|was|were|really|so|also|still|always|absolutely|totally|just|truly|recently|now|"
      r"currently|lately|finally|even|actually|definitely|usually|often|never|gonna|going\s+to|decided\s+to|want\s+to|"
      r"started\s+to)\s+)*")
_MY = r"(?<![\w'’])(?:my|our)\s+(?:(?:own|new|first|biggest|true|great|huge)\s+)*"
_FOR = r"\s+(?:for|of)\s+"

# What `my ...` names as the speaker's own (`my dance studio`, `our turtles`); `my dreams` is not.
_OWNED = (r"(?:studio|store|shop|business|company|startup|brand|blog|channel|podcast|website|app|band|team|crew|club|"
          r"garden|house|apartment|car|bike|boat|dogs?|cats?|puppy|puppies|turtles?|pets?|guitar|piano|violin|camera|"
          r"collection|book|novel|album|paintings?|artwork|farm|restaurant|bakery|cafe|charity|foundation|project|"
          r"career|degree|course|class|clothing\s+line)")
_PATTERNS = [
    ("likes", rf"{_I}(?:love|loved|loving|enjoy|enjoyed|enjoying|like|liked|adore|adored|into|(?:so\s+|really\s+)?"
              r"passionate\s+about|(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of|obsessed\s+with|hooked\s+on|crazy\s+about|"
              r"fond\s+of)\s+(?:to\s+)?"),
    ("likes", rf"{_MY}(?:love|passion|fondness){_FOR}"),
    ("practices", rf"{_I}(?:went|go|going|goes)\s+(?=[a-z]+ing\b(?!\s+(?:to|on|for|with|through|back)\b))"),
    ("practices", rf"{_I}(?:doing|done|do|did)\s+(?=[a-z-]+\s*[.,!?;])"),
    ("learns", rf"{_I}(?:taking|took|take|signed\s+up\s+for|enrolled\s+in)\s+"
               r"(?=(?:[a-z-]+\s+){0,3}?(?:class|classes|lessons?|courses?|workshops?)\b)"),
    ("visited", rf"{_I}(?:went\s+to|go\s+to|going\s+to|been\s+to|visited|visiting|(?:a|my|our)\s+trip\s+to)\s+"
                r"(?=(?:the|a|an)\s)"),
    ("practices", rf"{_I}(?:play|played|playing|practi[cs]e|practi[cs]ed|practi[cs]ing|took\s+up|taking\s+up|"
                  r"picked\s+up|got\s+into|getting\s+into|get\s+into)\s+"),
    ("started", rf"{_I}(?:start|started|starting|opened|opening|launched|launching|founded|set\s+up|setting\s+up)\s+"),
    ("works_on", rf"{_I}(?:working|work|worked)\s+on\s+"),
    ("works_as", rf"{_I}(?:work|worked|working)\s+as\s+"),
    ("works_as", rf"{_MY}(?:job|career|work)\s+as\s+"),
    ("learns", rf"{_I}(?:learning|learn|learned|learnt|studying|study|studied)\s+(?:to\s+)?"),
    ("made", rf"{_I}(?:made|built|create|created|creating|designed|wrote|written|painted|baked|drew|knitted|sewed)\s+"),
    ("owns", rf"{_I}(?:bought|purchased|got(?=\s+(?:a|an|my|myself\s+a)\s+new\s))\s+(?:myself\s+)?"),
    ("member_of", rf"{_I}(?:joined|joining)\s+"),
    ("has", rf"{_MY}(?=(?:[a-z-]+\s+){{0,2}}?{_OWNED}\b)"),
    ("volunteers_at", rf"{_I}(?:volunteer|volunteered|volunteering)\s+(?:at|with|for|in)\s+"),
]
_OWNED_PHRASE = re.compile(rf"(?:[a-z-]+\s+){{0,2}}{_OWNED}\b", re.IGNORECASE)
_DETERMINERS = r"(?:(?:a|an|the|my|our|some|this|these|those|his|her|their|new|own|first|little|local|whole)\s+)*"
_WORD = r"[a-z][a-z'’-]*[a-z]"
_PHRASE = rf"({_WORD}(?:\s+{_WORD}){{0,2}})"
_COMPILED = [(relation, re.compile(pattern + _DETERMINERS + _PHRASE, re.IGNORECASE)) for relation, pattern in _PATTERNS]
# A list goes on with plain items only: `and my dogs had a blast` is a new clause.
_LIST_NEXT = re.compile(rf"\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:(?:a|an|the|some|new|own|first)\s+)*{_PHRASE}")

# A phrase ends before one of these (and the rest of it is dropped).
_ENDERS = frozenset("""
    and or but nor so because as if than that which who whom whose when where while since until though although
    to for in on at of from with by about into onto over under after before during through without within around
    i i'm i've i'd we you he she it they them him her me us my our your his their its this these those there here
    is are was were be been being am has have had do does did will would can could should may might must
    too very really so also just now then again lately recently today yesterday tomorrow together anymore already
    soon later yet ever even all every each both more most much many lot lots bit some any no not
    a an the how what why few couple last next ago
    """.split())
# Nor may a phrase be one of these, or end in one.
_VAGUE = frozenset("""
    it that this them one ones thing things stuff something anything everything nothing way ways time times
    idea ideas moment moments day days week weeks month months year years part parts kind sort chance opportunity
    feeling feelings fact reason life lot lots bit people person everyone someone anyone others other
    sure glad happy great good fun best better awesome amazing cool nice fine okay ok ready able excited proud
    going getting doing having being trying making seeing hearing looking taking gonna wanna gotta
    difference progress sense decision decisions mistake mistakes friends friend stop start step steps
    ton tons bunch loads place space spot well alright break bed work home question questions trip
    see hear know help join try meet visit go come check chat catch talk share say tell hang keep get
    """.split())
_OBJECT_NEXT = re.compile(r"\s+(?:a|an|the|my|our|your|his|her|their|this|that|these|those|it|them)\b", re.IGNORECASE)
_DANGLING = frozenset("new old other same different own first last next".split())
_NOUNS_IN_LY = frozenset("family families rally assembly jelly ally anomaly supply italy".split())


def first_person_topics(text: str) -> list[Topic]:
    """The (relation, topic) statements of `text`, in text order, each topic once per relation."""
    found: list[Topic] = []
    seen: set[tuple[str, str]] = set()
    for relation, pattern in _COMPILED:
        for match in pattern.finditer(text):
            phrase_start, phrase = match.start(1), match.group(1)
            if relation == "has":  # `my dogs like it`: the dogs
                phrase = phrase[:_OWNED_PHRASE.match(phrase).end()]
            while True:
                phrase = _cut(phrase)
                pos = phrase_start + len(phrase)
                name = _phrase(phrase, text[pos:])
                if name is not None and (relation, name) not in seen and text[phrase_start].islower():
                    seen.add((relation, name))
                    found.append(Topic(relation, name, phrase_start, pos))
                if name is None or relation == "has" or (nxt := _LIST_NEXT.match(text, pos)) is None:
                    break
                phrase_start, phrase = nxt.start(1), nxt.group(1)
    return sorted(found, key=lambda t: (t.start, t.relation))


def _cut(words: str) -> str:
    """`words` up to the first word that ends a noun phrase (`dance and fashion`: `dance`)."""
    end = 0
    for match in re.finditer(r"\S+", words):
        word = match.group()
        if word.casefold().replace("’", "'") in _ENDERS or "'" in word or "’" in word:
            break
        end = match.end()
    return words[:end]


def _phrase(words: str, after: str) -> str | None:
    """The noun phrase `words`, lowercase and single-spaced, or None if vague or a verb with an
    object (`running my own studio`: the studio, not the running)."""
    kept = words.split()
    if not kept or (kept[-1].casefold().endswith("ing") and _OBJECT_NEXT.match(after)):
        return None
    last = kept[-1].casefold()  # `_cut` ended the phrase before any word with an apostrophe
    if (last in _VAGUE or last in _DANGLING or kept[0].casefold() in _VAGUE or (len(last) > 4 and last.endswith("ed"))
            or (last.endswith("ly") and last not in _NOUNS_IN_LY)):
        return None
    return " ".join(kept).casefold() if len(" ".join(kept)) >= 3 else None
