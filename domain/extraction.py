"""The offline fact extractor: which sentences of a conversation are worth remembering (pure).

`extract_facts(messages)` needs no LLM, does no I/O and is deterministic: the same
conversation always gives the same facts in the same order.

Which messages
--------------
Only messages whose role is in `roles` (default `("user",)`; assistant, system and tool
messages are not the user's facts). A message may start with a speaker name and a colon
(`Caroline: I went to ...`: up to three Title-case words, not a label such as `Note:`,
`Update:`, `Q:`): LoCoMo feeds two human speakers that way. The prefix is kept in front of
every fact of that message (`Caroline: ...`) and the speaker is the fact's first entity
(a person); the rules below look at the text after the prefix. Fenced code blocks
(```...```) are not facts and are removed.

Sentences
---------
Lines and list bullets (`-`, `*`, `•`, `1.`) are separate; inside a line a sentence ends at
`.`, `!`, `?` or `…` (closing quotes and brackets included) followed by whitespace or the
end. A dot with no space after it never ends a sentence, so decimals (`3.5`), file names
(`release_build.sh`, `src/app.py`), versions and URLs stay whole; neither does a dot after
an abbreviation (`e.g.`, `i.e.`, `etc.`, `vs.`, `Dr.`, `Mr.`, `approx.` ...) or an initial
(`J. Smith`).

Which sentences
---------------
In order, for each sentence of a kept message:
1. A leading interjection is cut (`Hey Mel, `, `Oh, `, `Haha, `, `Thanks, `, `Well, `).
2. Filler is dropped: a sentence made only of greetings, thanks, acknowledgements and
   interjections (`ok`, `lol`, `haha`, `sounds good`, `thank you so much`, `good morning`),
   optionally with one name (`Thanks, Melanie!`), or with no word at all (emoji).
3. A question is dropped (it asks, it states nothing), except a statement with a tag
   (`I moved to Berlin, you know?`), which is kept without its tag.
4. A dependent sentence is merged into the fact before it: when it starts with a pronoun
   that points back (`It`, `That`, `This`, `These`, `Those`, `They`, `He`, `She`, `There`,
   `Its`, `His`, `Her`, `Their`), has at most 8 words, directly follows a kept sentence of
   the same message and the merged fact stays within 60 words
   (`I went to the support group. It was powerful.` is one fact).
5. A reaction to the other speaker is dropped (`That's awesome`, `You're so brave`,
   `Sounds fun`, `What a great idea`, `It's been great chatting`) when it names nothing
   and has no I/my/we/our.
6. A very short sentence (under 4 words) is dropped unless it names something (an entity
   of `domain.entities.extract`), has a number, or has a category (`I'm vegan.` is kept).
Everything else is kept. Identical facts (case, spacing and final punctuation aside) are
kept once, with the message indexes of every occurrence.

Each fact
---------
- text: whitespace collapsed (first letter capitalised after a cut interjection);
- message_indexes: the positions in `messages` it came from;
- entities, relations: `domain.entities.extract` of the text after the speaker prefix,
  the speaker first;
- importance: `domain.importance.initial_importance` of that text;
- categories, in this order, each when its keywords match:
  preference  `I like/love/prefer/hate/enjoy ...`, `my favourite`, `rather`, `allergic`,
              `vegan`, `vegetarian`
  decision    `decided`, `agreed`, `chose`, `settled on`, `going with`, `opted`, `we'll use`
  instruction a sentence starting with an imperative (`Always`, `Never`, `Use`, `Don't`,
              `Make sure`, `Please` ...) or containing `from now on`, `make sure`, `must`,
              `should always/never`, `remember to`
  plan        `plan`, `going to`, `gonna`, `will`, `'ll`, `intend`, `next week/...`,
              `tomorrow`, `hope to`, `about to`, `scheduled`, `thinking about`
  event       a past happening (`went`, `visited`, `met`, `started`, `moved`, `joined`,
              `adopted`, `graduated` ...), `yesterday`, `last week/...`, `ago`, or a date
  personal    family, pets, home, job, age, name, origin (`my sister`, `I'm from`,
              `I live`, `I work`, `years old`, `I'm a ...`)
  technical   a file path, url or code identifier, or a software word (`code`, `deploy`,
              `database`, `API`, `repo`, `Python`, `Docker`, `tests` ...).
"""

from __future__ import annotations

import re
from typing import Sequence

from domain.entities import MAX_ENTITIES, extract
from domain.events import ChatMessage, Entity
from domain.importance import initial_importance
from domain.intelligence import Fact

__all__ = ["CATEGORIES", "NEGATION", "STOP_WORDS", "OfflineExtractor", "categorize", "content_words", "extract_facts",
           "normalise", "split_sentences", "split_speaker", "stem", "words_of"]

