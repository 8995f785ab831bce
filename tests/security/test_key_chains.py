"""Key chains (issue 19 item 5a), against the running services through the base URL.

A key issued by a key (POST /v1/keys) is that key's child: it expires no later than its
parent (a later explicit `expires_at` is refused with 422 naming expires_at; none defaults
to the parent's) and it is revoked with it, transitively: revoking a key makes its
children and grandchildren answer 401 within the second a revocation takes, on every API,
for keys of other users too (an admin key's line). The chain is in the log
(ApiKeyIssued v2 `parent_key_id`, one ApiKeyRevoked per key of the line), so a restarted
process, or a read model rebuilt from the log, refuses the line as well."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import pytest

from adapters import postgres
from adapters.key_directory import KeyDirectory
from domain.events import ApiKeyIssued, ApiKeyRevoked
from domain.identity import MAX_KEY_CHAIN
from projectors.applied import Applied
from projectors.pg_projection import project
from projectors.pg_store import PgStore

pytestmark = pytest.mark.e2e

MISSING = "00000000-0000-4000-8000-000000000000"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def issue(gateway: httpx.Client, scopes: list[str], by: str | None = None, **body) -> dict:
    """A key issued by the key `by` (the session's admin key when None)."""
    answer = gateway.post("/v1/keys", json={"scopes": scopes, **body}, headers=bearer(by) if by else {})
    assert answer.status_code == 201, answer.text
    assert answer.json()["usable"] is True
    return answer.json()


def at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def test_a_key_issued_by_a_key_expires_no_later_than_it(gateway, log, user_id):
    in_an_hour = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    parent = issue(gateway, ["write"], user_id=user_id, expires_at=in_an_hour.isoformat())
    log.mark()
    later = gateway.post("/v1/keys", json={"scopes": ["read"], "expires_at": (in_an_hour + timedelta(minutes=1))
                                           .isoformat()}, headers=bearer(parent["key"]))
    assert later.status_code == 422, later.text
    error = later.json()["error"]
    assert error["details"]["field"] == "expires_at" and error["message"].startswith("expires_at: ")
    assert log.unchanged(), "a refused key was appended"

    child = issue(gateway, ["write"], by=parent["key"])  # no expiry asked: the parent's (write: it issues one too)
    assert at(child["expires_at"]) == in_an_hour and child["parent_key_id"] == parent["key_id"]
    earlier = in_an_hour - timedelta(minutes=10)
    kept = issue(gateway, ["read"], by=parent["key"], expires_at=earlier.isoformat())
    assert at(kept["expires_at"]) == earlier
    grandchild = issue(gateway, ["read"], by=child["key"])
    assert at(grandchild["expires_at"]) == in_an_hour and grandchild["parent_key_id"] == child["key_id"]
    listed = {k["key_id"]: k for k in gateway.get("/v1/keys", params={"user_id": user_id}).json()["results"]}
    assert at(listed[grandchild["key_id"]]["expires_at"]) == in_an_hour


def test_a_child_stops_working_when_its_parent_expires(gateway, user_id):
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    parent = issue(gateway, ["write"], user_id=user_id, expires_at=soon.isoformat())
    child = issue(gateway, ["read"], by=parent["key"])
    assert gateway.get("/v1/me", headers=bearer(child["key"])).json()["key_id"] == child["key_id"]
    time.sleep(max(0.0, (soon - datetime.now(timezone.utc)).total_seconds()) + 0.6)
    assert gateway.get("/v1/me", headers=bearer(child["key"])).status_code == 401


def refused_within_a_second(services, keys: list[dict], began: float) -> None:
    probes = (("GET", f"{services.query_api_url}/v1/memories"),  # each API, not only through the base URL
              ("DELETE", f"{services.command_api_url}/v1/memories/{MISSING}"))
    for key in keys:
        for method, url in probes:
            while (status := httpx.request(method, url, headers=bearer(key["key"])).status_code) != 401:
                assert status != 429, "rate limited while probing"
                assert time.monotonic() - began < 1.0, f"key {key['prefix']} still works on {url} after 1 s"
                time.sleep(0.02)


def test_revoking_a_key_revokes_every_key_it_issued(gateway, services, log, settings, user_id):
    log.mark()
    root = issue(gateway, ["write"], user_id=user_id, name="root")
    child = issue(gateway, ["write"], by=root["key"], name="child")
    grandchild = issue(gateway, ["read"], by=child["key"], name="grandchild")
    sibling = issue(gateway, ["write"], user_id=user_id, name="sibling (the admin's, not root's)")
    # An admin key's line crosses users: it issued a key for someone else.
    ops = issue(gateway, ["admin"], user_id=f"{user_id}-ops", name="ops admin")
    foreign = issue(gateway, ["write"], by=ops["key"], user_id=f"{user_id}-bob", name="issued by ops")
    line = [root, child, grandchild]
    for key in line + [sibling, foreign]:
        assert gateway.get("/v1/me", headers=bearer(key["key"])).status_code == 200  # cached as valid now

    began = time.monotonic()
    revoked = gateway.delete(f"/v1/keys/{root['key_id']}", params={"reason": "laptop lost"})
    assert revoked.status_code == 202, revoked.text
    refused_within_a_second(services, line, began)
    assert gateway.get("/v1/me", headers=bearer(sibling["key"])).status_code == 200
    assert gateway.get("/v1/me", headers=bearer(foreign["key"])).status_code == 200

    began = time.monotonic()
    by_itself = gateway.delete(f"/v1/keys/{ops['key_id']}", headers=bearer(ops["key"]))  # a key revokes itself
    assert by_itself.status_code == 202, by_itself.text
    refused_within_a_second(services, [ops, foreign], began)

    # The log says so: one ApiKeyRevoked per key of the line, caused by the root's.
    events = log.events(revoked.json()["consistency_token"])
    revocations = {e.key_id: e for e in events if isinstance(e, ApiKeyRevoked)}
    first = revocations[root["key_id"]]
    assert first.reason == "laptop lost"
    for key in (child, grandchild):
        assert revocations[key["key_id"]].causation_id == first.event_id
        assert root["key_id"] in revocations[key["key_id"]].reason
    issued = {e.key_id: e for e in events if isinstance(e, ApiKeyIssued)}
    assert issued[grandchild["key_id"]].parent_key_id == child["key_id"]
    assert issued[child["key_id"]].parent_key_id == root["key_id"]
    listed = {k["key_id"]: k for k in gateway.get("/v1/keys", params={"user_id": user_id, "include_revoked": "true"})
              .json()["results"]}
    assert all(listed[k["key_id"]]["revoked_at"] for k in line) and listed[sibling["key_id"]]["revoked_at"] is None
    assert gateway.delete(f"/v1/keys/{child['key_id']}").status_code == 409  # already revoked, by the cascade

    # A restarted process (no cache) refuses the line; so does a read model rebuilt from the
    # log's events (what a replay does; the session's admin key, which issued root and sibling,
    # copied in as the read model has it), even without the cascade's own events.
    ours = {k["key_id"] for k in line + [sibling]}
    from_log = [e for e in events if isinstance(e, (ApiKeyIssued, ApiKeyRevoked)) and e.key_id in ours]
    secrets = [k["key"] for k in line + [sibling]]
    issues_only = [e for e in from_log if isinstance(e, ApiKeyIssued)]
    assert asyncio.run(rebuilt_and_checked(settings, issues_only, secrets, root["parent_key_id"])) == [True] * 4
    for keep_cascade in (True, False):
        replayed = [e for e in from_log if keep_cascade or not isinstance(e, ApiKeyRevoked)
                    or e.key_id == root["key_id"]]
        works = asyncio.run(rebuilt_and_checked(settings, replayed, secrets, root["parent_key_id"]))
        assert works == [False, False, False, True], (keep_cascade, works)
    fresh = asyncio.run(checked_live(settings, [k["key"] for k in line + [sibling]]))
    assert fresh == [False, False, False, True]


async def checked_live(settings, secrets: list[str]) -> list[bool]:
    pool = await postgres.create_pool(settings.pg_dsn, min_size=1, max_size=2)
    try:
        directory = KeyDirectory(lambda: pool)
        return [await directory.principal(s) is not None for s in secrets]
    finally:
        await pool.close()


async def rebuilt_and_checked(settings, events, secrets: list[str], issuer_key_id: str) -> list[bool]:
    """Project `events` into a scratch copy of the read model's schema (with the live row of
    the key that issued the test's first keys) and ask a fresh key directory about `secrets`
    there: which of them work."""
    schema = f"rs_test_chains_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await postgres._migrate_schema(conn, schema, 384)
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {schema}.api_keys SELECT * FROM public.api_keys WHERE key_id = $1::uuid",
                               issuer_key_id)
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            for event in events:
                await project(PgStore(conn), Applied(0, 0, event))
        pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2,
                                         server_settings={"search_path": f"{schema},public"})
        try:
            directory = KeyDirectory(lambda: pool)
            return [await directory.principal(s) is not None for s in secrets]
        finally:
            await pool.close()
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def test_a_chain_is_at_most_max_key_chain_keys_deep(gateway, user_id):
    key = issue(gateway, ["write"], user_id=user_id)  # the admin key's child: generation 2
    depth = 1
    while depth + 1 < MAX_KEY_CHAIN:
        key = issue(gateway, ["write"], by=key["key"])
        depth += 1
    assert gateway.get("/v1/me", headers=bearer(key["key"])).status_code == 200  # the deepest allowed works
    refused = gateway.post("/v1/keys", json={"scopes": ["read"]}, headers=bearer(key["key"]))
    assert refused.status_code == 403 and "generations" in refused.json()["error"]["message"]
