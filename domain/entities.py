"""A deterministic offline entity and relation extractor, so the graph is useful without an LLM.

`extract(text)` is pure (standard library `re` only, no I/O, no randomness, no set
iteration in the output): the same text always gives the same entities in the same
order, so replaying the log rebuilds the same graph.

Entities
--------
Passes run in this order over the text; a match that overlaps a span an earlier pass
(or an earlier pattern of the same pass) already claimed is dropped:

0. speaker: the name before the colon of a `Name: text` line (domain/speaker.py) is a
   person, and the subject of the line's first-person relations.
1. url: `http(s)://`, `ftp://`, `ssh://`, `git://`, `www.` addresses (trailing
   punctuation and unbalanced closing brackets stripped).
2. email: `local@domain.tld`.
3. file_path: absolute Unix paths (`/etc/x.conf`, `~/.bashrc`, `./run.sh`), Windows
   paths (`C:\\x\\y`), relative paths with two or more slashes or ending in a known file
   extension (`src/app/main.py`, `docs/adr/`), bare file names with a known extension
   (`main.py`, `README.md`; the stem needs 2+ characters, and a capitalised word + `.js`
   such as `Node.js` is a product, not a file), well-known dotfiles and `Dockerfile`-like
   names. `and/or`, `km/h`, `24/7` are not paths.
4. date: ISO dates and date-times, `08/05/2023`, `8 May 2023`, `8th of May`,
   `May 8, 2023`, `May 2023`, a month alone after a preposition (`in June`), a year after
   a preposition (`since 2019`), weekday names (`Monday`, `last Friday`), times
   (`5pm`, `14:30`), and relative expressions kept as written (`yesterday`, `last week`,
   `3 years ago`, `the day before yesterday`).
5. quantity: a number (or range `3-5`) with a unit (`14pt`, `3 years`, `512 MB`,
   `2.5 GHz`, `3 cores`, `10k tokens` ...), number words with time units
   (`two weeks`), currency (`$20`, `€1.5m`, `20 USD`) and percentages (`20%`).
6. code_identifier: anything in backticks, calls (`Foo.bar()`, `print(x)`, normalised to
   `name()`), dotted names starting lowercase (`os.path.join`, `self.pool`; a dotted
   name ending in a common TLD such as `example.com` is a url instead),
   CONSTANT_NAMES (with an underscore), snake_case (with an underscore) and camelCase
   (2+ lowercase letters, then humps: `getUserName`; so `iPhone` is not code).
6b. title: a quoted Title-Case name (`"Charlotte's Web"`, `'Embracing Identity'`, 1 to 8
   words, each capitalised but small words such as `of`, `the`): a work, not a person.
   Quoted speech (`"Thanks for coming!"`) has lowercase words and is left alone.
7. organization / product / place, triggered by the words before a capitalised name
   (a name is capitalised tokens such as `Acme Corp`, `FastAPI`, `Node.js`, `C++`,
   `AT&T`, joined by `of`/`&`/`de`/`van`/`von`, plus an optional version `Python 3.11`,
   dropped again when another pass claimed it: `from Sweden 4 years ago`):
   - after `at`, `joined`/`joining`, or `for` right after a work word
     (`works for`, `employed for`...): organization;
   - after `use(s|d)`, `using`, `via`, `on`, `like(s|d)`, `love(s|d)`, `prefer(s|red)`,
     `enjoy(s|ed)`, `switched to`, `relies on`: product, and so are the next names of a
     list (`uses FastAPI, Postgres and Node.js`) until one is followed by a person verb
     (`uses Vim and Bob said`);
   - after `with`: product, unless the name looks like a person (only Title-case words,
     no version), then it is left to the person pass (`met with Ana` vs `built with FastAPI`);
   - after `live(s|d)/based/born/located in`, `moved/relocated to|from`,
     `was/were/stayed/went/flew/travelled in|to`, `trip/vacation/holiday in|to`,
     `visit(ed)`, `is/am/are/comes/came/'m from`, `(home) country/city/town/hometown/village
     (of|,)`: place.
   It is a heuristic: `Ana loves Bob` types Bob as a product unless Bob was already seen
   as a person earlier in the same text (the first mention decides the type), and a city
   after a plain `in` (`met in Redmond`) is taken for a person.
8. person: runs of Title-case words (`Ana`, `Ana Lopes`, `O'Brien`, `Jean-Luc`,
   `McDonald`). Stop words (pronouns, articles, conjunctions, prepositions, common
   sentence starters, `User`, `Assistant`, weekday and month names and their abbreviations,
   titles like `Dr`, interjections and greetings such as `Wow`, `Congrats`, `Bye`, `Sure`) and
   words an earlier pass claimed are dropped and split a run. At the start of a sentence
   (start of text, after `.!?:;`, a newline or a list bullet) the first word is dropped
   when it is a stop word or ends in -ing/-ed/-ly; a single remaining word there counts
   only when it is followed by a verb from a short list (`works`, `lives`, `likes`,
   `said`, ...), by `is/was my <tie>` (`Oliver is my friend`) or by a possessive `'s`
   (`Alice's sister`; not `Life's too short`, `Art's awesome`: `'s` before a function word,
   an adverb or an adjective is "is"), so `Coffee is great.` gives nothing while `Alice
   likes jazz.` gives Alice. A run right after a capitalised non-name token or right before a number
   or an all-caps token is part of a product name (`VS Code`, `Windows 11`) and skipped.
   Mixed-case words (`GitHub`) and all-caps words are never persons.

Normalisation: whitespace collapsed, surrounding quotes and brackets and trailing
`.,;:!?` stripped (urls are trimmed of trailing punctuation and unbalanced closing
brackets only); entities are deduplicated case-insensitively by name keeping the first
spelling and type (in text order), and capped at MAX_ENTITIES (32), in order of first
appearance.

Relations
---------
Only between two entity mentions that follow each other in the text, when the words
between them are exactly one of these patterns (case-insensitive, optional adverbs such
as `also`, `still`, `now`, `currently`, `really` before the verb, optional `the` after):

    between `X` and `Y`                                           relation          X must be
    works|worked|working|is working|is employed  at|for|by          (X, works_at, Y)  person
    lives|lived|living|resides|is based in, moved|relocated to      (X, lives_in, Y)  person
    uses|used|use|is using|using|relies on|switched to              (X, uses, Y)      not a date,
                                                                                      quantity or email
    likes|liked|loves|loved|enjoys|enjoyed|is a fan of|is into      (X, likes, Y)     person
    prefers|preferred|prefer                                        (X, prefers, Y)   person
    is|am|comes|came|moved (originally) from                        (X, from, Y)      person
    (has|just) adopted [a dog named]                                (X, adopted, Y)   person

works_at, lives_in and uses never point at a date or a quantity. A list continues a
relation: in `Ana uses Python, Rust and Go` the mentions of the same type as the previous
target, joined to it by `,`, `and`, `or`, get the same relation from the same source.
A second verb after `and`/`but`/`then` keeps the first one's subject (`Ana works at Acme
and lives in Lisbon`). In a `Name: text` line, `I`/`we` (`I'm`, `I've`) before a pattern is
the speaker (`Caroline: I moved to Sweden` gives (Caroline, lives_in, Sweden)).

Ties: `my <tie> Y`, `my little <tie>, named Y`, `Y is my <tie>`, `Y, my <tie>` (the speaker's)
and `X's <tie> Y` give (owner, tie, Y) for a person Y (or a product or other name: pets), the
tie's word as the type, singular and plain (`mom` -> `mother`, `kids` -> `child`, `puppy` ->
`dog`): friend, sister, brother, sibling, mother, father, parent, husband, wife, partner,
spouse, son, daughter, child, boss, manager, colleague, coworker, cousin, aunt, uncle,
grandmother, grandfather, niece, nephew, girlfriend, boyfriend, fiance, roommate, neighbor,
mentor, teacher, dog, cat, pet. A list goes on: `my kids Max and Lily`.
Anything else gives no relation. Relations name entities by their kept spelling, are
deduplicated, keep text order, and only link entities that survived the cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.events import Entity, Relation
from domain.place_names import is_place_name
from domain.speaker import speaker_span
from domain.topics import first_person_topics

MAX_ENTITIES = 32

__all__ = ["MAX_ENTITIES", "extract"]


# --- vocabulary ----------------------------------------------------------------------

_MONTHS_FULL = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTHS = _MONTHS_FULL + "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec"
_WEEKDAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"

_STOP_WORDS = frozenset("""
a an the this that these those some any each every all no not none both either neither
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
and but or nor so yet if then than when while whereas where what who whom whose which why how
also after before since until till because although though unless whether however therefore
at in on with from to of by about as into onto over under between through during without within
for per via against among around near across
is are was were be been being am do does did done has have had having
can could will would shall should must may might let lets
yes yeah ok okay please thanks thank hi hello hey dear sorry
today tomorrow yesterday tonight now later soon always never often sometimes usually again still just only
here there very really much many more most less least other another such same
remember note notes todo fyi reminder summary update important tip warning question answer
use using used make set add keep prefer call see check run try ask tell get put write read
user users assistant agent system bot human customer client everyone someone somebody nobody
mr mrs ms miss dr prof sir madam
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri
january february march april may june july august september october november december
""".split()) | frozenset("""
wow woah whoa sure bet congrats congratulations bye goodbye woohoo yay yup yep nope oh ooh ah aw aww
awesome cool great nice well haha hahaha lol omg wait hmm gosh cheers welcome glad agreed absolutely
totally definitely exactly anyway besides btw right true alright wonderful amazing fantastic love lovely
good sweet ugh oops phew hooray name anytime even hang i'm i'd i've i'll
""".split())  # interjections, greetings and reactions that open a chat line: "Wow Mel", "Bye Caroline"

# Words that open a cheer at the start of a sentence ("Go Jon!") but are names or products elsewhere.
_OPENERS = frozenset({"go"})
# After a sentence-initial `X's`, words that make it "X is/has" rather than a possessive:
# "Life's too short", "Art's awesome", "Guitar's mostly my thing".
_AFTER_IS = frozenset("""
a an the all about so too such not never always just really very quite pretty mostly my your our his her
their its been got gotten going done over like more most still also here there great good nice cool fun
hard tough easy amazing awesome important beautiful wonderful short long special full better best
""".split())
_ADJECTIVE_ENDINGS = ("ly", "ing", "ed", "ful", "ous", "ive", "able", "ible", "ic", "al")

_PERSON_VERBS = frozenset("""
works worked lives lived likes liked loves loved prefers preferred uses used said says
told asked wants wanted needs needed thinks thought knows knew met joined moved wrote
called emailed mentioned suggested recommended decided prefers enjoys enjoyed hates hated
owns owned manages managed leads led runs ran teaches taught studies studied will would
""".split())

_FILE_EXT = (
    "py|pyi|pyx|js|mjs|cjs|ts|tsx|jsx|json|jsonl|yaml|yml|toml|ini|cfg|conf|env|md|rst|txt|"
    "csv|tsv|sql|sh|bash|zsh|fish|ps1|bat|rs|go|java|kt|kts|scala|c|h|cc|cpp|hpp|cs|rb|php|"
    "swift|html|htm|css|scss|sass|less|xml|lock|log|ipynb|proto|graphql|tf|tfvars|gradle|pdf|"
    "png|jpg|jpeg|gif|svg|webp|zip|gz|tgz|tar|whl|vue|svelte|dart|lua|jl|ex|exs|erl|hs|clj|"
    "pem|crt|service|plist|sqlite|db|parquet|avsc|avro|dockerfile|mk|cmake|xlsx|docx|pptx"
)
_TLDS = frozenset("com org net io dev ai app co edu gov me info biz xyz uk de fr nl es pt br ca au jp eu us tech cloud".split())

_NUMBER_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
                 "forty|fifty|sixty|a hundred|hundred|a few|few|several|a couple of|couple of")
_UNITS = (
    # time
    "ms|milliseconds?|secs?|seconds?|s|mins?|minutes?|hrs?|hours?|h|days?|weeks?|wks?|months?|"
    "years?|yrs?|decades?|"
    # data, network
    "bytes?|bits?|kb|mb|gb|tb|pb|kib|mib|gib|tib|kbps|mbps|gbps|b|"
    # screen, frequency
    "pt|px|em|rem|dpi|ppi|fps|hz|khz|mhz|ghz|"
    # length, weight, volume, temperature, speed, power
    "mm|cm|km|m|inch(?:es)?|ft|feet|foot|miles?|mi|kg|mg|g|lbs?|oz|ml|l|liters?|litres?|gallons?|"
    "cups?|tbsp|tsp|°c|°f|degrees?|km/h|kph|mph|kwh|kw|w|v|mah|kcal|calories|"
    # counts that are quantities in practice
    "cores?|vcpus?|cpus?|gpus?|threads?|nodes?|replicas?|instances?|workers?|tokens?|requests?|"
    "req/s|rps|qps|users?|people|persons?|times|steps?|pages?|words?|lines?|items?|files?|"
    "commits?|tests?|reps?|sets?|stars?|points?|k|million|billion|thousand"
)
_TIME_UNITS = "seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|times|people"


# --- patterns --------------------------------------------------------------------------

def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_URL = [
    _c(r"\b(?:https?|ftp|ssh|git)://[^\s<>\"'`]+"),
    _c(r"(?<![\w.@/])www\.[^\s<>\"'`]+"),
]
_EMAIL = [_c(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")]
_FILE = [
    _c(r"(?<![\w])[A-Za-z]:\\[^\s\"'<>|:*?]*"),  # C:\x\y
    _c(r"(?<![\w/:.~-])(?:~|\.{1,2})?/[\w.@+~-]+(?:/[\w.@+~-]+)*/?"),  # /etc/x.conf, ~/.bashrc, ./a
    _c(r"(?<![\w/.~-])[\w.-]+(?:/[\w.@+-]+)+/?"),  # src/app/main.py (filtered below)
    _c(rf"(?<![\w./\\-])[\w-]+(?:\.[\w-]+)*\.(?:{_FILE_EXT})(?![\w/\\-])", re.IGNORECASE),  # main.py
    _c(r"(?<![\w./])\.(?:env|bashrc|zshrc|profile|bash_profile|gitignore|dockerignore|editorconfig|npmrc"
       r"|vimrc|gitconfig|pypirc|netrc)(?:\.[\w-]+)?(?![\w/])"),
    _c(r"\b(?:Dockerfile|Makefile|Procfile|Gemfile|Jenkinsfile|Vagrantfile|Justfile|Containerfile)\b"),
]
_DAY = r"\d{1,2}(?:st|nd|rd|th)?(?!\d)"
_DATE_PREPS = r"(?i:in|on|since|until|till|by|from|during|before|after|last|next|this|early|late|mid|of|around|circa)"
_DATE = [
    _c(r"(?<![\w/.-])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w/-])"),
    _c(r"(?<![\w/.-])\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})(?![\w/])"),
    _c(rf"\b{_DAY}\s+(?:of\s+)?(?:{_MONTHS})\b(?:,?\s+\d{{4}}\b)?"),
    _c(rf"\b(?:{_MONTHS})\s+{_DAY}\b(?:,?\s+\d{{4}}\b)?"),
    _c(rf"\b(?:{_MONTHS})\s+\d{{4}}\b"),
    _c(rf"\b(?:(?i:last|next|this|every)\s+)?(?:{_WEEKDAYS})s?\b"),
    _c(r"\b(?i:last|next|this|every|on)\s+(?:Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\b\.?"),
    _c(r"\b(?:the\s+day\s+before\s+yesterday|the\s+day\s+after\s+tomorrow|today|tonight|tomorrow|yesterday"
       r"|(?:last|next|this|past|coming)\s+(?:week|weekend|month|year|night|morning|afternoon|evening|summer"
       r"|winter|spring|autumn|fall|quarter|decade)"
       rf"|(?:\d+|a|an|{_NUMBER_WORDS})\s+(?:days?|weeks?|months?|years?|decades?)\s+ago)\b", re.IGNORECASE),
    _c(rf"\b{_DATE_PREPS}\s+((?:{_MONTHS_FULL}))\b"),
    _c(rf"\b{_DATE_PREPS}\s+((?:1[89]|20)\d{{2}})\b"),
    _c(r"\b\d{1,2}(?::[0-5]\d)?\s?(?i:am|pm|a\.m\.|p\.m\.)(?!\w)"),
    _c(r"(?<![\w:.])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?![\w:])"),
]
_NUM = r"\d+(?:[.,]\d+)*"
_QUANTITY = [
    _c(rf"(?<![\w$€£¥])[$€£¥]\s?{_NUM}(?:\s?(?i:k|m|bn|million|billion|thousand)\b)?"),
    _c(rf"(?<![\w.])-?{_NUM}\s?(?:USD|EUR|GBP|CHF|JPY|(?i:dollars?|euros?|pounds?|cents?))\b"),
    _c(rf"(?<![\w.])-?{_NUM}\s?(?:%|(?i:percent|per\s+cent)\b)"),
    _c(rf"(?<![\w./-])-?{_NUM}(?:\s?(?:-|–|to)\s?{_NUM})?[kK]?(?:\s?|-)(?i:{_UNITS})(?![\w%/])"),
    _c(rf"\b(?i:{_NUMBER_WORDS})\s+(?i:{_TIME_UNITS})\b"),
]
_CODE = [
    _c(r"`([^`\s][^`\n]{0,78}[^`\s]|[^`\s])`"),
    _c(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\([^()\n]{0,60}\)"),
    _c(r"(?<![\w./\\@-])[a-z_][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?![\w(@/\\-])"),
    _c(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b"),
    _c(r"(?<![\w.-])_*[a-z][a-z0-9]*(?:_+[a-z0-9]+)+_*(?![\w-])"),
    _c(r"(?<![\w.-])[a-z][a-z0-9]+(?:[A-Z][a-z0-9]*)+(?![\w-])"),
]
_NAME_TOKEN = r"[A-Z][A-Za-z0-9]*(?:[.&'+-][A-Za-z0-9]+)*(?:\+\+|#)?"
_NAME = (rf"{_NAME_TOKEN}(?:[ \t]+(?:(?:of|de|du|der|van|von|&)[ \t]+)?{_NAME_TOKEN})*"
         r"(?:[ \t]+v?\d+(?:\.\d+)*(?!\w|\.\d))?")
_ARTICLE = r"(?:(?i:the|a|an)\s+)?"
_WORK_WORDS = r"(?:work|works|worked|working|employed|intern|interns|interned|interning|consult|consults|consulted|consulting)"
_TRIGGERED = [
    ("place", _c(r"\b(?i:(?:lives|lived|live|living|resides|resided|reside|residing|based|born|located)\s+in"
                 r"|(?:was|were|stayed|staying|stays|went|going|flew|flying|travell?ed|travell?ing|trip|vacation"
                 r"|holiday|holidays)\s+(?:in|to)|visit|visits|visited|visiting"
                 r"|(?:moved|moving|relocated|relocating)\s+(?:to|from)|(?:is|am|are|comes|come|came|['’]m)\s+from"
                 r"|(?:home\s+)?(?:country|city|town|hometown|village)(?:\s+of|\s*,)"
                 r"|(?:town|city|village|state|region|area|part)\s+in|trips?\s+to)"
                 rf"\s+{_ARTICLE}({_NAME})")),
    ("organization", _c(rf"\b(?i:at|joined|joining|{_WORK_WORDS}\s+for)\s+{_ARTICLE}({_NAME})")),
    ("product", _c(r"\b(?i:uses|used|use|using|via|on|likes|liked|like|loves|loved|love|prefers|preferred|prefer"
                   r"|enjoys|enjoyed|enjoy|switched\s+to|relies\s+on|rely\s+on)"
                   rf"\s+{_ARTICLE}({_NAME})")),
    ("product?", _c(rf"\b(?i:with)\s+{_ARTICLE}({_NAME})")),
]
# A quoted Title-Case name is the title of a work ("Charlotte's Web", 'Embracing Identity'),
# not a person or a product: quoted speech ("Thanks for coming!") has lowercase words.
_TITLE = [
    _c(r"[\"“]([A-Z0-9][^\"“”\n]{0,60}?)[\"”]"),
    _c(r"(?<![\w'’])['‘]([A-Z0-9][^'‘’\n]{0,60}?)['’](?!\w)"),
]
_TITLE_SMALL_WORDS = frozenset("a an the of and or in on at to for with by from is my your de la le".split())
_LIST_NEXT = _c(rf"(?:[ \t]*,[ \t]*(?:(?i:and|or)[ \t]+)?|[ \t]+(?i:and|or)[ \t]+){_ARTICLE}({_NAME})")
_PERSON_WORD = r"(?:Mc|O'|D')?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_PERSON = _c(rf"(?<![\w.@/\\'’-]){_PERSON_WORD}(?:[ \t]+{_PERSON_WORD})*(?![\w@/\\-]|\.\w)")
_CAPITALISED_BEFORE = _c(r"(?:^|(?<=\s))([A-Z][\w+#.&-]*[\w+#&])[ \t]$")
_CAPITALISED_AFTER = _c(r"[ \t]+(?:\d|[A-Z][\w+#&-]*[A-Z0-9+#])")
_VERSION_SUFFIX = _c(r"[ \t]+v?\d+(?:\.\d+)*$")
_PERSON_WORD_ONLY = _c(_PERSON_WORD)
_PERSON_ONLY = _c(rf"{_PERSON_WORD}(?:[ \t]+{_PERSON_WORD})*")

# A capitalised name whose last word is one of these names a company or an institution, not a
# person ("Acme Corp is based in Lisbon" is no one living in Lisbon).
_ORGANIZATION_LAST_WORDS = frozenset(
    "Corp Corporation Inc Incorporated Ltd Limited Co Company Group Labs Systems Technologies Industries Holdings "
    "Partners Ventures Foundation Institute University College Bank Airlines Motors".split())


def _person_or_organization(name: str) -> str:
    """The type of a capitalised run no trigger typed: a well-known place (`Paris`), an
    organization (`Acme Corp`) or a person."""
    if is_place_name(name):
        return "place"
    return "organization" if name.split()[-1] in _ORGANIZATION_LAST_WORDS and " " in name else "person"


_ADVERBS = r"(?:(?:also|still|now|currently|really|usually|always|mostly|often|recently|actually|mainly|both)\s+)*"
_THE = r"\s+(?:the\s+)?"


def _after(verbs: str, tail: str = _THE) -> re.Pattern[str]:
    """The words between a subject and its object: optional adverbs, one of `verbs`, `tail`."""
    return _c(rf"\s+{_ADVERBS}(?:{verbs}){tail}", re.IGNORECASE)


_PERSON_SOURCE = frozenset({"person"})
_RELATIONS = [
    ("works_at", _PERSON_SOURCE, _after(
        r"works|worked|working|work|is\s+working|was\s+working|has\s+worked|is\s+employed|was\s+employed|employed",
        r"\s+(?:at|for|by)\s+(?:the\s+)?")),
    ("lives_in", _PERSON_SOURCE, _after(
        r"(?:lives|lived|live|living|is\s+living|resides|resided|is\s+based|based)\s+in"
        r"|(?:moved|relocated|has\s+moved)\s+to")),
    ("uses", frozenset({"person", "organization", "product", "code_identifier", "file_path", "place", "url"}), _after(
        r"uses|used|use|is\s+using|are\s+using|was\s+using|using|relies\s+on|switched\s+to")),
    ("likes", _PERSON_SOURCE, _after(
        r"likes|liked|like|loves|loved|love|enjoys|enjoyed|enjoy|is\s+a\s+fan\s+of|is\s+into")),
    ("prefers", _PERSON_SOURCE, _after(r"prefers|preferred|prefer")),
    ("from", _PERSON_SOURCE, _after(
        r"(?:(?:is|am|are|was|were|comes?|came|moved(?:\s+here)?|relocated)\s+)?(?:originally\s+)?from")),
    ("visited", _PERSON_SOURCE, _after(
        r"visited|visits|went\s+to|has\s+been\s+to|travell?ed\s+to|flew\s+to"
        r"|(?:(?:took\s+)?(?:a|my|our|\w+)\s+)?trips?\s+to")),
    ("adopted", _PERSON_SOURCE, _after(
        r"(?:(?:has|have|just)\s+)?adopted",
        r"\s+(?:(?:a|an|the|our|my|another)\s+(?:[\w-]+\s+){0,2}(?:named|called)\s+)?")),
]
# Kinship and other ties of a person to a named one: "my sister Anna", "Ana's boss, Bob",
# "Oliver is my friend", "my dog named Luna". The relation's type is the tie (`sister`).
_KIN = (r"best\s+friend|friends?|sisters?|brothers?|siblings?|mom|mum|mother|dad|father|parents?|husband|wife|"
        r"partner|spouse|sons?|daughters?|kids?|children|child|boss|manager|colleagues?|co-?workers?|cousins?|"
        r"aunt|uncle|grandma|grandmother|grandpa|grandfather|niece|nephew|girlfriend|boyfriend|gf|bf|fianc[ée]e?|"
        r"roommate|neighbou?r|mentor|teacher|dog|cat|puppy|kitten|pet")
_KIN_CANONICAL = {"mom": "mother", "mum": "mother", "dad": "father", "grandma": "grandmother", "grandpa": "grandfather",
                  "kid": "child", "kids": "child", "children": "child", "fiancee": "fiance", "fiancée": "fiance",
                  "fiancé": "fiance", "co-worker": "coworker", "neighbour": "neighbor", "puppy": "dog",
                  "kitten": "cat", "best friend": "friend", "gf": "girlfriend", "bf": "boyfriend"}
_NAMED = r"(?:(?:named|called)\s+)?"
_KIN_BEFORE = _c(rf"\b(?:my|our)\s+(?:[\w-]+\s+)?({_KIN})\s*,?\s+{_NAMED}$", re.IGNORECASE)
_KIN_NAMED = _c(rf"\b(?:a|an|another)\s+(?:[\w-]+\s+)?({_KIN})\s+(?:named|called)\s+$", re.IGNORECASE)
_KIN_POSSESSIVE = _c(rf"['’]s\s+(?:[\w-]+\s+)?({_KIN})\s*,?\s+{_NAMED}", re.IGNORECASE)
_KIN_AFTER = _c(rf"\s*(?:,\s*(?:who\s+is\s+)?|\s+(?:is|was)\s+)(?:my|our)\s+(?:[\w-]+\s+)?({_KIN})\b"
                r"(?!\s*,?\s+(?:named\s+|called\s+)?[A-Z])",  # "Wow Caroline, my sister Anna ...": Anna
                re.IGNORECASE)
_KIN_TARGETS = ("person", "product", "other")
# "I moved to ...", "we adopted ...": the speaker of a `Name: text` line is the subject.
_FIRST_PERSON = _c(r"\b(?:I|[Ww]e|[Mm]y|[Oo]ur)(?:['’](?:m|ve|d|re))?(?=\s)")
# "Ana works at Acme and lives in Lisbon": the second verb keeps the first one's subject.
_AND_THEN = _c(r"\s*,?\s*(?:and|but|then)(?=\s)", re.IGNORECASE)
_NEXT_VERB = _c(rf"\s+{_ADVERBS}([A-Za-z]+)", re.IGNORECASE)
_NO_TIME_TARGETS = ("works_at", "lives_in", "uses", "from", "adopted", "visited")
_ONLY_TARGETS = {"visited": ("place",)}  # "went to Woodhaven", not "went to Ana's"
_LIST_JOIN = _c(r"\s*,\s*(?:and\s+|or\s+)?(?:the\s+)?|\s+(?:and|or)\s+(?:the\s+)?", re.IGNORECASE)

_LEADING_JUNK = "\"'`([{<«“‘"
_TRAILING_JUNK = "\"'`)]}>»”’.,;:!?"


# --- extraction ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    name: str
    type: str


def extract(text: str) -> tuple[tuple[Entity, ...], tuple[Relation, ...]]:
    """Entities (in order of first appearance, deduplicated, at most 32) and the relations
    between them found by the fixed patterns of the module docstring."""
    if not text or not text.strip():
        return (), ()
    claimed = bytearray(len(text))  # 1 where an earlier pass took the character
    mentions: list[_Mention] = []

    def claim(start: int, end: int, name: str, type_: str) -> bool:
        name = _clean(name, type_)
        if not name or any(claimed[start:end]):
            return False
        claimed[start:end] = b"\x01" * (end - start)
        mentions.append(_Mention(start, end, name, type_))
        return True

    def claim_name(start: int, name: str, type_: str) -> bool:
        """A triggered name; its version is dropped when another pass claimed it ("Sweden 4 years ago")."""
        if claim(start, start + len(name), name, type_):
            return True
        unversioned = _VERSION_SUFFIX.sub("", name)
        return unversioned != name and claim(start, start + len(unversioned), unversioned, type_)

    if (span := speaker_span(text)) is not None:  # "Caroline: I moved to Sweden"
        claim(span[0], span[1], text[span[0]:span[1]], "person")
    for pattern in _URL:
        for m in pattern.finditer(text):
            url = _trim_url(m.group())
            claim(m.start(), m.start() + len(url), url, "url")
    for pattern in _EMAIL:
        for m in pattern.finditer(text):
            claim(m.start(), m.end(), m.group(), "email")
    for pattern in _FILE:
        for m in pattern.finditer(text):
            path = m.group().rstrip(".,;:!?)'\"")
            if _is_file_path(path, pattern is _FILE[2], pattern is _FILE[3]):
                claim(m.start(), m.start() + len(path), path, "file_path")
    for patterns, type_ in ((_DATE, "date"), (_QUANTITY, "quantity")):
        for pattern in patterns:
            for m in pattern.finditer(text):
                group = 1 if pattern.groups else 0
                claim(m.start(group), m.end(group), m.group(group), type_)
    for pattern in _CODE:
        for m in pattern.finditer(text):
            if pattern is _CODE[0]:
                claim(m.start(), m.end(), m.group(1), "code_identifier")
            elif pattern is _CODE[1]:
                claim(m.start(), m.end(), m.group()[: m.group().index("(")] + "()", "code_identifier")
            elif pattern is _CODE[2]:
                segments = m.group().split(".")
                if all(len(s) == 1 for s in segments):
                    continue  # e.g, i.e
                is_domain = segments[-1] in _TLDS and all(re.fullmatch(r"[a-z0-9-]+", s) for s in segments)
                claim(m.start(), m.end(), m.group(), "url" if is_domain else "code_identifier")
            elif m.group().lower() not in ("macos", "ios", "ipados", "watchos", "tvos"):
                claim(m.start(), m.end(), m.group(), "code_identifier")
    for pattern in _TITLE:
        for m in pattern.finditer(text):
            if _is_title(m.group(1)):
                claim(m.start(1), m.end(1), m.group(1), "title")
    for type_, pattern in _TRIGGERED:
        for m in pattern.finditer(text):
            start, name = _strip_stop_tokens(text, m.start(1), m.group(1))
            if not name:
                continue
            if type_ == "product?" and _PERSON_ONLY.fullmatch(name):
                continue  # "met with Ana": the person pass decides
            if name.endswith(("'s", "’s")):
                continue  # "likes Bob's cooking": Bob is not the object; the person pass decides
            claim_name(start, name, type_.rstrip("?"))
            if type_ == "product":  # "uses FastAPI, Postgres and Node.js"
                pos = m.end()
                while (item := _LIST_NEXT.match(text, pos)) and not _followed_by_person_verb(text, item.end()):
                    item_start, item_name = _strip_stop_tokens(text, item.start(1), item.group(1))
                    if item_name:  # "love DIYs, and I know": no "I"
                        claim_name(item_start, item_name, type_)
                    pos = item.end()
    for m in _PERSON.finditer(text):
        for start, name in _person_names(text, m.start(), m.group(), claimed):
            claim(start, start + len(name), name, _person_or_organization(name))

    mentions.sort(key=lambda x: (x.start, -x.end))
    entities: list[Entity] = []
    canonical: dict[str, Entity] = {}
    for mention in mentions:
        key = mention.name.casefold()
        if key not in canonical and len(entities) < MAX_ENTITIES:
            canonical[key] = Entity(mention.name, mention.type)
            entities.append(canonical[key])
    resolved = [(m, canonical[m.name.casefold()]) for m in mentions if m.name.casefold() in canonical]
    speaker = canonical.get(text[span[0]:span[1]].casefold()) if span is not None else None
    return tuple(entities), _relations(text, resolved, speaker)


def extract_with_topics(text: str) -> tuple[tuple[Entity, ...], tuple[Relation, ...]]:
    """`extract`, plus the `topic` entities of the speaker's first-person statements and their
    relations from the speaker (domain/topics.py): what a memory adds to the graph. Matching,
    reconciliation and queries use `extract` alone: a topic is no name."""
    entities, relations = extract(text)
    span = speaker_span(text)
    if span is None:
        return entities, relations
    speaker, body = text[span[0]:span[1]], span[2]
    names = {e.name.casefold(): e.name for e in entities}
    added_entities, added_relations = list(entities), list(relations)
    for topic in first_person_topics(text[body:]):
        if topic.name not in names:
            if len(added_entities) >= MAX_ENTITIES:
                continue
            names[topic.name] = topic.name
            added_entities.append(Entity(topic.name, "topic"))
        relation = Relation(speaker, topic.relation, names[topic.name])
        if relation not in added_relations:
            added_relations.append(relation)
    return tuple(added_entities), tuple(added_relations)


def _relations(text: str, resolved: list[tuple[_Mention, Entity]], speaker: Entity | None) -> tuple[Relation, ...]:
    relations: list[Relation] = []

    def add(source: Entity, type_: str, target: Entity) -> bool:
        if source == target or (target.type in ("date", "quantity") and type_ in _NO_TIME_TARGETS) or (
                type_ in _ONLY_TARGETS and target.type not in _ONLY_TARGETS[type_]):
            return False
        relation = Relation(source.name, type_, target.name)
        if relation not in relations:
            relations.append(relation)
        return True

    previous: tuple[str, Entity] | None = None  # (relation type, source) that the last target got
    for (left, left_entity), (right, right_entity) in zip(resolved, resolved[1:]):
        between = text[left.end:right.start]
        if speaker is not None and right_entity.type in _KIN_TARGETS and right_entity != speaker:
            if (kin := _KIN_AFTER.match(text, right.end)) or (kin := _KIN_BEFORE.search(between)):
                # "my sister Anna", "Oliver is my friend"; "my kids Max and Lily" goes on as a list
                tie = _kin_type(kin.group(1))
                previous = (tie, speaker) if add(speaker, tie, right_entity) else None
                continue
        if text.startswith(("'s", "’s"), right.end):
            previous = None  # "likes Bob's cooking": the object is the cooking, not Bob
            continue
        if (left_entity.type == "person" and right_entity.type in _KIN_TARGETS
                and (kin := _KIN_POSSESSIVE.fullmatch(between))):
            add(left_entity, _kin_type(kin.group(1)), right_entity)  # "Ana's boss, Bob"
            previous = None
            continue
        found = _pattern_relation(between, left_entity)
        if found is None and previous is not None and (then := _AND_THEN.match(between)):
            found = _pattern_relation(between[then.end():], previous[1])  # "... and lives in Lisbon"
        if found is None and speaker is not None:
            found = _first_person_relation(between, speaker)  # "Caroline: I moved to Sweden"
        if (found is None and previous is not None and _LIST_JOIN.fullmatch(between)
                and right_entity.type == left_entity.type):
            found = previous  # "uses Python, Rust and Go"
        if found is not None and not add(found[1], found[0], right_entity):
            found = None
        if (found is None and speaker is not None and right_entity.type in _KIN_TARGETS
                and (kin := _KIN_NAMED.search(between))):
            add(speaker, _kin_type(kin.group(1)), right_entity)  # "we got another cat named Bailey"
        previous = found
    return tuple(relations)


def _pattern_relation(between: str, source: Entity) -> tuple[str, Entity] | None:
    for type_, sources, pattern in _RELATIONS:
        if source.type in sources and pattern.fullmatch(between):
            return type_, source
    return None


def _first_person_relation(between: str, speaker: Entity) -> tuple[str, Entity] | None:
    """The relation of `I <verb> <target>` in the words before the target, the speaker its source."""
    last = None
    for last in _FIRST_PERSON.finditer(between):
        pass
    return None if last is None else _pattern_relation(between[last.end():], speaker)


def _kin_type(word: str) -> str:
    """The tie's word, singular and plain: `sisters` -> `sister`, `mom` -> `mother`, `kids` -> `child`."""
    word = " ".join(word.casefold().split())
    if word not in _KIN_CANONICAL and word.endswith("s") and word != "boss":  # boss: the one tie ending in s
        word = word[:-1]
    return _KIN_CANONICAL.get(word, word)


