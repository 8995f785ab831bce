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
(a person); the rules below look at the text after the prefix. The speakers' names (each
word, lower case) are the conversation's addressees: a word that is one of them, or the
start of one (`Mel` for Melanie), used as a vocative, names nothing. Fenced code blocks
(```...```) are not facts and are removed. Image captions (`[image: ...]`) are taken out of
the text before the rules and come back at the end of the message's last fact; a message
with no kept sentence drops its captions too (a caption alone is no fact).

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
1. A leading thanks clause is cut (`Thanks for asking, I went ...` keeps `I went ...`;
   `Thanks, Caroline, for letting me join.` leaves nothing), then a leading interjection
   (`Hey Mel, `, `Oh, `, `Haha, `, `Yep, `, `Wow, `, `Well, `), then vocatives: addressees
   at the start (`Mel, `), between commas or at the end (`I agree, Mel.` -> `I agree.`).
2. Filler is dropped: a sentence made only of greetings, thanks, acknowledgements and
   interjections (`ok`, `lol`, `haha`, `sounds good`, `thank you so much`, `good morning`,
   `no doubts`, `absolutely`), optionally with addressees or one name (`Thanks, Melanie!`),
   or with no word at all (emoji).
3. A question is dropped (it asks, it states nothing), except:
   - a statement before a trailing question in the same sentence (`I can give it to you
     tomorrow, how does that sound?`, `I moved to Berlin, you know?`, `The Hobbit is
     great, but have you read ...?`), which is kept without the question;
   - a proposal (`How about`, `What about`, `Why not`, `Shall we`, `Want to`, `Have you
     read/seen/tried/been to ...`, `Did you ever ...`) that names a thing or has at least
     two words of substance after its opener, which is kept as asked.
4. A dependent sentence is merged into the fact before it: when it starts with a pronoun
   that points back (`It`, `That`, `This`, `These`, `Those`, `They`, `He`, `She`, `There`,
   `Its`, `His`, `Her`, `Their`), has at most 8 words, directly follows a kept sentence of
   the same message and the merged sentence stays within 60 words
   (`I went to the support group. It was powerful.` is one sentence).
5. Small talk is dropped when it names nothing (below) and has no first person:
   - a reaction to the other speaker (`That's awesome`, `You're so brave`, `Your words are
     motivating`, `Sounds fun`, `Congrats on ...`, `Can't wait`, `Keep it up`) with fewer
     than 3 words of substance;
   - praise or encouragement (`Animals are truly amazing.`, `Cherish those memories!`,
     `Stay safe!`: an evaluative word such as amazing/great/cute/tough, or a cheering
     imperative) with at most 3 words of substance;
   and, first person or not, when it names nothing and has at most 10 words: support,
   agreement and promises of small talk (`I'm so happy for you`, `I 100% agree`, `We got
   this`, `I'll definitely check it out`, `Let me know ...`, `Long time no talk`, `Don't
   quit`, `Always here for you`, `That trail looks nice`, `Have a safe trip`).
6. A short sentence (under 6 words) is dropped unless it names something, or has a word of
   substance and either a category or a second word of substance (`I'm vegan.`, `Pottery
   is so relaxing.` are kept; `We got this!`, `It was fun.` are not).
Names something: an entity of `domain.entities.extract` that is not an addressee (nor the
speaker), or a number (`100%` is none). Words of substance: the words of the sentence that
are no stop word, no filler word and no small-talk word (`got`, `agree`, `time`, `talk`,
`great`, `love`, `thing` ...).

One fact per message
--------------------
The kept sentences of a message, joined in order, are one fact: so a conversation has at
most as many facts as kept messages. A message of more than 5 kept sentences is split into
facts of about 3 (n sentences make ceil(n/3) facts as equal as possible, in order).
Identical facts (case, spacing and final punctuation aside) are kept once, with the message
indexes of every occurrence.

Each fact
---------
- text: whitespace collapsed (first letter capitalised after a cut thanks, interjection or
  vocative), then the message's captions when it is the message's last fact;
- message_indexes: the positions in `messages` it came from;
- entities, relations: `domain.entities.extract` of the fact's text, the speaker first (the
  subject of its first-person relations: `Caroline: I moved to Sweden`);
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

from domain.entities import MAX_ENTITIES, extract, extract_with_topics
from domain.events import ChatMessage, Entity
from domain.importance import initial_importance
from domain.intelligence import Fact
from domain.speaker import split_speaker

