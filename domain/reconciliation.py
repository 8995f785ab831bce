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
   - DELETE it when the fact retracts it: a retraction cue (`no longer`, `anymore`,
     `forget that`, `disregard`, `not true`, `stopped`, `quit`, `gave up`), the same
     subject (below), and no new value (every name and number of the fact is in the
     candidate). `I no longer drink coffee` deletes `I drink coffee every morning`.
   - UPDATE it to the fact's text (the newer fact wins) when the fact is a newer version of
     it: the same subject and a difference, that is a change cue (`now`, `moved`,
     `switched`, `no longer`, `instead`, `changed`, `anymore`, `new`, `actually`,
     `became`, `replaced`, `these days`), a negation flip, a replaced value (the fact has a
     number or date the candidate lacks and the other way round, or the same for a name
     when both are about a one-value slot: residence, work, relationship, age, naming,
     favourite), or added detail (every word of the candidate is in the fact, and the fact
     has more). The value must be replaced within the same frame: the other content words
     of one include the other's (`My cat is called Mia` updates `My cat is called Luna`,
     not `My dog is called Rex`; `I like Rust` does not update `I like Python`).
   Same subject: their content words (stop words, cues, names and numbers left out, light
   stemming) overlap for at least half of the smaller set, or both use a word of the same
   one-value slot (residence: live/moved/based...; work: work/job/joined...; relationship;
   age; naming; favourite).
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

_RETRACTION = re.compile(r"\b(?:no longer|any ?more|forget (?:that|about|it|what)|disregard|not true|isn'?t true|"
                         r"wasn'?t true|no more|stopped|quit|gave up)\b", re.I)
_CHANGE = re.compile(r"\b(?:now|moved|switched|no longer|instead|changed|any ?more|new|actually|became|become|"
                     r"replaced|these days|nowadays|updated|from now on)\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CUE_WORDS = frozenset("now moved switched longer instead changed anymore new actually became become replaced days "
                       "nowadays updated forget disregard true stopped quit gave up".split())
# Slots that hold one value at a time: a new name in one replaces the old one.
_FAMILIES = {name: frozenset(words.split()) for name, words in {
    "residence": "live lives living lived move moved moving relocate relocated based home house apartment city "
                 "reside resides resided hometown",
    "work": "work works working worked job employed employer company hired joined role position career office quit",
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
        self.negated = bool(NEGATION.search(text))
        self.retraction = _RETRACTION.search(text)
        self.change = _CHANGE.search(text)
        self.families = {name for name, family in _FAMILIES.items() if self.raw & family}


def _same_subject(a: _Statement, b: _Statement) -> bool:
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
    if fact.change and not (old.change and old.change.group().lower() == fact.change.group().lower()):
        return f"change cue '{fact.change.group()}'"
    if fact.negated != old.negated:
        return "negation changed"
    # A replaced value, in the same frame (neither adds a word the other contradicts):
    # a number or date anywhere, a name only in a one-value slot ("I like Rust" does not
    # replace "I like Python"; "I live in Berlin" replaces "I live in Lisbon").
    same_frame = fact.frame <= old.frame or old.frame <= fact.frame
    if same_frame and (_replaced(fact.measures, old.measures)
                       or (fact.families & old.families and _replaced(fact.names, old.names))):
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
