"""Rate limits (issue 19 items 5c and 5d) on a real API process with small limits.

The session's services run with the default limits (1,000 a minute), which a test cannot
exhaust without slowing everything else, so this module starts one more query API process
on a spare port with RECALLSTACK_RATE_LIMIT_PER_MIN=5, RATE_LIMIT_PER_USER_PER_MIN=8 and
AUTH_FAILURES_PER_MIN=4, trusting forwarding headers from 127.0.0.1 only. It shares the
session's Postgres (keys) and Redis (buckets): its users and addresses are this module's own.

- A user's keys share one limit: minting more keys does not escape it. Admin keys are not
  limited and do not spend the user's tokens when they act for a user.
- Failed authentications are limited per client address: after the allowance, every
  request from that address that presents a key gets 429 with Retry-After, a valid key
  included; other addresses are unaffected; a client that is not the trusted proxy cannot
  choose its address with X-Real-IP / X-Forwarded-For.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from tests.e2e.query_api_process import query_api_process

pytestmark = pytest.mark.e2e

PER_KEY, PER_USER, FAILURES = 5, 8, 4
BAD_KEYS = ["rsk_" + "A" * 43, "not-a-key", "rsk_" + "B" * 43, "rsk_" + "C" * 43]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def limited_api(services):
    """A query API process with small limits; stopped at the end of the module."""
    env = {"RECALLSTACK_RATE_LIMIT_PER_MIN": str(PER_KEY), "RECALLSTACK_RATE_LIMIT_PER_USER_PER_MIN": str(PER_USER),
           "RECALLSTACK_AUTH_FAILURES_PER_MIN": str(FAILURES), "RECALLSTACK_TRUSTED_PROXIES": "127.0.0.1/32"}
    with query_api_process(services, env, "rate-limits") as url:
        yield url


def keys_of(gateway: httpx.Client, user: str, n: int, scopes=("write",)) -> list[str]:
    keys = []
    for _ in range(n):
        answer = gateway.post("/v1/keys", json={"user_id": user, "scopes": list(scopes)})
        assert answer.status_code == 201, answer.text
        keys.append(answer.json()["key"])
    return keys


def test_a_users_keys_share_one_limit(gateway, limited_api, user_id):
    keys = keys_of(gateway, user_id, 3)
    other = keys_of(gateway, f"{user_id}-other", 1)[0]
    with httpx.Client(base_url=limited_api, timeout=10) as api:
        statuses = [api.get("/v1/me", headers=bearer(keys[i % 3])) for i in range(PER_USER + 1)]
        assert [a.status_code for a in statuses] == [200] * PER_USER + [429]  # no key used more than 3 times
        refused = statuses[-1]
        assert refused.json()["error"]["details"] == {"limit": "user"} and user_id in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60 // PER_USER + 1
        fresh = keys_of(gateway, user_id, 1)[0]  # a key minted now does not escape it
        assert api.get("/v1/me", headers=bearer(fresh)).status_code == 429
        assert api.get("/v1/me", headers=bearer(other)).status_code == 200  # another user is not affected
        # The admin key is not limited, and acting for the user spends none of the user's tokens.
        admin = {"Authorization": gateway.headers["Authorization"]}
        for _ in range(PER_USER + 2):
            assert api.get("/v1/memories", params={"user_id": user_id, "page_size": 1}, headers=admin).status_code == 200


def test_one_key_has_its_own_limit_below_the_users(gateway, limited_api, user_id):
    [key] = keys_of(gateway, user_id, 1)
    with httpx.Client(base_url=limited_api, timeout=10) as api:
        statuses = [api.get("/v1/me", headers=bearer(key)) for _ in range(PER_KEY + 1)]
        assert [a.status_code for a in statuses] == [200] * PER_KEY + [429]
        assert statuses[-1].json()["error"]["details"] == {"limit": "key"}


def test_failed_authentications_are_limited_per_client_address(gateway, limited_api, user_id):
    [valid] = keys_of(gateway, user_id, 1)
    attacker = {"X-Real-IP": f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"}  # set by the proxy
    neighbour = {"X-Real-IP": f"2001:db8::{uuid.uuid4().hex[:4]}:1"}
    with httpx.Client(base_url=limited_api, timeout=10) as api:
        for key in BAD_KEYS:
            assert api.get("/v1/me", headers={**bearer(key), **attacker}).status_code == 401
        for key in (BAD_KEYS[0], valid):  # refused before the key is looked at: a valid key too
            refused = api.get("/v1/me", headers={**bearer(key), **attacker})
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "too_many_failed_authentications"
            assert refused.json()["error"]["details"] == {"limit": "address"}
            assert 1 <= int(refused.headers["Retry-After"]) <= 60 // FAILURES + 1
        assert api.get("/v1/me", headers={**bearer(valid), **neighbour}).status_code == 200
        assert api.get("/v1/me", headers=attacker).status_code == 401  # no key at all: not a guess, not blocked


def test_a_client_cannot_choose_its_address(limited_api, settings):
    """From 127.0.0.2 (not the trusted proxy) X-Real-IP and X-Forwarded-For are ignored: rotating
    them does not give the client a fresh allowance."""
    redis.Redis.from_url(settings.redis_url).delete("rs:authfail:127.0.0.2")  # this test's address, clean
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=limited_api, timeout=10, transport=transport) as api:
        for n, key in enumerate(BAD_KEYS):
            forged = {"X-Real-IP": f"192.0.2.{n + 1}", "X-Forwarded-For": f"198.51.100.{n + 1}"}
            assert api.get("/v1/me", headers={**bearer(key), **forged}).status_code == 401
        refused = api.get("/v1/me", headers={**bearer(BAD_KEYS[0]), "X-Real-IP": "192.0.2.99"})
        assert refused.status_code == 429 and "127.0.0.2" in refused.json()["error"]["message"]