CATEGORIES = ("preference", "decision", "instruction", "plan", "event", "personal", "technical")
MERGE_MAX_WORDS = 8  # a dependent sentence longer than this stands on its own
MERGED_MAX_WORDS = 60
SHORT_WORDS = 4

# Dots that never end a sentence, end it only before a capital, or only when no number follows.
_ABBREVIATIONS = frozenset("e.g eg i.e ie vs cf approx ca dr mr mrs ms prof st jr sr mt resp incl excl".split())
_ABBREVIATIONS_BEFORE_LOWER = frozenset("etc inc ltd corp co a.m p.m u.s u.k".split())
_ABBREVIATIONS_BEFORE_NUMBER = frozenset("no nr fig vol pp p".split())
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+")
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_SPEAKER = re.compile(r"^\s*([A-Z][a-z][\w'’-]*(?:[ \t]+[A-Z][a-z][\w'’-]*){0,2})[ \t]*:[ \t]+(?=\S)")
_NOT_SPEAKERS = frozenset("""
    note notes remember important update reminder todo fyi edit warning also btw question answer user assistant
    system summary context tldr subject example tip info error bug fix task goal problem solution reason step
    result output input re fwd ps pps caveat disclaimer heads hint idea issue status action decision plan
    """.split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d+")
_FILLER_WORDS = frozenset("""
    hi hey hello hiya yo howdy greetings thanks thank thx ty you so much a lot very really ok okay k kk alright
    fine sure yes yeah yep yup ya no nope nah cool great nice awesome amazing wow oh ah aw aww ooh hmm um uh
    bye goodbye see later soon good morning afternoon evening night day sounds to me that that's thats it it's
    is was too totally definitely right exactly indeed got it gotcha perfect np welcome you're anytime cheers
    well glad hear sorry congrats congratulations wonderful fantastic true agreed same here noted understood
    makes sense omg yay woohoo lovely sweet neat
    """.split())
_LAUGH = re.compile(r"^(?:(?:ha|he|hi)+h?|lo+l|lmf?ao|rofl|xd)$", re.I)
_INTERJECTION = re.compile(
    r"^(?:(?:hi|hey|hello|hiya|yo|good (?:morning|afternoon|evening)|oh|wow|so|well|haha+|hehe|lol|ok(?:ay)?"
    r"|yeah|yes|hmm+|um+|thanks|thank you(?: so much)?|aw+)"
    r"(?:[ \t]+(?-i:[A-Z])[\w'’-]*){0,2}[ \t]*[,!]+[ \t]*)+", re.I)  # then up to two names: "Hey Mel, "
_TAG_QUESTION = re.compile(r",\s*(?:right|you know|isn'?t it|don'?t you think|ain'?t it|no|yeah|eh|huh|correct|"
                           r"ok(?:ay)?)\s*\?+[\"'”’)\]]*$", re.I)
_DEPENDENT = re.compile(r"^(?:it|that|this|these|those|they|he|she|there|its|his|her|their)\b", re.I)
_REACTION = re.compile(
    r"^(?:that(?:'s|’s| is| was| sounds| looks| must| seems)|this (?:is|sounds|looks)|it (?:sounds|looks|must|seems)"
    r"|sounds|looks|seems|you(?:'re|’re|'ve|’ve| are| must| should be| did| have| were| look| sound| got)|what an?"
    r"|it(?:'s|’s| has) been (?:great|nice|fun|lovely|good|awesome|a pleasure)|how "
    r"(?:cool|nice|great|awesome|amazing|fun|wonderful|lovely|exciting|sweet)|so (?:happy|glad|proud|cool)|glad|"
    r"good (?:luck|job|for you)|keep it up|well done)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i’m|i've|i'd|i'll|me|my|mine|we|we're|we've|our|us)\b", re.I)

_CATEGORY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("preference", re.compile(
        r"\b(?:i|we)(?:'m|’m| am| are)?(?: (?:really|also|still|absolutely|just|do|don'?t|do not|kinda|totally))*"
        r" (?:prefer|like|love|hate|dislike|enjoy|adore|can'?t stand|fancy|favou?r)\b|\bmy favou?rites?\b"
        r"|\b(?:rather|allergic|vegan|vegetarian|fan of)\b", re.I)),
    ("decision", re.compile(r"\b(?:decided|decide|decision|agreed|chose|chosen|settled on|going with|opted|"
                            r"we'?ll use|we will use|picked)\b", re.I)),
    ("instruction", re.compile(
        r"^(?:always|never|use|don'?t|do not|please|make sure|remember to|avoid|keep|run|put|add|prefer|stop|"
        r"call|write|check|ensure|set|only)\b|\b(?:from now on|make sure|must|should (?:always|never)|"
        r"remember to|don'?t forget to)\b", re.I)),
    ("plan", re.compile(r"\b(?:plan|plans|planning|planned|going to|gonna|will|'ll|’ll|intend|intends|next (?:week|"
                        r"month|year|weekend|time|summer|spring|fall|autumn|winter)|tomorrow|upcoming|hope to|"
                        r"hoping to|about to|scheduled|thinking about|thinking of)\b", re.I)),
    ("event", re.compile(r"\b(?:went|visited|attended|met|started|finished|graduated|moved|joined|bought|adopted|"
                         r"won|lost|married|born|travell?ed|celebrated|got|had|took|made|saw|ran|painted|signed|"
                         r"launched|released|shipped|happened|yesterday|last (?:week|month|year|night|weekend|"
                         r"summer|time)|ago|earlier today)\b", re.I)),
    ("personal", re.compile(
        r"\bmy (?:wife|husband|partner|boyfriend|girlfriend|son|daughter|kids?|children|mom|mum|mother|dad|father|"
        r"parents?|sister|brother|siblings?|family|friends?|dog|cat|pets?|name|birthday|job|home|house|"
        r"apartment|city|hometown|boss|team|grandma|grandpa|grandmother|grandfather)\b|\bi(?:'m|’m| am) "
        r"(?:a|an|from|\d+)\b|\bi (?:live|lived|work|worked|grew up|was born)\b|\byears old\b|\bmy name is\b"
        r"|\b(?:vegan|vegetarian|allergic|married|single|divorced|pregnant|retired|transgender|trans)\b", re.I)),
    ("technical", re.compile(
        r"\b(?:code|coding|deploy\w*|database|db|api|apis|repo|repository|server|docker|kubernetes|k8s|git|"
        r"tests?|build|config\w*|sql|function|library|framework|editor|ide|tabs|spaces|linter|compiler|python|"
        r"typescript|javascript|rust|java|golang|postgres\w*|redis|kafka|branch|commit|merge|bug|endpoint|"
        r"script|cli|backend|frontend)\b", re.I)),
)
_TECHNICAL_ENTITY_TYPES = frozenset({"file_path", "url", "code_identifier"})