__all__ = ["CATEGORIES", "NEGATION", "STOP_WORDS", "OfflineExtractor", "categorize", "content_words", "extract_facts",
           "normalise", "split_sentences", "split_speaker", "stem", "words_of"]

CATEGORIES = ("preference", "decision", "instruction", "plan", "event", "personal", "technical")
MERGE_MAX_WORDS = 8  # a dependent sentence longer than this stands on its own
MERGED_MAX_WORDS = 60
SHORT_WORDS = 6  # a sentence under this many words must name something or carry a category and content
FACT_SENTENCES = 3  # a message with more kept sentences than FACT_MAX_SENTENCES splits into facts of about this many
FACT_MAX_SENTENCES = 5
SUPPORT_MAX_WORDS = 10  # small talk ("I agree", "Let me know") longer than this says more: it is kept
REACTION_MAX_SUBSTANCE = 3  # a reaction with this many words of substance says something (praise: one more)

# Dots that never end a sentence, end it only before a capital, or only when no number follows.
_ABBREVIATIONS = frozenset("e.g eg i.e ie vs cf approx ca dr mr mrs ms prof st jr sr mt resp incl excl".split())
_ABBREVIATIONS_BEFORE_LOWER = frozenset("etc inc ltd corp co a.m p.m u.s u.k".split())
_ABBREVIATIONS_BEFORE_NUMBER = frozenset("no nr fig vol pp p".split())
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+")
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d+")
_FILLER_WORDS = frozenset("""
    hi hey hello hiya yo howdy greetings thanks thank thx ty you so much a lot very really ok okay k kk alright
    fine sure yes yeah yep yup ya no nope nah cool great nice awesome amazing wow oh ah aw aww ooh hmm um uh
    bye goodbye see later soon good morning afternoon evening night day sounds to me that that's thats it it's
    is was too totally definitely right exactly indeed got it gotcha perfect np welcome you're anytime cheers
    well glad hear sorry congrats congratulations wonderful fantastic true agreed same here noted understood
    makes sense omg yay woohoo lovely sweet neat absolutely certainly course doubt doubts mm mmm yum yummy
    """.split())
_LAUGH = re.compile(r"^(?:(?:ha|he|hi)+h?|lo+l|lmf?ao|rofl|xd)$", re.I)
_INTERJECTION = re.compile(
    r"^(?:(?:hi|hey|hello|hiya|yo|good (?:morning|afternoon|evening)|oh|wow|so|well|haha+|hehe|lol|ok(?:ay)?"
    r"|yeah|yes|yep|yup|yay|sure|cool|great|nice|awesome|congrats|congratulations|sorry|ooh|ah|absolutely|totally"
    r"|exactly|hmm+|um+|mm+|yum+|thanks|thank you(?: so much)?|aw+)"
    r"(?:[ \t]+(?-i:[A-Z])[\w'’-]*){0,2}[ \t]*[,!]+[ \t]*)+", re.I)  # then up to two names: "Hey Mel, "
_DEPENDENT = re.compile(r"^(?:it|that|this|these|those|they|he|she|there|its|his|her|their)\b", re.I)
_REACTION = re.compile(
    r"^(?:that(?:'s|’s| is| was| sounds| looks| must| seems)|this (?:is|sounds|looks)|it (?:sounds|looks|must|seems)"
    r"|sounds|looks|seems|you|your|what an?|sorry to hear|can'?t wait|keep (?:up|on|going|pushing|it up)"
    r"|must (?:be|have been|feel)|congrat\w*|hope (?:your|you|it|that|they)"
    r"|(?:it|that)(?:'s|’s| is) (?:so |really |such )?(?:great|awesome|amazing|cool|nice|wonderful) (?:that|to)"
    r"|it(?:'s|’s| has) been (?:great|nice|fun|lovely|good|awesome|a pleasure)|how "
    r"(?:cool|nice|great|awesome|amazing|fun|wonderful|lovely|exciting|sweet)|so (?:happy|glad|proud|cool)|glad|"
    r"good (?:luck|job|for you)|keep it up|well done)\b", re.I)