def _clean(name: str, type_: str) -> str:
    name = " ".join(name.split())
    keep_end = type_ == "url" or (type_ == "code_identifier" and name.endswith("()"))
    name = name.lstrip(_LEADING_JUNK)
    if not keep_end:
        name = name.rstrip(_TRAILING_JUNK)
    if type_ == "person" and name.endswith(("'s", "’s")):
        name = name[:-2]
    if type_ == "date" and name.endswith(("a.m", "p.m")):
        name += "."
    return name


def _is_title(name: str) -> bool:
    """1 to 8 words, each capitalised but the small ones, not all of them stop words."""
    words = name.split()
    if not 1 <= len(words) <= 8 or name.rstrip()[-1:] in ",;:":
        return False
    if all(w.casefold().strip(".,!?") in _STOP_WORDS for w in words):
        return False
    return all(w[0].isupper() or w[0].isdigit() or w.casefold() in _TITLE_SMALL_WORDS for w in words)


def _trim_url(url: str) -> str:
    while url and url[-1] in ".,;:!?'\"":
        url = url[:-1]
    for opening, closing in ("()", "[]", "{}"):
        while url.endswith(closing) and url.count(closing) > url.count(opening):
            url = url[:-1]
    return url


def _is_file_path(path: str, relative: bool, bare: bool) -> bool:
    if relative:
        if not re.search(r"[A-Za-z]", path):
            return False  # 3/4, 24/7
        last = path.rstrip("/").rsplit("/", 1)[-1]
        has_ext = bool(re.search(rf"\.(?:{_FILE_EXT})$", last, re.IGNORECASE))
        return path.count("/") >= 2 or has_ext
    if bare:
        stem, _, ext = path.rpartition(".")
        if len(stem) < 2:
            return False  # a.m., p.m.
        if ext.lower() == "js" and re.fullmatch(r"[A-Z][a-z]+", stem):
            return False  # Node.js, Vue.js: products
    return len(path) > 1