# Lexical helpers shared with domain/reconciliation.py and domain/consolidation.py.
NEGATION = re.compile(r"\b(?:not|never|no|none|nothing|nobody|neither|nor|no longer)\b|n['’]t\b", re.I)
STOP_WORDS = frozenset("""
    i me my mine we us our ours you your he him his she her it its they them their this that these those there
    a an the and or but if so of to in on at by for with from as into about over than then too very really just
    also still is am are was were be been being do does did done have has had having will would shall should can
    could may might must not no never nor don't doesn't didn't isn't aren't wasn't weren't won't can't haven't
    hasn't im i'm i've i'd i'll it's that's there's what which who whom whose when where why how all any some
    one more most much many such only own same other
    """.split())
_LOWER_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words_of(text: str) -> list[str]:
    """The lower-case words of `text` (apostrophes kept: `don't`, `ana's`)."""
    return _LOWER_WORD.findall(text.lower().replace("’", "'"))


def stem(word: str) -> str:
    """A light stemmer so that `drinking`, `drinks` and `drink` compare equal."""
    word = re.sub(r"'s$", "", word)
    for suffix, keep in (("ing", 4), ("ed", 3), ("es", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep and not word.endswith("ss"):
            return word[:-len(suffix)]
    return word


def content_words(text: str, exclude: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """The stemmed words of `text` that carry content: no stop words, none of `exclude`."""
    return {stem(w) for w in words_of(text) if w not in STOP_WORDS and w not in exclude}


def normalise(text: str) -> str:
    """The comparison key of a fact: lower case, single spaces, no final punctuation."""
    return " ".join(text.split()).lower().rstrip(" .!?…")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` (see the module docstring), whitespace-collapsed, in order."""
    sentences: list[str] = []
    for line in _CODE_FENCE.sub(" ", text).splitlines():
        line = _BULLET.sub("", line)
        start = 0
        for match in _SENTENCE_END.finditer(line):
            only_dots = set(match.group()) <= set(".\"'”’)]")
            if only_dots and _no_break_before(line, start, match.start(), line[match.end():]):
                continue
            sentences.append(line[start:match.end()])
            start = match.end()
        sentences.append(line[start:])
    return [s for s in (" ".join(part.split()) for part in sentences) if s]


def _no_break_before(line: str, start: int, dot: int, after: str) -> bool:
    """Whether the word before this dot is an abbreviation or an initial (not a sentence end)."""
    words = line[start:dot].split()
    if not words:
        return False
    word = words[-1].lstrip("\"'“‘([").lower()
    following = after.lstrip()[:1]
    return (word in _ABBREVIATIONS or (len(word) == 1 and words[-1][-1].isupper())
            or (word in _ABBREVIATIONS_BEFORE_LOWER and not following.isupper())
            or (word in _ABBREVIATIONS_BEFORE_NUMBER and following.isdigit()))


def categorize(text: str, entities: Sequence[Entity] = ()) -> tuple[str, ...]:
    """The categories of a statement (see the module docstring), in CATEGORIES order."""
    found = [name for name, rule in _CATEGORY_RULES if rule.search(text)]
    if "event" not in found and any(e.type == "date" for e in entities):
        found.append("event")
    if "technical" not in found and any(e.type in _TECHNICAL_ENTITY_TYPES for e in entities):
        found.append("technical")
    return tuple(c for c in CATEGORIES if c in found)


def _is_filler(sentence: str) -> bool:
    words = _WORD.findall(sentence)
    if not words:
        return True  # emoji or punctuation only
    filler = [w for w in words if w.lower().replace("’", "'") in _FILLER_WORDS or _LAUGH.match(w)]
    rest = [w for w in words if w not in filler]
    # One leftover Title-case word is the addressee: "Thanks, Melanie!"
    return bool(filler) and (not rest or (len(rest) == 1 and rest[0][0].isupper() and len(words) > 1))


def split_speaker(content: str) -> tuple[str, str]:
    """(speaker name or "", the rest): `Caroline: I went ...` gives ("Caroline", "I went ...")."""
    match = _SPEAKER.match(content)
    if match and match.group(1).split()[0].lower() not in _NOT_SPEAKERS:
        return match.group(1), content[match.end():]
    return "", content


def extract_facts(messages: Sequence[ChatMessage], roles: Sequence[str] = ("user",)) -> list[Fact]:
    """The facts worth remembering in a conversation (see the module docstring)."""
    wanted = {r.lower() for r in roles}
    drafts: list[tuple[str, str, list[int]]] = []  # (speaker, body, message indexes)
    seen: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.role.lower() not in wanted or not message.content:
            continue
        speaker, content = split_speaker(message.content)
        for body in _statements(content):
            key = normalise(f"{speaker}: {body}" if speaker else body)
            if key in seen:  # the same fact said again: one fact, every message it came from
                indexes = drafts[seen[key]][2]
                if index not in indexes:
                    indexes.append(index)
                continue
            seen[key] = len(drafts)
            drafts.append((speaker, body, [index]))
    return [_fact(speaker, body, tuple(indexes)) for speaker, body, indexes in drafts]


def _statements(content: str) -> list[str]:
    """The kept sentences of one message, dependent ones merged (rules 1-6)."""
    kept: list[str] = []
    previous_kept = False  # was the sentence right before this one kept (or merged)?
    for sentence in split_sentences(content):
        cut = _INTERJECTION.sub("", sentence)
        if cut != sentence:
            sentence = cut[:1].upper() + cut[1:]
        if not sentence or _is_filler(sentence):
            previous_kept = False
            continue
        if sentence.rstrip("\"'”’)]").endswith("?"):
            tag = _TAG_QUESTION.search(sentence)
            if not tag:
                previous_kept = False
                continue
            sentence = sentence[:tag.start()] + "."
        words = len(_WORD.findall(sentence))
        if (previous_kept and _DEPENDENT.match(sentence) and words <= MERGE_MAX_WORDS
                and len(_WORD.findall(kept[-1])) + words <= MERGED_MAX_WORDS):
            kept[-1] = f"{kept[-1]} {sentence}"
            continue
        entities, _ = extract(sentence)
        named = bool(entities) or any(ch.isdigit() for ch in sentence)
        if (not named and _REACTION.match(sentence) and not _FIRST_PERSON.search(sentence)) or (
                words < SHORT_WORDS and not named and not categorize(sentence)):
            previous_kept = False
            continue
        kept.append(sentence)
        previous_kept = True
    return kept


def _fact(speaker: str, body: str, indexes: tuple[int, ...]) -> Fact:
    entities, relations = extract(body)
    if speaker and all(e.name.lower() != speaker.lower() for e in entities):
        entities = (Entity(name=speaker, type="person"), *entities)[:MAX_ENTITIES]
    return Fact(text=f"{speaker}: {body}" if speaker else body, message_indexes=indexes, entities=entities,
                relations=relations, importance=initial_importance(body), categories=categorize(body, entities))


class OfflineExtractor:
    """The FactExtractor port without an LLM: `extract_facts` of the conversation."""
    name = "offline"

    def __init__(self, roles: Sequence[str] = ("user",)):
        self.roles = tuple(roles)

    async def extract(self, messages: Sequence[ChatMessage]) -> list[Fact]:
        return extract_facts(messages, self.roles)
