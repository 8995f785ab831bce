"""One realistic event of every type, every optional field filled, deterministic.

make_golden.py writes the golden files from these; the unit tests round-trip them.
Embedding components are multiples of 1/1024, exact in Avro's 32-bit float.
"""

from __future__ import annotations

from datetime import datetime, timezone

from domain.events import (ApiKeyIssued, ApiKeyRevoked, ChatMessage, ConversationReceived, CoreMemoryBlockAppended,
                           CoreMemoryBlockCreated, CoreMemoryBlockDeleted, CoreMemoryBlockReplaced, Entity, Event,
                           MemoryAccessed, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryExpired,
                           MemoryForgotten, MemoryRestored, MemoryScopeDeleted, MemoryShared, MemoryUnshared,
                           MemoryUpdated, Relation, UserErased, UserProfileUpdated, UserRegistered)

UTC = timezone.utc
MEMORY = "6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"
OTHER_MEMORY = "0b9d3c52-7e0a-4f43-9a43-3d8f5f1e2c77"
MERGED_MEMORY = "c3e1a2b4-5d6f-4a8b-9c0d-1e2f3a4b5c6d"
VECTOR = (0.125, -0.0625, 0.5, 0.0009765625, -0.25, 0.75, 0.03125, -0.9990234375)
VECTOR_2 = (0.25, 0.0625, -0.5, 0.015625, 0.375, -0.125, 0.5, 0.0078125)


def _envelope(n: int) -> dict:
    return dict(
        user_id="alice", actor="key:rs_live_8f3a",
        event_id=f"1b4e28ba-2fa1-4d2b-883f-0016d3cca4{n:02d}",
        occurred_at=datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC),
        correlation_id="req-7c9e6679-7425-40de-944b-e07fc1f90ae7",
        causation_id=f"9a2f0c1d-3b4e-4f5a-8b6c-7d8e9f0a1b{n:02d}",
    )


