"""Rebuild a read model from offset 0 beside the live one, then switch readers over.

1. A new version n+1 (or the one an interrupted replay left behind: it resumes from its
   own positions) is created; its secondary indexes are deferred where that pays.
2. A runner outside the projectors' consumer group reads every partition from the new
   version's positions up to the log's end as it was at the start (progress reported).
3. Deferred indexes are built; then the replay chases the live log and asks the read
   model to switch, which succeeds only once the new version has applied at least what the
   live one has (atomically, in the read model itself), so readers never see less.
4. The old version is dropped. The live projector notices the switch on its next batch
   and continues from the new version's positions.

Events carry their embeddings: nothing is re-embedded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from projectors.runner import ProjectorRunner
from projectors.versions import ReadModelVersions
from settings import EVENTS_TOPIC


@dataclass(frozen=True)
class ReplayReport:
    projection: str
    old_version: int
    new_version: int
    resumed: bool
    events: int  # events applied by the replay (records of the log, without transaction markers)
    log_records: int  # positions covered, markers included
    apply_seconds: float  # reading and applying up to the log's end at the start
    index_seconds: float  # building deferred indexes
    switch_seconds: float  # chasing the live log until the switch succeeded
    total_seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.apply_seconds if self.apply_seconds > 0 else 0.0


# on_progress(phase, done, total): phase is "apply" (done/total log records), "index"
# (done/total indexes) or "switch" (done = attempts, total None).
Progress = Callable[[str, int, int | None], None]


async def replay(versions: ReadModelVersions, bootstrap: str, topic: str = EVENTS_TOPIC,
                 on_progress: Progress = lambda phase, done, total: None, keep_old: bool = False,
                 switch_timeout_s: float = 120.0, max_batch: int = 2000, switch: bool = True,
                 keys=None) -> ReplayReport:
    """Rebuild, switch readers, drop the old version. With switch=False the new version is
    built, measured and dropped again, and readers never move (a rehearsal; benchmarks)."""
    started = time.monotonic()
    old = await versions.live_version()
    leftovers = [v for v in await versions.versions() if v > old]
    new = max(leftovers) if leftovers else old + 1
    for stale in leftovers[:-1] if leftovers else []:
        await versions.drop(stale)
    await versions.create_version(new)
    if hasattr(versions, "begin_bulk"):
        await versions.begin_bulk(new)

    # keys (a Keyring) opens sealed events; an erased user's are skipped, so the rebuilt
    # version holds nothing of them.
    runner = ProjectorRunner(versions.projection(new), bootstrap, topic, max_batch=max_batch, replay=True, keys=keys)
    await runner.start()
    try:
        consumer = runner.consumer
        partitions = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends[tp] - beginnings[tp] for tp in partitions)
        from_positions = {tp: await consumer.position(tp) for tp in partitions}
        resumed = any(from_positions[tp] > beginnings[tp] for tp in partitions)

        async def covered() -> int:
            return sum([min(await consumer.position(tp), ends[tp]) - beginnings[tp] for tp in partitions])

        apply_started = time.monotonic()
        done = await covered()
        on_progress("apply", done, total)
        applying: asyncio.Task | None = None
        try:
            while done < total:
                # Pipelined: the next batch is fetched and decoded (CPU here) while the read
                # model writes the previous one (CPU there); batches still apply in order.
                batch, messages = await runner.fetch(timeout_ms=500)
                if applying is not None:
                    await applying
                    applying = None
                if batch:
                    applying = asyncio.create_task(runner.apply(batch, messages))
                done = await covered()
                on_progress("apply", done, total)
            if applying is not None:
                await applying
        finally:
            if applying is not None and not applying.done():
                applying.cancel()
        apply_seconds = time.monotonic() - apply_started

        index_started = time.monotonic()
        if hasattr(versions, "end_bulk"):
            built = []
            await versions.end_bulk(new, lambda name: (built.append(name), on_progress("index", len(built), None)))
        index_seconds = time.monotonic() - index_started

        switch_started = time.monotonic()
        attempts = 0
        while switch:
            while await runner.poll_once(timeout_ms=100):
                pass  # drain what the live log gained meanwhile
            attempts += 1
            on_progress("switch", attempts, None)
            if await versions.switch(new, topic):
                break
            if time.monotonic() - switch_started > switch_timeout_s:
                raise TimeoutError(
                    f"version {new} of {versions.name} did not catch up with the live version within "
                    f"{switch_timeout_s:.0f}s; it stays beside the live one and a new replay resumes it")
        switch_seconds = time.monotonic() - switch_started
    finally:
        await runner.close()
    if not switch:
        await versions.drop(new)
    elif not keep_old:
        await versions.drop(old)
    return ReplayReport(
        projection=versions.name, old_version=old, new_version=new, resumed=resumed, events=runner.applied_count,
        log_records=total, apply_seconds=apply_seconds, index_seconds=index_seconds, switch_seconds=switch_seconds,
        total_seconds=time.monotonic() - started)

