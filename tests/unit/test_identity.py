"""API keys and principals (pure): format, hashing, scopes, who may act on whose data."""

import pytest

from domain.identity import (IssuedKey, InvalidScopes, Principal, hash_key, issue_key, looks_like_key, matches,
                             normalise_scopes)


def test_a_key_has_256_random_bits_a_visible_prefix_and_only_its_hash_is_kept():
    key = issue_key(["read"], token_bytes=lambda n: bytes(range(n)))
    assert isinstance(key, IssuedKey) and looks_like_key(key.secret)
    assert key.prefix == key.secret[:12] and key.prefix.startswith("rsk_")
    assert key.key_hash == hash_key(key.secret) and key.secret not in key.key_hash
    assert matches(key.secret, key.key_hash)
    assert not matches(key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B"), key.key_hash)
    assert issue_key(["read"]).secret != issue_key(["read"]).secret


@pytest.mark.parametrize("asked, held", [(["read"], ("read",)), (["write"], ("read", "write")),
                                         (["admin"], ("read", "write", "admin")),
                                         (["write", "read", "write"], ("read", "write"))])
def test_scopes_include_what_they_imply_in_a_fixed_order(asked, held):
    assert normalise_scopes(asked) == held


@pytest.mark.parametrize("asked, named", [([], "at least one"), (["root"], "root"), (["read", "delete"], "delete")])
def test_unknown_or_missing_scopes_are_refused_by_name(asked, named):
    with pytest.raises(InvalidScopes, match=named):
        normalise_scopes(asked)


def test_a_key_acts_on_its_own_user_within_its_scopes_an_admin_on_anyone():
    reader = Principal("alice", normalise_scopes(["read"]), "rsk_abcdefgh")
    writer = Principal("alice", normalise_scopes(["write"]), "rsk_ijklmnop")
    admin = Principal("ops", normalise_scopes(["admin"]), "rsk_qrstuvwx")
    assert reader.may("read", "alice") and not reader.may("write", "alice")
    assert not reader.may("read", "bob") and not writer.may("write", "bob")
    assert writer.may("write", "alice") and writer.may("read", "alice")
    assert admin.may("write", "bob") and admin.may("read", "alice")
    assert writer.actor == "key:rsk_ijklmnop"
    assert Principal("me", ("read", "write")).actor == "user:me", "the local no-auth mode acts as the user"
    with pytest.raises(ValueError, match="action"):
        reader.may("delete", "alice")


def test_acting_user_defaults_to_the_keys_user_and_refuses_others():
    from domain.identity import NotPermitted

    alice = Principal("alice", ("read", "write"), "rsk_aaaaaaaa")
    assert alice.acting_user(None, "write") == "alice" and alice.acting_user("alice", "read") == "alice"
    with pytest.raises(NotPermitted) as other:
        alice.acting_user("bob", "read")
    assert other.value.kind == "user" and "alice" in str(other.value) and "bob" not in str(other.value)
    reader = Principal("alice", ("read",), "rsk_bbbbbbbb")
    with pytest.raises(NotPermitted) as scope:
        reader.acting_user(None, "write")
    assert scope.value.kind == "scope"
    admin = Principal("ops", ("read", "write", "admin"), "rsk_cccccccc")
    assert admin.acting_user("bob", "write") == "bob" and admin.acting_user("ops", "read") == "ops"
    with pytest.raises(NotPermitted) as unnamed:
        admin.acting_user(None, "read")  # an admin key acts for anyone: it must say for whom
    assert unnamed.value.kind == "user_required"
    assert admin.actor_for("bob") == "key:rsk_cccccccc"


def test_the_local_principal_needs_a_named_user():
    from domain.identity import NotPermitted

    local = Principal.local()
    assert local.acting_user("bob", "write") == "bob" and local.actor_for("bob") == "user:bob"
    with pytest.raises(NotPermitted) as missing:
        local.acting_user(None, "read")
    assert missing.value.kind == "user_required"


def test_http_mapping_of_refusals():
    from adapters.http_api import ApiError
    from adapters.http_auth import acting_user

    alice = Principal("alice", ("read", "write"), "rsk_aaaaaaaa")
    with pytest.raises(ApiError) as collection:
        acting_user(alice, "bob", "read")
    assert collection.value.status == 403
    with pytest.raises(ApiError) as one:
        acting_user(alice, "bob", "read", one_memory=True)
    assert one.value.status == 404 and one.value.code == "not_found"  # never says whose it is
    with pytest.raises(ApiError) as missing:
        acting_user(Principal.local(), None, "read")
    assert missing.value.status == 422 and missing.value.details == {"field": "user_id"}