_EVALUATIVE = re.compile(  # praise, encouragement: "Animals are truly amazing.", "Cherish those memories!"
    r"\b(?:amazing|awesome|great|cool|nice|fun|wonderful|beautiful|cute|incredible|lovely|fantastic|inspiring|"
    r"powerful|tough|important|key|essential|special|graceful|adorable|vibrant|stunning|gorgeous|peaceful|motivating|"
    r"exciting|impressive|brave|proud|strong|rewarding|worth it)\b|^(?:cherish|stay|enjoy|spill|hang in|believe|"
    r"remember|take (?:care|lots|it easy)|have (?:fun|a (?:great|good|blast|nice))|go for it|show (?:the world|them|"
    r"everyone)|don'?t (?:rush|worry|stop|let))\b", re.I)
_NAME = r"(?P<name>(?-i:[A-Z])[a-z][\w'’-]*(?:[ \t]+(?-i:[A-Z])[a-z][\w'’-]*)?)"
_LEADING_VOCATIVE = re.compile(rf"^{_NAME}[ \t]*,[ \t]*")
_INNER_VOCATIVE = re.compile(rf",[ \t]*{_NAME}[ \t]*,[ \t]*")
_TRAILING_VOCATIVE = re.compile(rf",[ \t]*{_NAME}[ \t]*(?P<end>[.!?…]*[\"'”’)\]]*)$")
_CAPTION = re.compile(r"\[image:[^\]]*\]", re.I)
_THANKS = re.compile(
    r"^(?:thanks|thank you|thx|ty)(?: (?:so|very) much| a lot| a bunch| a ton| again)?(?:,?[ \t]+(?-i:[A-Z])[\w'’-]*)"
    r"{0,2}[ \t]*,?[ \t]*(?:for|to)\b[^,;:–—]*(?:[,;:–—][ \t]*|$)", re.I)
_QUESTION_WORDS = (r"(?:how|what|what's|who|where|when|why|which|do|does|did|are|is|was|were|can|could|would|will|"
                   r"have|has|should|shall|wanna|want|any|ever|right|you know|isn'?t it|don'?t you think|ain'?t it|"
                   r"no|yeah|eh|huh|correct|ok(?:ay)?)\b")
_TRAILING_QUESTION = re.compile(rf"(?:,|[ \t][-–—])[ \t]*(?:(?:but|and|so|or)[ \t]+)?{_QUESTION_WORDS}[^,]*\?+"
                                r"[\"'”’)\]]*$", re.I)
_QUESTION_START = re.compile(rf"^{_QUESTION_WORDS}", re.I)
_PROPOSAL = re.compile(
    r"^(?:how about|what about|why not|why don'?t (?:we|you)|shall we|should we|(?:do you |would you )?"
    r"(?:want|like) to|wanna|maybe (?:we|you) (?:could|should)|(?:have|did) you (?:ever )?(?:read|seen|see|tried|try|"
    r"watched|watch|heard (?:of|about)|hear (?:of|about)|been to|played|visited|listened to|checked out))\b", re.I)
_SUPPORT = re.compile(  # first-person small talk: support, agreement, appreciation
    r"^(?:i(?:'m|’m| am) (?:so |really |very |just |truly )*(?:happy|glad|proud|thrilled|excited|sorry|here) "
    r"(?:for you|of you|to hear|you|that you|about that|for that)|i (?:\d+% |totally |completely |fully |really |"
    r"so |couldn'?t |can'?t )*(?:agree|appreciate|understand|hear you|feel you|can imagine|bet|get it|see what you)"
    r"|(?:we|you)(?:'ve| have)? got this|i(?:'m|’m| am) sure (?:you|it|that|they)|i hope (?:you|it|that|so|they)"
    r"|i(?:'ll|’ll| will) (?:definitely |totally |surely |for sure )?(?:check (?:it|them|that|those) out|keep you "
    r"posted|let you know|keep (?:it|that) in mind)|(?:always |so )?(?:great|nice|good|fun|lovely) (?:chatting|talking"
    r"|catching up)|(?:[\w'’-]+ ){1,3}(?:looks?|sounds?|seems?) (?:so |really |super |very |truly |absolutely )*"
    r"(?:amazing|awesome|great|cool|nice|fun|good|lovely|beautiful|happy|delicious|tough|hard|incredible|wonderful|"
    r"fantastic|interesting|exciting|stunning|gorgeous|cute|peaceful|relaxing)[!.]*$"
    r"|don'?t (?:give up|quit|stop|let (?:anything|anyone|it|that|them) (?:stop|get))|i(?:'ll|’ll| will) do my best"
    r"|(?:i(?:'m|’m| am) )?(?:gonna|going to) give it a (?:try|shot|go)|i(?:'ll|’ll| will)[.!]*$"
    r"|(?:i(?:'m|’m| am) )?always (?:here|around|there) (?:for you|to help)|any ?time you need"
    r"|(?:don'?t hesitate|feel free) to (?:reach out|ask)|i(?:'ll|’ll| will) reach out|let me know\b|long time no"
    r"|me too|i know,? right"
    r"|have an? (?:safe|great|good|nice|fun|wonderful|amazing) (?:trip|time|day|weekend|night|one)"
    r"|we(?:'re|’re| are) in this together|catch up time|gotta try|(?:they|you)(?:'re|’re| are) lucky to have"
    r"|no doubts?|of course|for sure|take care|talk soon|see you)(?:\b|$)", re.I)