_EVENTS: list[Event] = [
    MemoryCreated(
        **_envelope(1), memory_id=MEMORY, text="Alice works at Acme on the billing team and prefers dark mode",
        embedding=VECTOR, embedding_model="sentence-transformers/all-MiniLM-L6-v2",
        happened_at=datetime(2025, 3, 13, 17, 5, 0, tzinfo=UTC),
        agent_id="cursor", run_id="run-42", app_id="ide",
        metadata={"source": "chat", "confidence": 0.9, "tags": ["work", "ui"], "nested": {"k": None}},
        categories=("work", "preferences"), importance=0.75,
        entities=(Entity("Alice", "person"), Entity("Acme", "organization")),
        relations=(Relation("Alice", "works_at", "Acme"),),
        context="Bob: where does Alice work these days?",
        expires_at=datetime(2025, 4, 1, 0, 0, 0, tzinfo=UTC),
    ),
    MemoryUpdated(
        **_envelope(2), memory_id=MEMORY, text="Alice works at Acme on the payments team",
        embedding=VECTOR_2, embedding_model="sentence-transformers/all-MiniLM-L6-v2",
        metadata={"source": "chat", "edited": True}, categories=("work",), importance=0.5,
        reason="reconciled with a newer fact", expires_at=datetime(2025, 6, 30, 17, 0, 0, 250000, tzinfo=UTC),
    ),
    MemoryDeleted(**_envelope(3), memory_id=MEMORY, reason="asked by the user"),
    MemoryScopeDeleted(**_envelope(4), agent_id="cursor", run_id="run-42", app_id="ide", reason="end of run"),
    MemoryAccessed(**_envelope(5), memory_ids=(MEMORY, OTHER_MEMORY), source="search",
                   query="where does alice work?"),
    MemoryConsolidated(
        **_envelope(6), memory_id=MERGED_MEMORY, source_memory_ids=(MEMORY, OTHER_MEMORY),
        text="Alice works at Acme (payments) and prefers dark mode", embedding=VECTOR_2,
        embedding_model="sentence-transformers/all-MiniLM-L6-v2", reason="near-duplicates (cosine 0.93)",
        agent_id="cursor", run_id="run-42", app_id="ide", metadata={"consolidated_from": 2},
        categories=("work",), importance=0.625, happened_at=datetime(2025, 3, 13, 17, 5, 0, tzinfo=UTC),
        entities=(Entity("Alice", "person"), Entity("Acme", "organization")),
        relations=(Relation("Alice", "works_at", "Acme"),),
    ),
    MemoryForgotten(**_envelope(7), memory_id=OTHER_MEMORY, reason="decayed below threshold", score=0.03125),
    MemoryExpired(**_envelope(16), memory_id=MEMORY, expires_at=datetime(2025, 4, 1, 0, 0, 0, tzinfo=UTC),
                  reason="expired"),
    MemoryRestored(**_envelope(15), memory_id=OTHER_MEMORY, reason="restored by the user"),
    ConversationReceived(
        **_envelope(8), conversation_id="5f0b6a7c-8d9e-4f01-a2b3-c4d5e6f7a8b9",
        messages=(ChatMessage("user", "I moved to Lyon last month."),
                  ChatMessage("assistant", "Noted: you live in Lyon now.")),
        happened_at=datetime(2025, 3, 14, 9, 20, 0, 123456, tzinfo=UTC),
        agent_id="claude", run_id="run-7", app_id="chat", metadata={"channel": "slack"},
        expires_at=datetime(2025, 3, 21, 0, 0, 0, tzinfo=UTC),
    ),
    MemoryShared(**_envelope(9), memory_id=MEMORY, grantee_user_id="bob", permission="read"),
    MemoryUnshared(**_envelope(10), memory_id=MEMORY, grantee_user_id="bob"),
    UserRegistered(**_envelope(11), display_name="Alice Martin", is_admin=True),
    ApiKeyIssued(
        **_envelope(12), key_id="4a7d1ed4-14c5-4b1d-9f2e-6c0a5b3e8d21", prefix="rs_live_8f3a",
        key_hash="sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        scopes=("memories:read", "memories:write"), name="laptop cursor",
        expires_at=datetime(2026, 3, 14, 0, 0, tzinfo=UTC), parent_key_id="9e107d9d-372b-4b6a-8d4e-1f3c5a7b9d20",
    ),
    ApiKeyRevoked(**_envelope(13), key_id="4a7d1ed4-14c5-4b1d-9f2e-6c0a5b3e8d21", reason="laptop lost"),
    UserErased(**_envelope(14), reason="GDPR request #1234"),
    UserProfileUpdated(
        **_envelope(30), version=3, builder="offline", built_from="recallstack.memory.events/4:1207", memory_count=2,
        profile={"preferences": [{"text": "Prefers dark mode", "memory_ids": [MEMORY]}], "facts": [],
                 "projects": [{"text": "Billing team at Acme", "memory_ids": [MEMORY, OTHER_MEMORY]}],
                 "tools": [], "people": [{"text": "Bob (manager)", "memory_ids": [OTHER_MEMORY]}],
                 "instructions": []},
    ),
    CoreMemoryBlockCreated(**_envelope(30), label="persona", value="I am a concise coding assistant.",
                           limit_tokens=500, agent_id="cursor", description="who the agent is"),
    CoreMemoryBlockAppended(**_envelope(31), label="persona", content="I answer in French when asked.", version=2,
                            agent_id="cursor"),
    CoreMemoryBlockReplaced(**_envelope(32), label="persona", old_content="concise", new_content="terse",
                            version=3, agent_id="cursor", limit_tokens=800, description="the agent's persona"),
    CoreMemoryBlockDeleted(**_envelope(33), label="persona", version=4, agent_id="cursor"),
]

SAMPLES: dict[str, Event] = {e.event_type: e for e in _EVENTS}
