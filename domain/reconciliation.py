"""Offline reconciliation: what to do with a new fact, given similar existing memories (pure).

`reconcile(fact, candidates, policy)` decides without an LLM, deterministically, from the
candidates' cosine similarities and a few lexical cues. Candidates are ranked by
similarity (then memory id); "cosine" below is the candidate's similarity. A candidate
said by another named speaker (`Melanie: I painted a sunset.` for the fact `Caroline: I
painted a sunset.`) is about someone else: it is never a duplicate, nor updated or deleted.

1. NONE: the first candidate with cosine >= `duplicate_at` that the fact does not
   contradict ("near-duplicate of <id> (cosine 0.93)"). The fact contradicts it when their
   negation differs (`I like sushi` / `I don't like sushi`), when the fact has a retraction
   or change cue the candidate lacks, or when the fact has a number the candidate lacks
   (embeddings barely see `not` or `5` vs `7`, so such a pair can score as a duplicate).
   Also NONE, at any cosine >= `related_at`: the same words (content words, names and
   numbers) as a candidate it does not contradict ("same statement as <id>").
2. The related candidates are those with cosine >= `related_at` (including contradicted
   near-duplicates). The first one, in rank order, that matches decides:
   - DELETE it when the fact retracts it: an explicit first-person retraction (`I no
     longer ...`, `I don't/can't/never ... anymore`, `I'm not ... anymore`, `forget that`,
     `disregard that`, `that's not true`, `I stopped/quit/gave up ...`; not encouragement
     such as `I won't quit` or `Don't quit`, nor someone else's `My sister no longer ...`),
     the same subject (below), and no new value (every name and number of the fact is in
     the candidate). `I no longer drink coffee` deletes `I drink coffee every morning`.
   - UPDATE it to the fact's text (the newer fact wins) when the fact is a newer version of
     the same statement: the same subject and
     - either both hold a one-value slot (residence: live/moved/based...; work:
       work/job/company...; relationship; age; naming; favourite),
     - or neither is a happening and each has at least 2 content words (`MIN_CONTENT`);
       a happening is an event (`went`, `go to`, `attended`, `joined`, `participated`,
       `visited`, `met`, `celebrated`, `again` ...) or a time (`yesterday`, `last week`,
       `two days ago`, a date): two happenings sit side by side, neither replaces the other;
     and a difference, the first of:
     - a change cue (`now`, `moved`, `switched`, `no longer`, `instead`, `changed`,
       `anymore`, `actually`, `became`, `replaced`, `these days`) that the candidate lacks,
       with a name or number the candidate lacks, in the same frame (a cue alone, or
       `new`, `again`, is no change);
     - a negation flip with the same content words and values (`I don't like sushi` /
       `I like sushi`);
     - a replaced value in the same frame: a number or date (the fact has one the candidate
       lacks and the other way round), or a name when both hold the same one-value slot;
     - added detail (every content word and value of the candidate is in the fact, and the
       fact has more).
     The same frame: the other content words (slot words left out too) of one include the
     other's (`My cat is called Mia` updates `My cat is called Luna`, not `My dog is called
     Rex`; `I like Rust` does not update `I like Python`).
   Same subject: not one about the speaker (I/we, no you) and the other about the one
   spoken to (you, no I/we); and their content words (stop words, cues, names and numbers
   left out, light stemming) overlap for at least half of the smaller set, or both use a
   word of the same one-value slot. A tag question's negation (`..., don't they?`) counts
   as no negation.
   `I love Berlin's museums` and `I moved to Berlin` share a name but not a subject.
3. ADD otherwise ("no similar memory", "new: closest <id> (cosine 0.61)", or "related to
   <id> (cosine 0.80) but says something else").

`reconcile_batch` decides a conversation's facts in order and adds two rules: a fact whose
vector has cosine >= `duplicate_at` to an earlier fact of the batch of the same speaker
(or the same normalised text, without vectors) is NONE ("repeats fact #i of this
conversation", i its index in the batch), and a memory deleted by an earlier fact is no
candidate of later ones. Two facts may update the same memory: applied in order, the
later one wins.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from domain.entities import extract
from domain.extraction import NEGATION, content_words, normalise, split_speaker, words_of
from domain.intelligence import Candidate, Decision, Fact, ReconciliationPolicy

__all__ = ["OfflineReconciler", "reconcile", "reconcile_batch"]

# An explicit first-person retraction: "I no longer ...", "I don't ... anymore", "forget that ...",
# "I stopped/quit/gave up ...". Not encouragement: "I won't quit", "Don't quit".
_RETRACTION = re.compile(
    r"\b(?:i|we)(?:'m|’m| am| are)?(?: (?:just|really|actually|now|honestly))? no longer\b"
    r"|\b(?:i|we) (?:do not|don'?t|didn'?t|can'?t|cannot|never|am not|'m not|’m not)\b[^.!?;]*\bany ?more\b"
    r"|\b(?:i|we)(?:'m|’m| am| are) not [^.!?;]*\bany ?more\b"
    r"|(?:^|[.!?;:]\s+|\b(?:please|just|oh,?|actually,?) )(?:forget|disregard|ignore) (?:that|about that|what i said"
    r"|it|my last)\b|\b(?:that|it|this)(?:'s| is| was|’s) (?:not|n't) true\b"
    r"|\b(?:that|it|this) (?:isn'?t|wasn'?t) true\b"
    r"|\b(?:i|we)(?: (?:just|finally|recently|actually|already|have|had|'ve|’ve))?"
    r" (?:stopped|quit|gave up|given up)\b",
    re.I)
_CHANGE = re.compile(r"\b(?:now|moved|switched|no longer|instead|changed|any ?more|actually|became|become|"
                     r"replaced|these days|nowadays|updated|from now on)\b", re.I)
# A happening: it sits beside other happenings, it is no newer version of one.
_EVENT = re.compile(
    r"\b(?:went|go(?:ing)? to|attended|attending|joined|joining|participat\w*|took part|taking part|visited|"
    r"visiting|competed|competing|met|celebrated|hosted|volunteered|signed up|again|yesterday|today|tonight|"
    r"(?:last|this|next) (?:week|month|year|night|weekend|summer|spring|fall|autumn|winter|time|monday|tuesday|"
    r"tues|wednesday|thursday|friday|saturday|sunday)|ago|earlier today)\b", re.I)
_TAG = re.compile(r"[,\s]+(?:do|does|did|is|are|was|were|have|has|can|will|would|could|should|ai)n['’]t "
                  r"(?:they|it|you|we|he|she|i|there|that|those|these)\s*[?.!]*$", re.I)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i’m|i've|i’ve|i'd|i’d|i'll|i’ll|me|my|mine|we|we're|we’re|we've|our|us)\b",
                           re.I)
_SECOND_PERSON = re.compile(r"\b(?:you|you're|you’re|you've|you’ve|you'll|you’ll|your|yours)\b", re.I)
MIN_CONTENT = 2  # content words (besides names, numbers and cues) each side needs for an UPDATE outside a slot
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CUE_WORDS = frozenset("now moved switched longer instead changed anymore new actually became become replaced days "
                       "nowadays updated forget disregard true stopped quit gave up".split())
# Slots that hold one value at a time: a new name in one replaces the old one.
_FAMILIES = {name: frozenset(words.split()) for name, words in {
    "residence": "live lives living lived move moved moving relocate relocated based home house apartment city "
                 "reside resides resided hometown",
    "work": "work works working worked job employed employer company hired role position career office",
    "relationship": "married wife husband partner boyfriend girlfriend dating engaged divorced single",
    "age": "age old birthday born",
    "naming": "name named called",
    "favourite": "favorite favourite",
}.items()}
_FAMILY_WORDS = frozenset().union(*_FAMILIES.values())
_MEASURES = frozenset({"date", "quantity"})


class _Statement:
    """The lexical view of one text: content words, values (names, numbers), negation, cues."""

    def __init__(self, text: str):
        entities, _ = extract(text)
        self.numbers = set(_NUMBER.findall(text))
        self.measures = self.numbers | {e.name.lower() for e in entities if e.type in _MEASURES}
        self.names = {e.name.lower() for e in entities if e.type not in _MEASURES}
        self.values = self.measures | self.names
        value_words = {w for v in self.values for w in words_of(v)}
        self.raw = set(words_of(text))
        self.content = content_words(text, exclude=value_words | _CUE_WORDS)
        self.frame = content_words(text, exclude=value_words | _CUE_WORDS | _FAMILY_WORDS)
        self.negated = bool(NEGATION.search(_TAG.sub("", text)))  # "..., don't they?" negates nothing
        first, second = bool(_FIRST_PERSON.search(text)), bool(_SECOND_PERSON.search(text))
        self.person = "first" if first and not second else "second" if second and not first else ""
        self.retraction = _RETRACTION.search(text)
        self.change = _CHANGE.search(text)
        self.families = {name for name, family in _FAMILIES.items() if self.raw & family}
        self.event = bool(_EVENT.search(text)) or any(e.type == "date" for e in entities)


def _same_subject(a: _Statement, b: _Statement) -> bool:
    if {a.person, b.person} == {"first", "second"}:
        return False  # "I won't give up" is not about what "you never give up" is about
    if a.families & b.families:
        return True
    if not a.content or not b.content:
        return False
    return len(a.content & b.content) / min(len(a.content), len(b.content)) >= 0.5


def _same_words(fact: _Statement, old: _Statement) -> bool:
    return fact.content == old.content and fact.values == old.values and not _contradicts(fact, old)


def _contradicts(fact: _Statement, old: _Statement) -> bool:
    return (fact.negated != old.negated or bool(fact.retraction and not old.retraction)
            or bool(fact.change and not old.change) or bool(fact.numbers - old.numbers))


def _replaced(new: set[str], old: set[str]) -> bool:
    return bool(new - old and old - new)


def _difference(fact: _Statement, old: _Statement) -> str | None:
    """Why the fact is a newer version of `old` (their subject being the same), or None."""
    slot = fact.families & old.families
    if not slot and (fact.event or old.event):
        return None  # two happenings, not two versions of one
    if not slot and (len(fact.content) < MIN_CONTENT or len(old.content) < MIN_CONTENT):
        return None  # too little said to be the same statement
    # The value must be replaced within the same frame: neither adds a word the other lacks
    # ("I like Rust" does not replace "I like Python"; "I live in Berlin" replaces "I live in Lisbon").
    same_frame = fact.frame <= old.frame or old.frame <= fact.frame
    if (same_frame and fact.change and fact.values - old.values
            and not (old.change and old.change.group().lower() == fact.change.group().lower())):
        return f"change cue '{fact.change.group()}'"
    if fact.negated != old.negated and fact.content == old.content and fact.values == old.values:
        return "negation changed"
    if same_frame and (_replaced(fact.measures, old.measures) or (slot and _replaced(fact.names, old.names))):
        return "value changed"
    if old.content and old.content <= fact.content and old.values <= fact.values and (
            fact.content > old.content or fact.values > old.values):
        return "adds detail"
    return None


def _other_speaker(speaker: str, text: str) -> bool:
    """Whether `text` is said by another named speaker (LoCoMo: `Melanie: ...` vs `Caroline: ...`)."""
    other = split_speaker(text)[0]
    return bool(speaker and other and speaker.lower() != other.lower())


def _cos(similarity: float) -> str:
    return f"cosine {similarity:.2f}"


def reconcile(fact: Fact, candidates: Sequence[Candidate], policy: ReconciliationPolicy) -> Decision:
    """ADD, UPDATE, DELETE or NONE for `fact` (see the module docstring)."""
    ranked = sorted((c for c in candidates if c.similarity == c.similarity),  # NaN: no evidence
                    key=lambda c: (-c.similarity, c.memory_id))
    if not ranked:
        return Decision("ADD", fact, "no similar memory")
    new = _Statement(fact.text)
    speaker = split_speaker(fact.text)[0]
    related = [(c, _Statement(c.text)) for c in ranked if c.similarity >= policy.related_at
               and not _other_speaker(speaker, c.text)]
    for candidate, old in related:
        if candidate.similarity >= policy.duplicate_at and not _contradicts(new, old):
            return Decision("NONE", fact, f"near-duplicate of {candidate.memory_id} ({_cos(candidate.similarity)})",
                            memory_id=candidate.memory_id)
        if _same_words(new, old):
            return Decision("NONE", fact, f"same statement as {candidate.memory_id} ({_cos(candidate.similarity)})",
                            memory_id=candidate.memory_id)
    for candidate, old in related:
        if new.retraction and new.values <= old.values and _same_subject(new, old):
            return Decision("DELETE", fact, f"retracts {candidate.memory_id} ({_cos(candidate.similarity)})",
                            memory_id=candidate.memory_id)
        why = _difference(new, old) if _same_subject(new, old) else None
        if why:
            return Decision("UPDATE", fact,
                            f"newer version of {candidate.memory_id} ({_cos(candidate.similarity)}): {why}",
                            memory_id=candidate.memory_id, text=fact.text)
    if related:
        best = related[0][0]
        return Decision("ADD", fact, f"related to {best.memory_id} ({_cos(best.similarity)}) but says something else")
    return Decision("ADD", fact, f"new: closest {ranked[0].memory_id} ({_cos(ranked[0].similarity)})")


def reconcile_batch(facts: Sequence[Fact], candidates_per_fact: Sequence[Sequence[Candidate]],
                    policy: ReconciliationPolicy, vectors: np.ndarray | None = None) -> list[Decision]:
    """One decision per fact, in order; facts repeating an earlier fact of the batch are NONE."""
    if len(candidates_per_fact) != len(facts):
        raise ValueError(f"{len(facts)} facts but {len(candidates_per_fact)} candidate lists")
    unit = None
    if vectors is not None:
        matrix = np.asarray(vectors, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != len(facts):
            raise ValueError(f"vectors must have one row per fact ({len(facts)}), got shape {matrix.shape}")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)  # a zero vector matches nothing
    decisions: list[Decision] = []
    kept: list[int] = []  # facts that are not repeats: what later facts are compared with
    keys: dict[str, int] = {}
    deleted: set[str] = set()
    for i, (fact, candidates) in enumerate(zip(facts, candidates_per_fact)):
        repeat = keys.get(normalise(fact.text))
        if repeat is not None:
            decisions.append(Decision("NONE", fact, f"repeats fact #{repeat} of this conversation"))
            continue
        speaker = split_speaker(fact.text)[0]
        same_speaker = [j for j in kept if not _other_speaker(speaker, facts[j].text)]
        if unit is not None and same_speaker:
            similarities = unit[same_speaker] @ unit[i]
            best = int(np.argmax(similarities))
            if similarities[best] >= policy.duplicate_at:
                decisions.append(Decision("NONE", fact, f"repeats fact #{same_speaker[best]} of this conversation "
                                                        f"({_cos(float(similarities[best]))})"))
                continue
        decision = reconcile(fact, [c for c in candidates if c.memory_id not in deleted], policy)
        if decision.action == "DELETE":
            deleted.add(decision.memory_id)
        decisions.append(decision)
        kept.append(i)
        keys[normalise(fact.text)] = i
    return decisions


class OfflineReconciler:
    """The Reconciler port without an LLM: `reconcile_batch` with this policy."""

    def __init__(self, policy: ReconciliationPolicy | None = None):
        self.policy = policy or ReconciliationPolicy()

    async def decide(self, facts: Sequence[Fact], candidates: Sequence[Sequence[Candidate]],
                     vectors: np.ndarray | None = None) -> list[Decision]:
        return reconcile_batch(facts, candidates, self.policy, vectors)
