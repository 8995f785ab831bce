"""Authentication against the real Postgres (the identity projection the services check keys
against) and the real Redis (rate limits): the identity events projected, the key
directory's answers and cache, the Authenticator's statuses in a small FastAPI app."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi import Depends, FastAPI

from adapters.http_api import install_error_handlers
from adapters.http_auth import Authenticator
from adapters.key_directory import KeyDirectory, PgIdentityLookup
from adapters.rate_limit import RateLimiter
from domain.events import ApiKeyIssued, ApiKeyRevoked, MemoryCreated, MemoryShared, MemoryUnshared, UserRegistered
from domain.identity import Principal, issue_key
from projectors.pg_projector import PgProjector
from projectors.applied import Applied

pytestmark = pytest.mark.integration

TOPIC = f"test-identity-{uuid.uuid4().hex[:6]}"  # keeps these offsets apart from the real projection's


class Offsets:
    def __init__(self):
        self.next = 0

    def __call__(self, *events) -> list[Applied]:
        out = []
        for event in events:
            self.next += 1
            out.append(Applied(0, self.next, event))
        return out


def key_events(user_id: str, scopes=("write",), expires_at=None, parent_key_id=None):
    issued = issue_key(scopes)
    return issued, ApiKeyIssued(user_id=user_id, actor="operator:test", key_id=issued.key_id, prefix=issued.prefix,
                                key_hash=issued.key_hash, scopes=issued.scopes, name="t", expires_at=expires_at,
                                parent_key_id=parent_key_id)


async def test_identity_events_are_projected_idempotently(pool, user_id):
    projector, at = PgProjector(pool), Offsets()
    issued, event = key_events(user_id)
    batch = at(UserRegistered(user_id=user_id, actor="operator:test", display_name="Test"), event)
    await projector.apply_batch(TOPIC, batch)
    await projector.apply_batch(TOPIC, batch)  # redelivered
    row = await pool.fetchrow("SELECT * FROM api_keys WHERE user_id = $1", user_id)
    assert row["key_hash"] == issued.key_hash and row["prefix"] == issued.prefix and list(row["scopes"]) == [
        "read", "write"]
    assert issued.secret not in str(dict(row))  # only the hash is stored
    assert await pool.fetchval("SELECT display_name FROM users WHERE user_id = $1", user_id) == "Test"
    lookup = PgIdentityLookup(lambda: pool)
    assert await lookup.key(issued.key_id) == (user_id, False) and await lookup.user_registered(user_id)
    await projector.apply_batch(TOPIC, at(ApiKeyRevoked(user_id=user_id, actor="operator:test",
                                                        key_id=issued.key_id, reason="lost")))
    assert await lookup.key(issued.key_id) == (user_id, True)
    other = ApiKeyRevoked(user_id="someone-else", actor="operator:test", key_id=key_events(user_id)[0].key_id)
    await projector.apply_batch(TOPIC, at(other))  # a revocation naming another owner revokes nothing


async def test_shares_only_of_the_owners_memory(pool, user_id):
    projector, at = PgProjector(pool), Offsets()
    memory = MemoryCreated(user_id=user_id, actor="t", memory_id=str(uuid.uuid4()), text="shared text",
                           embedding=tuple([1.0] + [0.0] * 383), embedding_model="m",
                           happened_at=datetime.now(timezone.utc))
    forged = MemoryShared(user_id="intruder", actor="t", memory_id=memory.memory_id, grantee_user_id="intruder")
    real = MemoryShared(user_id=user_id, actor="t", memory_id=memory.memory_id, grantee_user_id="friend")
    await projector.apply_batch(TOPIC, at(memory, forged, real, real))
    rows = await pool.fetch("SELECT user_id, grantee_user_id FROM memory_shares WHERE memory_id = $1::uuid",
                            memory.memory_id)
    assert [(r["user_id"], r["grantee_user_id"]) for r in rows] == [(user_id, "friend")]
    await projector.apply_batch(TOPIC, at(MemoryUnshared(user_id=user_id, actor="t", memory_id=memory.memory_id,
                                                         grantee_user_id="friend")))
    assert await pool.fetchval("SELECT count(*) FROM memory_shares WHERE memory_id = $1::uuid",
                               memory.memory_id) == 0


async def test_key_directory_answers_and_caches_briefly(pool, user_id):
    projector, at = PgProjector(pool), Offsets()
    now = [100.0]
    directory = KeyDirectory(lambda: pool, ttl_s=0.5, clock=lambda: now[0])
    issued, event = key_events(user_id)
    assert await directory.principal(issued.secret) is None  # not yet issued
    await projector.apply_batch(TOPIC, at(event))
    assert await directory.principal(issued.secret) is None  # the negative answer is cached 0.5 s
    now[0] += 0.6
    principal = await directory.principal(issued.secret)
    assert principal == Principal(user_id, ("read", "write"), issued.prefix, key_id=issued.key_id)
    await projector.apply_batch(TOPIC, at(ApiKeyRevoked(user_id=user_id, actor="t", key_id=issued.key_id)))
    now[0] += 0.6
    assert await directory.principal(issued.secret) is None
    expired, event = key_events(user_id, expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    await projector.apply_batch(TOPIC, at(event))
    assert await directory.principal(expired.secret) is None


async def test_a_key_works_only_while_its_chain_does(pool, user_id):
    """Projected ApiKeyIssued v2 events link a key to its parent; the directory walks the chain,
    and the lookup the command side uses finds every unrevoked descendant (issue 19)."""
    projector, at = PgProjector(pool), Offsets()
    now = [100.0]
    directory = KeyDirectory(lambda: pool, ttl_s=0.5, clock=lambda: now[0])
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    root, e_root = key_events(user_id, scopes=("admin",), expires_at=soon)
    child, e_child = key_events(f"{user_id}-b", parent_key_id=root.key_id)
    grandchild, e_grand = key_events(f"{user_id}-b", parent_key_id=child.key_id)
    other, e_other = key_events(user_id)
    await projector.apply_batch(TOPIC, at(e_root, e_child, e_grand, e_other))
    found = await directory.principal(grandchild.secret)
    assert found.user_id == f"{user_id}-b" and found.chain_depth == 2 and found.expires_at == soon
    lookup = PgIdentityLookup(lambda: pool)
    assert await lookup.descendants(root.key_id) == [(child.key_id, f"{user_id}-b"),
                                                     (grandchild.key_id, f"{user_id}-b")]
    assert await lookup.descendants(other.key_id) == []
    # Only the root's revocation is projected: its whole line stops working.
    await projector.apply_batch(TOPIC, at(ApiKeyRevoked(user_id=user_id, actor="t", key_id=root.key_id)))
    now[0] += 0.6
    for secret in (root.secret, child.secret, grandchild.secret):
        assert await directory.principal(secret) is None
    assert (await directory.principal(other.secret)).key_id == other.key_id
    # An issuer missing from the read model (erased) breaks the chain too.
    orphan, e_orphan = key_events(user_id, parent_key_id=str(uuid.uuid4()))
    await projector.apply_batch(TOPIC, at(e_orphan))
    assert await directory.principal(orphan.secret) is None


def small_app(auth: Authenticator) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/who")
    async def who(principal: Principal = Depends(auth)):
        return {"user_id": principal.user_id}
    return app


async def test_rate_limit_answers_429_with_retry_after_per_key(pool, settings, user_id):
    projector, at = PgProjector(pool), Offsets()
    first, e1 = key_events(user_id)
    second, e2 = key_events(user_id)
    await projector.apply_batch(TOPIC, at(e1, e2))
    limiter = RateLimiter(settings.redis_url, per_minute=5, per_user_per_minute=100)
    app = small_app(Authenticator(KeyDirectory(lambda: pool), limiter))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        statuses = [(await client.get("/v1/who", headers={"Authorization": f"Bearer {first.secret}"})).status_code
                    for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        refused = await client.get("/v1/who", headers={"X-API-Key": first.secret})
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 12
        assert refused.json()["error"]["code"] == "rate_limited"
        other = await client.get("/v1/who", headers={"Authorization": f"Bearer {second.secret}"})
        assert other.status_code == 200 and other.json() == {"user_id": user_id}  # per key
        admin, event = key_events(user_id, scopes=("admin",))
        await projector.apply_batch(TOPIC, at(event))
        for _ in range(8):  # admin keys (the operator's) are not limited
            assert (await client.get("/v1/who", headers={"Authorization": f"Bearer {admin.secret}"})).status_code == 200
    await limiter.close()


async def test_a_users_keys_share_one_limit(pool, settings, user_id):
    projector, at = PgProjector(pool), Offsets()
    keys = [key_events(user_id) for _ in range(3)]
    await projector.apply_batch(TOPIC, at(*(event for _, event in keys)))
    limiter = RateLimiter(settings.redis_url, per_minute=5, per_user_per_minute=6)
    app = small_app(Authenticator(KeyDirectory(lambda: pool), limiter))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        statuses = [(await client.get("/v1/who", headers={"Authorization": f"Bearer {keys[i % 3][0].secret}"}))
                    for i in range(7)]
        assert [a.status_code for a in statuses] == [200] * 6 + [429]
        refused = statuses[-1].json()["error"]
        assert refused["details"] == {"limit": "user"} and user_id in refused["message"]
    await limiter.close()


async def test_failed_authentications_are_limited_per_address(pool, settings, user_id):
    projector, at = PgProjector(pool), Offsets()
    valid, event = key_events(user_id)
    await projector.apply_batch(TOPIC, at(event))
    limiter = RateLimiter(settings.redis_url, per_minute=100, auth_failures_per_minute=3)
    app = small_app(Authenticator(KeyDirectory(lambda: pool), limiter))
    attacker = {"X-Real-IP": f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"}  # believed from loopback
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        async def who(key: str, extra: dict) -> httpx.Response:
            return await client.get("/v1/who", headers={"Authorization": f"Bearer {key}", **extra})
        wrong = ["rsk_" + "A" * 43, "not-a-key", "rsk_" + "B" * 43]
        assert [(await who(k, attacker)).status_code for k in wrong] == [401, 401, 401]
        for key in ("rsk_" + "C" * 43, valid.secret):  # blocked before the key is looked at, a valid one too
            refused = await who(key, attacker)
            assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 21
            assert refused.json()["error"]["code"] == "too_many_failed_authentications"
        other = {"X-Real-IP": f"2001:db8::{uuid.uuid4().hex[:4]}"}
        assert (await who(valid.secret, other)).status_code == 200  # another address is not affected
        assert (await client.get("/v1/who")).status_code == 401      # no key at all: not a failed guess
    # Another process (no local memory of the block) refuses it too, from Redis.
    fresh = RateLimiter(settings.redis_url, per_minute=100, auth_failures_per_minute=3)
    app = small_app(Authenticator(KeyDirectory(lambda: pool), fresh))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        refused = await client.get("/v1/who", headers={"Authorization": f"Bearer {valid.secret}", **attacker})
        assert refused.status_code == 429
    await limiter.close()
    await fresh.close()


async def test_rate_limit_fails_open_when_redis_is_unreachable(pool, user_id):
    projector, at = PgProjector(pool), Offsets()
    issued, event = key_events(user_id)
    await projector.apply_batch(TOPIC, at(event))
    limiter = RateLimiter("redis://127.0.0.1:1/0", per_minute=1)  # nothing listens on port 1
    app = small_app(Authenticator(KeyDirectory(lambda: pool), limiter))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for _ in range(3):
            assert (await client.get("/v1/who", headers={"Authorization": f"Bearer {issued.secret}"})).status_code == 200
    await limiter.close()


async def test_no_auth_mode_acts_for_the_named_user():
    app = small_app(Authenticator(None, None, required=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/v1/who")).json() == {"user_id": None}  # the user comes from the request
