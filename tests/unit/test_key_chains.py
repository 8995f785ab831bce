"""Key chains (pure, issue 19): a key issued by a key expires no later than its parent and
works only while its whole chain does; the record of a chain from the read model's rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from adapters.key_directory import KeyRecord
from domain.identity import MAX_KEY_CHAIN, ChainTooDeep, ExpiryAfterParent, Principal, child_expiry

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def test_a_child_expires_no_later_than_its_parent():
    assert child_expiry(None, None) is None                      # a root (or never-expiring) parent
    assert child_expiry(NOW + HOUR, None) == NOW + HOUR
    assert child_expiry(None, NOW + HOUR) == NOW + HOUR          # none asked: the parent's expiry
    assert child_expiry(NOW, NOW + HOUR) == NOW                  # earlier: kept
    assert child_expiry(NOW + HOUR, NOW + HOUR) == NOW + HOUR    # the same instant: fine
    with pytest.raises(ExpiryAfterParent, match="^expires_at: "):
        child_expiry(NOW + 2 * HOUR, NOW + HOUR)


def test_issue_child_names_the_parent_and_bounds_the_chain():
    assert Principal.local().issue_child() == (None, None)       # the no-auth mode: no parent
    key = Principal("alice", ("read", "write"), "rsk_aaaaaaaa", key_id="k1", expires_at=NOW, chain_depth=3)
    assert key.issue_child() == ("k1", NOW)
    deep = Principal("alice", ("read",), "rsk_aaaaaaaa", key_id="k1", chain_depth=MAX_KEY_CHAIN - 1)
    with pytest.raises(ChainTooDeep):
        deep.issue_child()


def row(parent=None, expires_at=None, revoked=False, user="alice"):
    return {"key_id": uuid.uuid4(), "user_id": user, "prefix": "rsk_aaaaaaaa", "scopes": ["read"],
            "expires_at": expires_at, "revoked_at": NOW if revoked else None, "parent_key_id": parent}


def chain(*rows):
    """rows from the key up to its root, each linked to the next."""
    linked = [dict(r) for r in rows]
    for child, parent in zip(linked, linked[1:]):
        child["parent_key_id"] = parent["key_id"]
    return linked


def test_a_key_works_only_while_its_whole_chain_does():
    assert KeyRecord.of_chain([]) is None
    root = KeyRecord.of_chain([row()])
    assert root.principal(NOW) == Principal("alice", ("read",), "rsk_aaaaaaaa", key_id=root.key_id)
    grandchild = KeyRecord.of_chain(chain(row(), row(user="bob"), row(user="ops")))
    assert grandchild.principal(NOW).chain_depth == 2 and grandchild.principal(NOW).user_id == "alice"
    assert KeyRecord.of_chain(chain(row(), row(), row(revoked=True))).principal(NOW) is None  # a revoked root
    assert KeyRecord.of_chain(chain(row(), row(revoked=True), row())).principal(NOW) is None
    expiring = KeyRecord.of_chain(chain(row(expires_at=NOW + 2 * HOUR), row(expires_at=NOW + HOUR), row()))
    assert expiring.expires_at == NOW + HOUR and expiring.principal(NOW).expires_at == NOW + HOUR
    assert expiring.principal(NOW + HOUR) is None                  # the parent's expiry ends the child
    assert KeyRecord.of_chain(chain(row(), row(expires_at=NOW - HOUR))).principal(NOW) is None
    # The issuer is not in the read model (erased, or a chain longer than the walk): refused.
    assert KeyRecord.of_chain([row(parent=uuid.uuid4())]).principal(NOW) is None
