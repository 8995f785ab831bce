"""Fakes (not mocks) for handler tests: small working implementations of the ports."""

from __future__ import annotations

import hashlib

import numpy as np

from domain.consistency import ConsistencyToken


class FakeEmbedder:
    model_id = "fake-hash-embedder"
    dim = 8

    def embed(self, texts):
        rows = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()[: self.dim]
            vec = np.frombuffer(digest, dtype=np.uint8).astype(np.float32) + 1
            rows.append(vec / np.linalg.norm(vec))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_one(self, text):
        return self.embed([text])[0]


class FakePublisher:
    """An in-memory log: one list per partition, partition by a stable hash of the key."""

    def __init__(self, partitions: int = 12, topic: str = "recallstack.memory.events"):
        self.topic = topic
        self.partitions: list[list] = [[] for _ in range(partitions)]

    def partition_of(self, user_id: str) -> int:
        return int(hashlib.md5(user_id.encode()).hexdigest(), 16) % len(self.partitions)

    async def publish(self, events):
        positions = []
        for event in events:
            p = self.partition_of(event.user_id)
            self.partitions[p].append(event)
            positions.append((p, len(self.partitions[p]) - 1))
        return ConsistencyToken.of(self.topic, positions)

    @property
    def events(self):
        return [e for part in self.partitions for e in part]


class FakeMemories:
    """The ownership lookup over a dict: memory_id -> (user_id, state)."""

    def __init__(self, known: dict[str, tuple[str, str]] | None = None):
        self.known = dict(known or {})

    async def owner(self, memory_id):
        return self.known.get(memory_id)

    async def expiry(self, memory_id):
        return getattr(self, "expires", {}).get(memory_id)  # memory_id -> expires_at, set by a test
