"""The LLM implementations of the intelligence ports (domain/intelligence.py): fact
extraction, reconciliation and summaries through any OpenAI-compatible chat endpoint.

Each asks `LlmClient.complete_json` with a versioned prompt (consolidation/prompts/) and
validates the answer with the pydantic models below; LlmError / LlmUnavailable propagate
so the workers can fall back to the offline implementations.

The model's answer is checked against what it was given, never trusted:
- extraction: message indexes outside the conversation are dropped, repeated facts,
  entities and categories are kept once;
- reconciliation: candidates are shown as short ids (m1, m2, ...: models mangle UUIDs);
  an UPDATE / DELETE / NONE naming a memory that is not among that fact's candidates
  becomes an ADD (the reason says so), a fact_index out of range is ignored, a second
  decision for a fact is ignored, and a fact without a decision is ADDed.
"""

from __future__ import annotations

from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.llm import LlmClient
from consolidation.prompts import load_prompt
from domain.events import ChatMessage, Entity, Relation
from domain.intelligence import Candidate, Decision, Fact, Intelligence


class _Answer(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)  # extra keys are ignored


class EntityOut(_Answer):
    name: str = Field(min_length=1)
    type: str = "other"  # what the Neo4j projector calls an untyped entity


class RelationOut(_Answer):
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    target: str = Field(min_length=1)


class FactOut(_Answer):
    text: str = Field(min_length=1)
    message_indexes: list[int] = []
    entities: list[EntityOut] = []
    relations: list[RelationOut] = []
    importance: float | None = Field(default=None, ge=0, le=1)
    categories: list[str] = []


class ExtractionAnswer(_Answer):
    facts: list[FactOut]


class DecisionOut(_Answer):
    fact_index: int
    action: Literal["ADD", "UPDATE", "DELETE", "NONE"]
    memory_id: str | None = None
    text: str | None = None
    reason: str = ""

    @field_validator("action", mode="before")
    @classmethod
    def _upper(cls, value):  # "update" is not worth a retry
        return value.strip().upper() if isinstance(value, str) else value


class ReconcileAnswer(_Answer):
    decisions: list[DecisionOut]


class SummaryAnswer(_Answer):
    summary: str = Field(min_length=1)


def _unique(items, key):
    seen, out = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


class LlmExtractor:
    def __init__(self, client: LlmClient, prompt_version: str | None = None):
        self.client = client
        self.prompt = load_prompt("extract_facts", prompt_version)
        self.prompt_version = self.prompt.version
        self.name = f"llm:{client.model}"

    async def extract(self, messages: Sequence[ChatMessage]) -> list[Fact]:
        if not any(m.content.strip() for m in messages):
            return []
        conversation = "\n".join(f"[{i}] {m.role}: {m.content}" for i, m in enumerate(messages))
        answer = await self.client.complete_json(self.prompt.system, self.prompt.render(messages=conversation),
                                                 ExtractionAnswer)
        facts = []
        for f in _unique(answer.facts, lambda f: " ".join(f.text.casefold().split())):
            facts.append(Fact(
                text=f.text,
                message_indexes=tuple(sorted({i for i in f.message_indexes if 0 <= i < len(messages)})),
                entities=tuple(_unique((Entity(e.name, e.type.lower()) for e in f.entities),
                                       lambda e: e.name.casefold())),
                relations=tuple(_unique((Relation(r.source, r.type, r.target) for r in f.relations),
                                        lambda r: (r.source.casefold(), r.type.casefold(), r.target.casefold()))),
                importance=f.importance,
                categories=tuple(_unique((c.lower() for c in f.categories if c), lambda c: c)),
            ))
        return facts


class LlmReconciler:
    def __init__(self, client: LlmClient, prompt_version: str | None = None):
        self.client = client
        self.prompt = load_prompt("reconcile", prompt_version)
        self.prompt_version = self.prompt.version

    async def decide(self, facts: Sequence[Fact], candidates: Sequence[Sequence[Candidate]]) -> list[Decision]:
        if len(candidates) != len(facts):
            raise ValueError(f"{len(facts)} facts but {len(candidates)} candidate lists")
        # Short aliases for the memory ids, one per memory across the request.
        alias: dict[str, str] = {}
        for cands in candidates:
            for c in cands:
                alias.setdefault(c.memory_id, f"m{len(alias) + 1}")
        chosen: dict[int, Decision] = {}
        asked = [i for i, cands in enumerate(candidates) if cands]  # without candidates it can only be ADD
        if asked:
            blocks = []
            for i in asked:
                lines = [f"Fact {i}: {facts[i].text}", "candidates:"]
                lines += [f"- id: {alias[c.memory_id]} | similarity: {c.similarity:.2f} | {c.text}" for c in candidates[i]]
                blocks.append("\n".join(lines))
            answer = await self.client.complete_json(self.prompt.system, self.prompt.render(facts="\n\n".join(blocks)),
                                                     ReconcileAnswer)
            for d in answer.decisions:
                if d.fact_index in asked and d.fact_index not in chosen:
                    chosen[d.fact_index] = self._decision(facts[d.fact_index], candidates[d.fact_index], alias, d)
        return [chosen.get(i) or Decision("ADD", fact, "no similar memory" if not candidates[i]
                                          else "no decision from the model")
                for i, fact in enumerate(facts)]

    @staticmethod
    def _decision(fact: Fact, cands: Sequence[Candidate], alias: dict[str, str], d: DecisionOut) -> Decision:
        reason = d.reason or "the model gave no reason"
        if d.action == "ADD":
            return Decision("ADD", fact, reason, text=d.text or None)
        by_ref = {alias[c.memory_id]: c.memory_id for c in cands} | {c.memory_id: c.memory_id for c in cands}
        memory_id = by_ref.get(d.memory_id or "")
        if memory_id is None:
            named = f"memory {d.memory_id!r}, which is not among this fact's candidates" if d.memory_id \
                else "no memory"
            return Decision("ADD", fact, f"the model chose {d.action} of {named}; added instead ({reason})")
        text = (d.text or None) if d.action == "UPDATE" else None
        return Decision(d.action, fact, reason, memory_id=memory_id, text=text)


class LlmSummarizer:
    def __init__(self, client: LlmClient, prompt_version: str | None = None):
        self.client = client
        self.prompt = load_prompt("summarize", prompt_version)
        self.prompt_version = self.prompt.version

    async def summarize(self, texts: Sequence[str]) -> str:
        texts = [t.strip() for t in texts if t and t.strip()]
        if not texts:
            raise ValueError("nothing to summarize")
        if len(texts) == 1:  # nothing to merge: no call
            return texts[0]
        memories = "\n".join(f"{n}. {t}" for n, t in enumerate(texts, 1))
        answer = await self.client.complete_json(self.prompt.system, self.prompt.render(memories=memories),
                                                 SummaryAnswer)
        return answer.summary


def llm_intelligence(client: LlmClient) -> Intelligence:
    """The three LLM ports on one client (one circuit breaker), with the prompt versions in `notes`."""
    extractor, reconciler, summarizer = LlmExtractor(client), LlmReconciler(client), LlmSummarizer(client)
    return Intelligence(extractor, reconciler, summarizer, notes={
        "llm": client.describe(),
        "prompt_versions": {"extract_facts": extractor.prompt_version, "reconcile": reconciler.prompt_version,
                            "summarize": summarizer.prompt_version},
    })
