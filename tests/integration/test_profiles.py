"""User profiles against real servers: the Postgres reads a profile is built and served from
(adapters/profile_reads.py, on events applied by the real Postgres projector), and the LLM builder
(consolidation/profiles.py) against a CANNED OpenAI-compatible endpoint: the stdlib chat server of
tests/integration/test_llm_canned_server.py stands in for the LLM (the only thing faked), so the real
`openai` client, our retries and the fallback to the offline builder are exercised."""

from __future__ import annotations

import json
import uuid

import pytest

from adapters.llm import LlmClient
from adapters.profile_reads import PgProfileReads
from consolidation.profiles import LlmProfileBuilder, OfflineProfileBuilder, ProfileRefresher, build_profile
from domain.consistency import ConsistencyToken
from domain.profile import ProfileMemory, build_offline, empty_profile
from projectors.applied import Applied
from projectors.pg_projector import PgProjector
from tests.integration import test_llm_canned_server as canned
from tests.integration.test_llm_canned_server import MODEL
from tests.unit.projection_events import created, deleted, erased, new_user, updated

pytestmark = pytest.mark.integration


async def test_profile_reads_follow_the_projection(pool):
    topic = f"test-profile-{uuid.uuid4().hex[:8]}"
    projector = PgProjector(pool)
    reads = PgProfileReads(lambda: pool, topic)
    user = new_user()
    a = created(user, "I prefer dark mode.", importance=0.6, categories=("preference",))
    b = created(user, "My sister Ana lives in Lisbon.", 1, importance=0.4)
    await projector.apply_batch(topic, [Applied(0, 10, a), Applied(0, 11, b)])
    assert await reads.stored(user) is None
    assert await reads.last_change(user) == ConsistencyToken.of(topic, [(0, 11)]).encode()
    memories = await reads.memories(user, 10)
    assert [m.memory_id for m in memories] == [a.memory_id, b.memory_id]  # most important first
    assert memories[0].categories == ("preference",) and memories[0].importance == pytest.approx(0.6)

    refresher = ProfileRefresher(reads, OfflineProfileBuilder())
    first = await refresher.refresh(user)
    assert first.version == 1 and first.built_from == f"{topic}/0:11"
    assert first.profile == build_offline(memories)
    await projector.apply_batch(topic, [Applied(0, 12, first)])
    stored = await reads.stored(user)
    assert (stored["version"], stored["builder"], stored["built_from"], stored["memory_count"]) == (
        1, "offline", f"{topic}/0:11", 2)
    assert stored["profile"] == first.profile and user in await reads.users()
    assert await refresher.refresh(user) is None  # nothing changed since

    await projector.apply_batch(topic, [Applied(0, 13, updated(a, 2, text="I prefer light mode now.")),
                                        Applied(0, 14, deleted(b, 3))])
    second = await refresher.refresh(user)
    assert second.version == 2 and second.built_from == f"{topic}/0:14"
    assert second.profile["preferences"] == [{"text": "I prefer light mode now.", "memory_ids": [a.memory_id]}]
    assert second.profile["people"] == [] and second.memory_count == 1
    await projector.apply_batch(topic, [Applied(0, 15, second), Applied(0, 16, first)])  # a late v1: ignored
    assert (await reads.stored(user))["version"] == 2

    await projector.apply_batch(topic, [Applied(0, 17, erased(user, 4))])
    assert await reads.stored(user) is None and await reads.last_change(user) is None
    assert await reads.memories(user, 10) == [] and user not in await reads.users()
    assert await refresher.refresh(user) is None


MEMORIES = [ProfileMemory("id-tea", "I like green tea.", ("preference",), 0.5),
            ProfileMemory("id-ana", "My sister Ana lives in Lisbon.", ("personal",), 0.4)]


server, make_client = canned.server, canned.make_client  # the canned endpoint's fixtures


@pytest.fixture
def client(make_client) -> LlmClient:
    return make_client(max_retries=1)


async def test_the_llm_builder_maps_refs_back_to_memory_ids(server, client):
    answer = {"preferences": [{"text": "Likes green tea", "memories": ["m1", "m9"]}],
              "facts": [{"text": "Has a sister in Lisbon", "memories": ["m2"]}, {"text": "Invented", "memories": []}],
              "people": [{"text": "Ana (sister)", "memories": ["m2"]}], "unknown_section": [{"text": "x"}]}
    server.replies = [json.dumps(answer)]
    builder = LlmProfileBuilder(client)
    profile, name = await build_profile(builder, OfflineProfileBuilder(), MEMORIES)
    assert name == f"llm:{MODEL}"
    assert profile == {**empty_profile(), "preferences": [{"text": "Likes green tea", "memory_ids": ["id-tea"]}],
                       "facts": [{"text": "Has a sister in Lisbon", "memory_ids": ["id-ana"]}],
                       "people": [{"text": "Ana (sister)", "memory_ids": ["id-ana"]}]}
    prompt = server.requests[-1]["messages"][-1]["content"]
    assert "m1 [preference] I like green tea." in prompt and "id-tea" not in prompt  # refs, never the ids


async def test_a_failing_llm_endpoint_gives_the_offline_profile(server, client):
    server.replies = [{"status": 500, "error": "overloaded"}]
    profile, name = await build_profile(LlmProfileBuilder(client), OfflineProfileBuilder(), MEMORIES)
    assert name == "offline" and profile == build_offline(MEMORIES)
    server.replies = ['{"preferences": [{"text": "Made up", "memories": ["m7"]}]}']  # cites nothing real
    profile, name = await build_profile(LlmProfileBuilder(client), OfflineProfileBuilder(), MEMORIES)
    assert name == "offline" and profile == build_offline(MEMORIES)