_SMALL_TALK = frozenset("""
    got get gets getting this agree doubt doubts know mean think guess bet hope sure happy proud excited appreciate
    care feel imagine see hear time long talk chat miss wait luck fun thing things stuff way lot kind means
    absolutely certainly course totally glad sounds sound awesome amazing great cool nice wonderful incredible
    beautiful tell let go going keep deal point yeah yes hey wow thanks thank love like want need look looks looking
    seem seems best stay cherish congrats congratulations they're you're we're he's she's let's you'll they'll
    """.split())
_NUMBER_WORD = re.compile(r"\d+(?!\d*%)|\d+%(?<!\b100%)")
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


def _is_filler(sentence: str, names: frozenset[str] = frozenset()) -> bool:
    words = _WORD.findall(sentence)
    if not words:
        return True  # emoji or punctuation only
    filler = [w for w in words if w.lower().replace("’", "'") in _FILLER_WORDS or _LAUGH.match(w)]
    rest = [w for w in words if w not in filler]
    # Leftover Title-case words that are addressees: "Thanks, Melanie!", "No doubts, Caroline."
    addressees = [w for w in rest if _is_addressee(w, names)]
    return bool(filler) and (not rest or (len(addressees) == len(rest))
                             or (len(rest) == 1 and rest[0][0].isupper() and len(words) > 1))


def _is_addressee(name: str, names: frozenset[str]) -> bool:
    """Whether `name` is one of the conversation's speakers, or the start of one (`Mel` for Melanie)."""
    low = name.lower()
    return bool(low) and name[0].isupper() and any(n == low or (len(low) >= 3 and n.startswith(low)) for n in names)


def _strip_vocatives(sentence: str, names: frozenset[str]) -> str:
    """The sentence without the names it addresses: `I agree, Mel.` -> `I agree.`."""
    def vocative(m: re.Match[str]) -> bool:
        return all(_is_addressee(w, names) for w in m.group("name").split())

    while (lead := _LEADING_VOCATIVE.match(sentence)) and vocative(lead):
        sentence = sentence[lead.end():]
    sentence = _INNER_VOCATIVE.sub(lambda m: ", " if vocative(m) else m.group(), sentence)
    sentence = _TRAILING_VOCATIVE.sub(lambda m: m.group("end") if vocative(m) else m.group(), sentence)
    return sentence[:1].upper() + sentence[1:]


def _real_entities(sentence: str, names: frozenset[str]) -> list[Entity]:
    """The entities of a sentence that name something: no speaker, no addressee, no `100%`."""
    entities, _ = extract(sentence)
    return [e for e in entities if e.name != "100%" and not all(_is_addressee(w, names) for w in e.name.split())]


def _substance(sentence: str) -> set[str]:
    """The words of a sentence that say something: no stop, filler or small-talk word."""
    return {w for w in words_of(sentence)
            if w not in STOP_WORDS and w not in _FILLER_WORDS and stem(w) not in _SMALL_TALK and w not in _SMALL_TALK}


def extract_facts(messages: Sequence[ChatMessage], roles: Sequence[str] = ("user",)) -> list[Fact]:
    """The facts worth remembering in a conversation (see the module docstring)."""
    wanted = {r.lower() for r in roles}
    kept_messages = [(i, m) for i, m in enumerate(messages) if m.role.lower() in wanted and m.content]
    split = [(i, *split_speaker(m.content)) for i, m in kept_messages]
    names = frozenset(w.lower() for _, speaker, _ in split for w in speaker.split())
    drafts: list[tuple[str, str, list[int]]] = []  # (speaker, body, message indexes)
    seen: dict[str, int] = {}
    for index, speaker, content in split:
        for body in _message_facts(content, names):
            key = normalise(f"{speaker}: {body}" if speaker else body)
            if key in seen:  # the same fact said again: one fact, every message it came from
                indexes = drafts[seen[key]][2]
                if index not in indexes:
                    indexes.append(index)
                continue
            seen[key] = len(drafts)
            drafts.append((speaker, body, [index]))
    return [_fact(speaker, body, tuple(indexes)) for speaker, body, indexes in drafts]


