"""Sharing needs an existing grantee (issue 19 item 5b): a memory shared with a user id that
nobody registered would be read by whoever registers that id later. Such a share is
refused with 422 naming grantee_user_id and appends nothing; once the user is registered
(POST /v1/users, or their first API key) the same share is accepted."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def owner(gateway, user_id):
    key = gateway.post("/v1/keys", json={"user_id": user_id, "scopes": ["write"]})
    assert key.status_code == 201, key.text
    added = gateway.post("/v1/memories", json={"text": "the door code is 4321"}, headers=bearer(key.json()["key"]))
    assert added.status_code == 202, added.text
    return {"user": user_id, "key": key.json()["key"], "memory": added.json()["results"][0]["id"],
            "token": added.json()["consistency_token"]}


def test_sharing_with_an_unknown_user_is_refused_and_appends_nothing(gateway, owner, log):
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    headers = {**bearer(owner["key"]), "X-Consistency-Token": owner["token"]}
    log.mark()
    for via in (headers, {"X-Consistency-Token": owner["token"]}):  # the owner's key; the admin key for the owner
        params = {} if via is headers else {"user_id": owner["user"]}
        refused = gateway.post(f"/v1/memories/{owner['memory']}/shares", json={"grantee_user_id": ghost},
                               headers=via, params=params)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["details"] == {"field": "grantee_user_id"} and error["message"].startswith("grantee_user_id: ")
        assert error["code"] == "unknown_user"
    assert log.unchanged(), "a refused share was appended"
    # The ghost registers later: nothing was shared with it.
    registered = gateway.post("/v1/users", json={"user_id": ghost})
    assert registered.status_code == 202, registered.text
    shared = gateway.get("/v1/shared", params={"user_id": ghost,
                                               "consistency_token": registered.json()["consistency_token"]})
    assert shared.status_code == 200 and shared.json()["results"] == []
    # Now the share is accepted, and the grantee reads the memory.
    accepted = gateway.post(f"/v1/memories/{owner['memory']}/shares", json={"grantee_user_id": ghost},
                            headers=headers)
    assert accepted.status_code == 202, accepted.text
    seen = gateway.get(f"/v1/memories/{owner['memory']}",
                       params={"user_id": ghost, "consistency_token": accepted.json()["consistency_token"]})
    assert seen.status_code == 200 and seen.json()["shared"]["by"] == owner["user"]


def test_a_stranger_learns_nothing_about_users_from_someone_elses_memory(gateway, owner, log):
    """The grantee is checked after ownership: sharing another user's memory is 404 whether
    or not the grantee exists."""
    stranger = gateway.post("/v1/keys", json={"user_id": f"{owner['user']}-x", "scopes": ["write"]}).json()
    log.mark()
    for grantee in (owner["user"] + "-x", f"ghost-{uuid.uuid4().hex[:8]}"):
        answer = gateway.post(f"/v1/memories/{owner['memory']}/shares", json={"grantee_user_id": grantee},
                              headers={**bearer(stranger["key"]), "X-Consistency-Token": owner["token"]})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", answer.text
    assert log.unchanged()
