"""User profiles end to end (issue 26 item 3) through REST and the Python SDK, offline (no LLM is
configured here; the LLM builder is tested against a canned endpoint in tests/integration/test_profiles.py):
memories added -> one consolidation pass (`recallstack worker consolidate --once`) -> the profile shows
them, each item citing its memories; an update and a delete -> refreshed (new versions, in the log as
UserProfileUpdated); a pass with nothing new appends nothing; an erased user has no profile.

The stack's own consolidation worker is stopped meanwhile, so the passes are this test's."""

from __future__ import annotations

import pytest

from domain.events import UserProfileUpdated
from tests.e2e.test_workers import _stopped, _worker_json, user_events, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def consolidate_stopped(services):
    yield from _stopped(services, "worker-consolidate")


def profile(gateway, user_id: str, **params):
    return gateway.get(f"/v1/users/{user_id}/profile", params=params)


def add(gateway, user_id: str, text: str) -> tuple[str, str]:
    answer = gateway.post("/v1/memories", json={"text": text, "user_id": user_id, "infer": False})
    assert answer.status_code == 202, answer.text
    return answer.json()["results"][0]["id"], answer.json()["consistency_token"]


def refresh(settings, user_id: str) -> list[dict]:
    """One consolidation pass over the user; the profiles it appended."""
    return _worker_json(settings, {}, "consolidate", "--once", "--user", user_id)["profiles_updated"]


def version(gateway, user_id: str, wanted: int) -> dict:
    return wait_for(lambda: (found := profile(gateway, user_id).json()).get("version") == wanted and found,
                    timeout=30, what=f"profile version {wanted}")


def cited(answer: dict, section: str) -> dict[str, list[str]]:
    return {item["text"]: item["memory_ids"] for item in answer["profile"][section]}


def test_the_profile_follows_the_memories_and_goes_with_the_user(gateway, consolidate_stopped, user_id):
    settings = consolidate_stopped
    missing = profile(gateway, user_id)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found", missing.text

    tea, _ = add(gateway, user_id, "I prefer green tea to coffee")
    rule, _ = add(gateway, user_id, "Always answer in French")
    sister, _ = add(gateway, user_id, "My sister Ana lives in Lisbon")
    tool, token = add(gateway, user_id, "I use Neovim every day")
    on_read = profile(gateway, user_id, consistency_token=token).json()  # no pass yet: built on read, not stored
    assert (on_read["version"], on_read["updated_at"], on_read["memory_count"]) == (0, None, 4)
    assert cited(on_read, "preferences") == {"I prefer green tea to coffee": [tea]}

    assert [(p["user_id"], p["version"], p["builder"]) for p in refresh(settings, user_id)] == [
        (user_id, 1, "offline")]
    first = version(gateway, user_id, 1)
    assert cited(first, "preferences") == {"I prefer green tea to coffee": [tea]}
    assert cited(first, "instructions") == {"Always answer in French": [rule]}
    assert cited(first, "people") == {"Ana (sister)": [sister]} and cited(first, "tools") == {"Neovim": [tool]}
    assert first["stale"] is False and first["updated_at"] and first["builder"] == "offline"
    assert first["built_from"].startswith("recallstack.memory.events/")
    [event] = [e for e in user_events(settings, user_id) if isinstance(e, UserProfileUpdated)]
    assert (event.version, event.actor, event.profile, event.built_from) == (
        1, "worker:consolidate", first["profile"], first["built_from"])
    assert refresh(settings, user_id) == [], "nothing changed: nothing appended"

    updated = gateway.patch(f"/v1/memories/{tea}", json={"text": "I prefer black coffee now"},
                            params={"user_id": user_id})
    assert updated.status_code == 202, updated.text
    stale = profile(gateway, user_id, consistency_token=updated.json()["consistency_token"]).json()
    assert stale["version"] == 1 and stale["stale"] is True  # served until the next pass refreshes it
    assert [p["version"] for p in refresh(settings, user_id)] == [2]
    assert cited(version(gateway, user_id, 2), "preferences") == {"I prefer black coffee now": [tea]}

    assert gateway.delete(f"/v1/memories/{sister}", params={"user_id": user_id}).status_code == 202
    assert [p["version"] for p in refresh(settings, user_id)] == [3]
    third = version(gateway, user_id, 3)
    assert third["profile"]["people"] == [] and third["memory_count"] == 3
    assert sister not in {i for items in third["profile"].values() for item in items for i in item["memory_ids"]}

    from recallstack import Client, NotFound

    with Client(settings.gateway_url, user_id=user_id) as sdk:
        got = sdk.profile()
        assert got.version == 3 and got.section("instructions") == [{"text": "Always answer in French",
                                                                      "memory_ids": [rule]}]
        assert got.updated_at.tzinfo is not None and got == third

        erased = gateway.delete(f"/v1/users/{user_id}", params={"confirm": "true", "reason": "e2e"})
        assert erased.status_code == 202, erased.text
        gone = profile(gateway, user_id, consistency_token=erased.json()["consistency_token"])
        assert gone.status_code == 404, gone.text
        with pytest.raises(NotFound):
            sdk.profile()
    assert refresh(settings, user_id) == [], "an erased user gets no profile again"


def test_with_an_llm_the_worker_asks_it_and_falls_back_to_the_offline_profile(gateway, consolidate_stopped, user_id):
    """The LLM builder through the worker's own wiring, against a CANNED OpenAI-compatible endpoint (the
    stdlib server of tests/integration/test_llm_canned_server.py answers scripted JSON; no model runs)."""
    import json

    from tests.integration.test_llm_canned_server import CannedChatServer

    settings = consolidate_stopped
    server = CannedChatServer()
    env = {"RECALLSTACK_LLM_BASE_URL": server.base_url, "RECALLSTACK_LLM_MODEL": "canned-model",
           "RECALLSTACK_LLM_TIMEOUT_MS": "3000", "RECALLSTACK_LLM_MAX_RETRIES": "1"}
    try:
        tea, _ = add(gateway, user_id, "I prefer green tea to coffee")
        server.replies = [json.dumps({"preferences": [{"text": "Likes green tea", "memories": ["m1", "m7"]}],
                                      "people": [{"text": "Someone invented", "memories": []}]})]
        [done] = _worker_json(settings, env, "consolidate", "--once", "--user", user_id)["profiles_updated"]
        assert (done["version"], done["builder"]) == (1, "llm:canned-model"), done
        first = version(gateway, user_id, 1)
        assert first["builder"] == "llm:canned-model" and cited(first, "preferences") == {"Likes green tea": [tea]}
        assert first["profile"]["people"] == [], "an item citing no memory is dropped"
        assert any("m1 [-] I prefer green tea to coffee" in json.dumps(r) for r in server.requests)

        rule, _ = add(gateway, user_id, "Always answer in French")
        server.replies = [{"status": 500, "error": "the model is down"}]
        [done] = _worker_json(settings, env, "consolidate", "--once", "--user", user_id)["profiles_updated"]
        assert (done["version"], done["builder"]) == (2, "offline"), done
        second = version(gateway, user_id, 2)
        assert cited(second, "instructions") == {"Always answer in French": [rule]}
        assert cited(second, "preferences") == {"I prefer green tea to coffee": [tea]}
    finally:
        server.close()