def _message_facts(content: str, names: frozenset[str]) -> list[str]:
    """The facts of one message: its kept sentences joined, in order, with its image captions."""
    captions = [" ".join(m.group().split()) for m in _CAPTION.finditer(content)]
    kept = _statements(_CAPTION.sub(" ", content), names)
    if not kept:
        return []  # a caption alone is no fact
    parts = -(-len(kept) // FACT_SENTENCES) if len(kept) > FACT_MAX_SENTENCES else 1
    size, extra = divmod(len(kept), parts)
    facts, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        facts.append(" ".join(kept[start:end]))
        start = end
    if captions:
        facts[-1] = " ".join([facts[-1], *captions])
    return facts


def _question_kept(sentence: str, names: frozenset[str]) -> str | None:
    """What a question keeps (rule 3): its statement before a trailing question, or a proposal."""
    trailing = _TRAILING_QUESTION.search(sentence)
    if trailing and trailing.start() > 0 and not _QUESTION_START.match(sentence):
        head = sentence[:trailing.start()].rstrip(" ,;:-–—")
        if _WORD.search(head):
            return head + "."
    proposal = _PROPOSAL.match(sentence)
    if proposal and (_real_entities(sentence, names) or len(_substance(sentence[proposal.end():])) >= 2):
        return sentence
    return None


def _statements(content: str, names: frozenset[str] = frozenset()) -> list[str]:
    """The kept sentences of one message, dependent ones merged (rules 1-6)."""
    kept: list[str] = []
    previous_kept = False  # was the sentence right before this one kept (or merged)?
    for sentence in split_sentences(content):
        thanks = _THANKS.match(sentence)
        if thanks:
            sentence = sentence[thanks.end():]
        cut = _INTERJECTION.sub("", sentence)
        cut = _strip_vocatives(cut, names)
        if cut != sentence:
            sentence = cut[:1].upper() + cut[1:]
        if not sentence or _is_filler(sentence, names):
            previous_kept = False
            continue
        if sentence.rstrip("\"'”’)]").endswith("?"):
            asked = _question_kept(sentence, names)
            if asked is None:
                previous_kept = False
                continue
            sentence = asked
        words = len(_WORD.findall(sentence))
        if (previous_kept and _DEPENDENT.match(sentence) and words <= MERGE_MAX_WORDS
                and len(_WORD.findall(kept[-1])) + words <= MERGED_MAX_WORDS):
            kept[-1] = f"{kept[-1]} {sentence}"
            continue
        named = bool(_real_entities(sentence, names)) or bool(_NUMBER_WORD.search(sentence))
        substance = _substance(sentence)
        reaction = not _FIRST_PERSON.search(sentence) and (
            (_REACTION.match(sentence) and len(substance) < REACTION_MAX_SUBSTANCE)
            or (_EVALUATIVE.search(sentence) and len(substance) <= REACTION_MAX_SUBSTANCE)) or (
            _SUPPORT.match(sentence) and words <= SUPPORT_MAX_WORDS)
        if (not named and reaction) or (
                words < SHORT_WORDS and not named
                and not (substance and (categorize(sentence) or len(substance) >= 2))):
            previous_kept = False
            continue
        kept.append(sentence)
        previous_kept = True
    return kept


def _fact(speaker: str, body: str, indexes: tuple[int, ...]) -> Fact:
    text = f"{speaker}: {body}" if speaker else body
    entities, relations = extract_with_topics(text)  # with the speaker: "I moved to Sweden" relates them
    if speaker and all(e.name.lower() != speaker.lower() for e in entities):
        entities = (Entity(name=speaker, type="person"), *entities)[:MAX_ENTITIES]
    return Fact(text=text, message_indexes=indexes, entities=entities,
                relations=relations, importance=initial_importance(body), categories=categorize(body, entities))


class OfflineExtractor:
    """The FactExtractor port without an LLM: `extract_facts` of the conversation."""
    name = "offline"

    def __init__(self, roles: Sequence[str] = ("user",)):
        self.roles = tuple(roles)

    async def extract(self, messages: Sequence[ChatMessage]) -> list[Fact]:
        return extract_facts(messages, self.roles)