def _sentence_initial(text: str, start: int) -> bool:
    before = text[max(0, start - 200):start].rstrip(" \t\"'“‘([{*•>#-")
    if not before or before[-1] in ".!?:;\n":
        return True
    return bool(re.search(r"(?:^|\n)[ \t]*\d+[.)]$", before[-20:]))


def _strip_stop_tokens(text: str, start: int, name: str) -> tuple[int, str]:
    """Drop leading stop words ("The", "Monday") from a triggered name."""
    while name:
        first, _, rest = name.partition(" ")
        if first.casefold() not in _STOP_WORDS:
            break
        start += len(first) + 1 + (len(rest) - len(rest.lstrip()))
        name = rest.lstrip()
    return start, name


def _person_names(text: str, start: int, run: str, claimed: bytearray) -> list[tuple[int, str]]:
    """Split a run of Title-case words at stop words and at words an earlier pass claimed
    ("On Mondays Ana Lopes"); apply the sentence-start rules."""
    tokens = [(m.start() + start, m.group()) for m in re.finditer(r"\S+", run)]
    groups: list[list[tuple[int, str]]] = [[]]
    for i, (pos, word) in enumerate(tokens):
        lower = word.casefold()
        droppable = lower in _STOP_WORDS or any(claimed[pos:pos + len(word)]) or (
            i == 0 and _sentence_initial(text, pos) and (lower.endswith(("ing", "ed", "ly")) or lower in _OPENERS))
        if droppable:
            groups.append([])
        else:
            groups[-1].append((pos, word))
    names = []
    for group in groups:
        if not group:
            continue
        first_pos = group[0][0]
        last_pos, last_word = group[-1]
        end = last_pos + len(last_word)
        before = _CAPITALISED_BEFORE.search(text, max(0, first_pos - 80), first_pos)
        if (before and before.group(1).casefold() not in _STOP_WORDS and not _PERSON_WORD_ONLY.fullmatch(before.group(1))
                or ((after := _CAPITALISED_AFTER.match(text, end))
                    and not claimed[after.end() - 1])):
            continue  # next to a capitalised or versioned token: "VS Code", "Windows 11" are products
        if len(group) == 1 and _sentence_initial(text, first_pos):
            if not _possessive(text, end) and not _followed_by_person_verb(text, end) and not _KIN_AFTER.match(text, end):
                continue
        names.append((first_pos, text[first_pos:end]))
    return names


_APOSTROPHE_S = _c(r"['’]s\s+([A-Za-z]+)")


def _possessive(text: str, end: int) -> bool:
    """`X's` owns what follows ("Alice's sister"), rather than saying "X is/has" ("Life's too
    short", "Pottery's so relaxing", "Guitar's mostly my thing")."""
    m = _APOSTROPHE_S.match(text, end)
    if m is None:
        return False
    word = m.group(1).casefold()
    return word not in _AFTER_IS and not word.endswith(_ADJECTIVE_ENDINGS)


def _followed_by_person_verb(text: str, end: int) -> bool:
    next_word = _NEXT_VERB.match(text, end, end + 80)
    return next_word is not None and next_word.group(1).casefold() in _PERSON_VERBS
