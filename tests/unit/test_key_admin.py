"""The operator's key use cases (application/key_admin.py) on fakes: an in-memory log and an
identity read model over dicts whose projection either keeps up or has stalled. The real wiring
(bootstrap.key_admin) is exercised by tests/e2e/test_identity.py and test_cli_json.py."""

from __future__ import annotations

import pytest

from application import key_admin
from application.key_admin import KeyAdmin, KeyCommandFailed
from domain.events import ApiKeyIssued, ApiKeyRevoked, UserRegistered
from tests.unit.fakes import FakePublisher


class Identity:
    """The identity read model as a dict: key_id -> (user_id, prefix, revoked)."""

    def __init__(self, keys: dict[str, tuple[str, str, bool]] | None = None):
        self.keys = dict(keys or {})

    async def key(self, key_id):
        found = self.keys.get(key_id)
        return (found[0], found[2]) if found else None

    async def descendants(self, key_id):
        return []

    async def user_registered(self, user_id):
        return any(owner == user_id for owner, _prefix, _revoked in self.keys.values())

    async def named(self, ref):
        return [(key_id, owner) for key_id, (owner, prefix, _revoked) in self.keys.items() if ref in (key_id, prefix)]

    async def listing(self, user_id, include_revoked):
        return [{"key_id": key_id, "user_id": owner} for key_id, (owner, _prefix, revoked) in self.keys.items()
                if (user_id is None or owner == user_id) and (include_revoked or not revoked)]

    async def principal(self, secret):
        return None


def admin(identity: Identity, projected: bool = True) -> KeyAdmin:
    publisher = FakePublisher()

    async def applied():  # a projector that has applied the whole log, or nothing
        return {p: len(events) - 1 for p, events in enumerate(publisher.partitions) if events} if projected else {}

    return KeyAdmin(identity, applied, publisher.topic, publisher=publisher, identity=identity)


async def test_create_registers_a_new_user_issues_the_key_as_the_operator_and_waits_for_the_projection():
    ports = admin(Identity())
    issued = await key_admin.create(ports, "alice", ["write"], name="laptop")
    registered, event = ports.publisher.events
    assert isinstance(registered, UserRegistered) and isinstance(event, ApiKeyIssued)
    assert (event.user_id, event.actor, event.key_id, event.name) == ("alice", "operator:cli", issued.key_id, "laptop")
    assert event.key_hash == issued.key_hash != issued.secret and issued.scopes == ("read", "write")
    assert ports.context().embedder is None  # the key use cases embed nothing


async def test_a_stalled_projector_fails_the_command_saying_what_to_run():
    ports = admin(Identity(), projected=False)
    with pytest.raises(KeyCommandFailed, match="recallstack projector postgres"):
        await key_admin.create(ports, "alice", ["read"], timeout_s=0.05)


async def test_revoke_names_the_key_by_prefix_and_appends_its_revocation():
    ports = admin(Identity({"k1": ("alice", "rsk_AbCdEfGh", False)}))
    assert await key_admin.revoke(ports, "rsk_AbCdEfGh", "lost") == {"key_id": "k1", "user_id": "alice",
                                                                     "revoked": True}
    [event] = ports.publisher.events
    assert isinstance(event, ApiKeyRevoked) and (event.key_id, event.user_id, event.reason) == ("k1", "alice", "lost")


async def test_revoke_refuses_an_unknown_ambiguous_or_revoked_key_and_appends_nothing():
    ports = admin(Identity({"k1": ("alice", "rsk_same", False), "k2": ("bob", "rsk_same", False),
                            "k3": ("carol", "rsk_gone", True)}))
    with pytest.raises(KeyCommandFailed, match="no API key with id or prefix 'rsk_none'"):
        await key_admin.revoke(ports, "rsk_none")
    with pytest.raises(KeyCommandFailed, match="2 keys have the prefix 'rsk_same'"):
        await key_admin.revoke(ports, "rsk_same")
    with pytest.raises(KeyCommandFailed, match="already revoked"):
        await key_admin.revoke(ports, "rsk_gone")
    assert ports.publisher.events == []


async def test_listing_hides_revoked_keys_unless_asked():
    ports = admin(Identity({"k1": ("alice", "rsk_a", False), "k2": ("alice", "rsk_b", True)}))
    assert [k["key_id"] for k in await key_admin.listing(ports, "alice", False)] == ["k1"]
    assert [k["key_id"] for k in await key_admin.listing(ports, None, True)] == ["k1", "k2"]
