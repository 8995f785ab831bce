"""Consolidation and forgetting passes: read the Postgres projection, decide with the pure
policies (domain/consolidation.py, domain/importance.py), append events.

A pass first waits until the Postgres projector has applied the whole log as it stands,
so it sees what earlier passes appended: running it twice appends nothing the second
time. Event ids (and a summary's memory id) are derived from what they act on, so a pass
that crashed after appending and runs again can never create a second summary of the
same memories. `dry_run` decides and reports without appending.

Forgetting: current importance = decay of the write-time importance with a boost for
access (domain/importance.py). Active memories below `forget_below` get MemoryForgotten
(hidden, restorable with POST /v1/memories/{id}/restore); active or forgotten ones below
`delete_below` and older than `delete_min_age_days` get MemoryDeleted. Pinned memories
(`metadata.pinned = true`) are never touched by decay. Expiry comes first: an active or archived
memory whose `expires_at` has passed gets MemoryExpired (reads hid it from that instant; the event
makes every read model and the history agree), pinned or not: its writer asked for it. Memories
that expire are not consolidated (a summary would outlive them).

Consolidation: per scope (agent_id, run_id, app_id), memories older than
`consolidate_min_age_days`, or the oldest ones while the scope is over its token budget,
are clustered by cosine similarity; each cluster becomes one summary memory
(MemoryConsolidated; LLM summary when configured, extractive otherwise) and its sources
are archived (searchable with include_archived).

Profiles: the consolidation pass also refreshes the user's profile (consolidation/profiles.py):
a new UserProfileUpdated when their memories changed since the last one and the profile says
something new.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Literal

import numpy as np
from prometheus_client import Counter

from adapters import observability
from consolidation import memory_reads
from consolidation.policies import LifecycleConfig
from consolidation.profiles import ProfileRefresher
from domain import consolidation as clustering
from domain.consistency import ConsistencyToken
from domain.entities import extract_with_topics
from domain.events import Event, MemoryConsolidated, MemoryDeleted, MemoryExpired, MemoryForgotten, utcnow
from domain.expiry import EXPIRED_REASON
from domain.importance import current_importance, forgetting_action, initial_importance
from domain.intelligence import Summarizer

log = logging.getLogger(__name__)

Kind = Literal["consolidate", "forget"]
ACTIONS = Counter("recallstack_lifecycle_actions_total", "Lifecycle actions appended (or planned, dry run)",
                  ["action", "dry_run"])
_IDS = uuid.UUID("0e6f2f44-6c33-4a8e-b1f5-3f1f3c7a9d21")


@dataclass
class Action:
    action: str  # consolidate | forget | delete
    user_id: str
    memory_ids: list[str]
    reason: str
    score: float | None = None
    summary_id: str | None = None
    summary: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class PassReport:
    kind: str
    dry_run: bool
    users: int = 0
    examined: int = 0
    actions: list[Action] = field(default_factory=list)
    appended: int = 0
    caught_up: bool = True  # False: the projection lagged behind the log; decisions may repeat
    # Profiles refreshed (consolidate passes): apart from `actions` and `appended`, which are the lifecycle's own.
    profiles: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for a in self.actions:
            out[a.action] += 1
        return dict(out)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "dry_run": self.dry_run, "users": self.users, "memories_examined": self.examined,
                "counts": self.counts(), "events_appended": self.appended, "projection_caught_up": self.caught_up,
                "actions": [a.as_dict() for a in self.actions], "profiles_updated": self.profiles}


class Lifecycle:
    """The two passes, over one user or all; wiring (pool, publisher, embedder...) from bootstrap."""

    def __init__(self, pool, publisher, projected, embedder, summarizer: Summarizer, offline_summarizer: Summarizer,
                 config: LifecycleConfig, count_tokens: Callable[[str], int], clock: Callable[[], datetime] = utcnow,
                 wait_s: float = 30.0, profiles: ProfileRefresher | None = None):
        self.pool, self.publisher, self.projected, self.embedder = pool, publisher, projected, embedder
        self.profiles = profiles  # the consolidation pass refreshes user profiles too (consolidation/profiles.py)
        self.summarizer, self.offline_summarizer = summarizer, offline_summarizer
        self.config, self.count_tokens, self.clock, self.wait_s = config, count_tokens, clock, wait_s

    async def run(self, kind: Kind, users: list[str] | None = None, dry_run: bool = False,
                  progress: Callable[[int, int], None] = lambda done, total: None) -> PassReport:
        # One trace per pass: the events it appends carry it, so each projector's apply joins it.
        with observability.span(f"{kind} pass", {"recallstack.dry_run": dry_run}) as traced:
            report = await self._run(kind, users, dry_run, progress)
            if traced is not None:
                traced.set_attributes({"recallstack.users": report.users, "recallstack.appended": report.appended})
        return report

    async def _run(self, kind: Kind, users: list[str] | None, dry_run: bool,
                   progress: Callable[[int, int], None]) -> PassReport:
        report = PassReport(kind, dry_run)
        report.caught_up = await self.projected.wait(await self.projected.ends(), self.wait_s)
        if not report.caught_up:
            log.warning("the Postgres projection is behind the log after %.0fs; this pass may repeat decisions "
                        "that are not projected yet (their ids are derived, so the read models stay right)",
                        self.wait_s)
        if users is None:
            users = await memory_reads.users(self.pool)
            if kind == "consolidate" and self.profiles is not None:  # one whose last memory went: an empty profile
                users = sorted(set(users) | set(await self.profiles.users()))
        for done, user_id in enumerate(users, 1):
            pass_ = self.consolidate_user if kind == "consolidate" else self.forget_user
            await pass_(user_id, report)
            report.users += 1
            progress(done, len(users))
        for a in report.actions:
            ACTIONS.labels(a.action, str(dry_run).lower()).inc()
        return report

    async def forget_user(self, user_id: str, report: PassReport) -> None:
        now = self.clock()
        events: list[Event] = await self._expired(user_id, now, report)
        done = {e.memory_id for e in events}
        rows = await memory_reads.memories(self.pool, user_id, ("active", "forgotten"))
        for row in rows:
            report.examined += 1
            if memory_reads.is_pinned(row["metadata"]) or str(row["id"]) in done:
                continue
            policy = self.config.for_app(row["app_id"])
            base = row["importance"] if row["importance"] is not None else initial_importance(row["text"])
            score = current_importance(base, row["created_at"], now, accesses=row["access_count"],
                                       last_accessed_at=row["last_accessed_at"],
                                       half_life_days=policy.half_life_days, access_boost=policy.access_boost)
            age_days = (now - row["created_at"]).total_seconds() / 86_400
            action = forgetting_action(score, age_days, policy.forgetting)
            if action == "keep" or (action == "forget" and row["state"] == "forgotten"):
                continue
            memory_id = str(row["id"])
            detail = (f"importance {score:.3f} (written {base:.2f}, {age_days:.0f} days old, "
                      f"{row['access_count']} accesses, half-life {policy.half_life_days:g} days)")
            event_id = _derived(memory_id, action, str(row["last_event_id"]))
            if action == "forget":
                reason = f"{detail} below forget_below {policy.forget_below:g}"
                events.append(MemoryForgotten(user_id=user_id, actor="worker:forget", event_id=event_id,
                                              memory_id=memory_id, reason=reason, score=score))
            else:
                reason = (f"{detail} below delete_below {policy.delete_below:g} and older than "
                          f"{policy.delete_min_age_days:g} days")
                events.append(MemoryDeleted(user_id=user_id, actor="worker:forget", event_id=event_id,
                                            memory_id=memory_id, reason=reason))
            report.actions.append(Action(action, user_id, [memory_id], reason, score=round(score, 4)))
        await self._append(events, report)

    async def _expired(self, user_id: str, now: datetime, report: PassReport) -> list[Event]:
        """MemoryExpired for each of the user's memories whose expiry has passed."""
        events: list[Event] = []
        for row in await memory_reads.expired(self.pool, user_id, now):
            memory_id = str(row["id"])
            events.append(MemoryExpired(user_id=user_id, actor="worker:forget", memory_id=memory_id,
                                        event_id=_derived(memory_id, "expire", str(row["last_event_id"])),
                                        expires_at=row["expires_at"], reason=EXPIRED_REASON))
            report.actions.append(Action("expire", user_id, [memory_id],
                                         f"{EXPIRED_REASON} at {row['expires_at'].isoformat()}"))
        return events

    async def consolidate_user(self, user_id: str, report: PassReport) -> None:
        now = self.clock()
        rows = [r for r in await memory_reads.memories(self.pool, user_id, ("active",), vectors=True)
                if r["expires_at"] is None]  # an expiring memory is not merged into a summary that outlives it
        report.examined += len(rows)
        by_id = {str(r["id"]): r for r in rows}
        scopes: dict[tuple, list] = defaultdict(list)
        for row in rows:
            scopes[(row["agent_id"], row["run_id"], row["app_id"])].append(self._snapshot(row))
        events: list[Event] = []
        for (agent_id, run_id, app_id), snapshots in scopes.items():
            lifecycle = self.config.for_app(app_id)
            policy = lifecycle.consolidation
            # Oldest first, at most max_pass_memories a pass: clustering is quadratic in time and
            # memory; what is left waits for the next pass. Off the event loop (faust's too).
            candidates = clustering.eligible(snapshots, now, policy)[:lifecycle.max_pass_memories]
            for cluster in await asyncio.to_thread(clustering.clusters, candidates, policy):
                sources = [by_id[m.memory_id] for m in cluster]
                ids = [m.memory_id for m in cluster]
                summary = await self._summarize([r["text"] for r in sources])
                if len(summary) > policy.summary_max_chars:  # cut on a sentence boundary
                    summary = clustering.extractive_summary([summary], max_chars=policy.summary_max_chars)
                reason = (f"{len(ids)} related memories (cosine >= {policy.similarity_at:g}) older than "
                          f"{policy.min_age_days:g} days or over the token budget of {policy.token_budget}")
                summary_id = clustering.summary_id(ids)
                report.actions.append(Action("consolidate", user_id, ids, reason, summary_id=summary_id,
                                             summary=summary))
                if report.dry_run:
                    continue
                vector = (await asyncio.to_thread(self.embedder.embed, [summary]))[0]
                entities, relations = extract_with_topics(summary)
                importances = [r["importance"] for r in sources if r["importance"] is not None]
                events.append(MemoryConsolidated(
                    user_id=user_id, actor="worker:consolidate", event_id=_derived(summary_id, "consolidate", ""),
                    memory_id=summary_id, source_memory_ids=tuple(ids), text=summary,
                    embedding=tuple(float(x) for x in vector), embedding_model=self.embedder.model_id, reason=reason,
                    agent_id=agent_id, run_id=run_id, app_id=app_id,
                    metadata={"consolidated_from": len(ids)},
                    categories=tuple(dict.fromkeys(c for r in sources for c in r["categories"])),
                    importance=max(importances) if importances else None,
                    happened_at=max(r["occurred_at"] for r in sources), entities=entities, relations=relations))
        appended = await self._append(events, report)
        if self.profiles is not None:
            await self._profile(user_id, report, appended)

    async def _profile(self, user_id: str, report: PassReport, appended: ConsistencyToken | None) -> None:
        """The user's profile, once what this pass appended for them is projected: it reflects the
        summaries, so a second pass finds nothing to refresh."""
        if appended is not None and not await self.projected.wait({p: o + 1 for p, o in appended.offsets},
                                                                  self.wait_s):
            log.warning("the Postgres projection did not apply this pass's events of %s in %.0fs: their profile "
                        "waits for the next pass", user_id, self.wait_s)
            return
        profile = await self.profiles.refresh(user_id)
        if profile is None:
            return
        report.profiles.append({"user_id": user_id, "version": profile.version, "builder": profile.builder,
                                "memory_count": profile.memory_count})
        await self._append([profile], report, counted=False)

    def _snapshot(self, row) -> clustering.MemorySnapshot:
        return clustering.MemorySnapshot(
            memory_id=str(row["id"]), text=row["text"], vector=_array(row["embedding"]),
            created_at=row["created_at"], happened_at=row["occurred_at"],
            importance=row["importance"] if row["importance"] is not None else initial_importance(row["text"]),
            pinned=memory_reads.is_pinned(row["metadata"]), tokens=self.count_tokens(row["text"]),
            agent_id=row["agent_id"], run_id=row["run_id"], app_id=row["app_id"])

    async def _summarize(self, texts: list[str]) -> str:
        try:
            return await self.summarizer.summarize(texts)
        except Exception as exc:  # an LLM outage degrades the summary, never blocks the pass
            if self.summarizer is self.offline_summarizer:
                raise
            log.warning("LLM summary failed (%s); using the extractive summary", exc)
            return await self.offline_summarizer.summarize(texts)

    async def _append(self, events: list[Event], report: PassReport, counted: bool = True) -> ConsistencyToken | None:
        """Publish `events` (unless a dry run); the token of the last chunk (one user's: one partition)."""
        if report.dry_run or not events:
            return None
        token = None
        for start in range(0, len(events), 500):
            token = await self.publisher.publish(events[start:start + 500])
        if counted:
            report.appended += len(events)
        return token if isinstance(token, ConsistencyToken) else None


def _array(vector) -> np.ndarray:
    """A pgvector value (its codec gives a Vector) or a sequence, as float32."""
    return np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector, dtype=np.float32)


def _derived(subject: str, action: str, version: str) -> str:
    return str(uuid.uuid5(_IDS, f"{subject}/{action}/{version}"))

