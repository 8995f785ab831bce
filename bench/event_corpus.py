"""A replay-like event log for the replay and backup benchmarks: seeded batches of memory events."""

from __future__ import annotations

from locomo_texts import turns


def event_log(events: int, user_prefix: str, batch_size: int = 1000, access_every: int = 0):
    """A replay-like corpus in batches: (events, accesses) per batch. 90 % MemoryCreated
    (LoCoMo turns, 384-dimension unit vectors, 200 users), 8 % MemoryUpdated (new text and
    vector), 2 % MemoryDeleted; with access_every=N, a MemoryAccessed of a live memory every
    N events. Seeded: the same arguments give the same texts, users and vectors."""
    import uuid

    import numpy as np

    from domain.events import MemoryAccessed, MemoryCreated, MemoryDeleted, MemoryUpdated, utcnow

    rng = np.random.default_rng(42)
    texts = turns(5000)
    users = [f"{user_prefix}-{n}" for n in range(200)]
    live: list[tuple[str, str]] = []  # (user, memory id) that can still be updated or deleted
    written = 0

    def unit() -> tuple[float, ...]:
        v = rng.normal(size=384).astype(np.float32)
        return tuple((v / np.linalg.norm(v)).tolist())

    while written < events:
        batch, reads = [], []
        for _ in range(min(batch_size, events - written)):
            roll = rng.random()
            if roll < 0.90 or len(live) < 100:
                user = users[int(rng.integers(len(users)))]
                memory_id = str(uuid.uuid4())
                live.append((user, memory_id))
                batch.append(MemoryCreated(user_id=user, actor="worker:bench", memory_id=memory_id,
                                           text=texts[written % len(texts)], embedding=unit(),
                                           embedding_model="all-MiniLM-L6-v2", happened_at=utcnow()))
            elif roll < 0.98:
                user, memory_id = live[int(rng.integers(len(live)))]
                batch.append(MemoryUpdated(user_id=user, actor="worker:bench", memory_id=memory_id,
                                           text=texts[(written * 7) % len(texts)], embedding=unit(),
                                           embedding_model="all-MiniLM-L6-v2"))
            else:
                user, memory_id = live.pop(int(rng.integers(len(live))))
                batch.append(MemoryDeleted(user_id=user, actor="worker:bench", memory_id=memory_id))
            if access_every and written % access_every == 0:
                user, memory_id = live[int(rng.integers(len(live)))]
                reads.append(MemoryAccessed(user_id=user, actor="worker:bench", memory_ids=(memory_id,),
                                            source="search"))
            written += 1
        yield batch, reads
