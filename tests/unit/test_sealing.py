"""Sealing events with a user's data key (domain/sealing.py, adapters/kafka_codec.py): pure."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adapters import kafka_codec
from domain import sealing
from domain.events import EVENT_TYPES, ApiKeyIssued, MemoryAccessed, MemoryCreated, UserErased, UserRegistered
from domain.sealing import DataKey
from projectors.batch_order import hoist_creates
from projectors.applied import Applied

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
MARKER = "zebra-marker-7f3a"


def created(user="u1", text=f"my secret is {MARKER}", memory_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"):
    return MemoryCreated(user_id=user, actor=f"user:{user}", memory_id=memory_id, text=text,
                         embedding=(0.5, -0.25, 0.125), embedding_model="m",
                         happened_at=datetime(2023, 5, 8, tzinfo=timezone.utc), metadata={"note": MARKER})


def key(user="u1", version=1):
    return DataKey(user, version, sealing.new_key_material())


def keys_of(*ks):
    table = {(k.user_id, k.version): k for k in ks}
    return lambda user, version: table[(user, version)]


def test_sealed_round_trip_and_no_plaintext_in_the_value():
    k = key()
    event = created()
    value, headers = kafka_codec.encode(event, k)
    assert MARKER.encode() not in value
    assert dict(headers)[kafka_codec.SEAL_HEADER] == b"1:u1"
    # The routing and schema headers stay in the clear.
    assert dict(headers)[kafka_codec.TYPE_HEADER] == b"MemoryCreated"
    assert kafka_codec.seal_ref(headers) == ("u1", 1)
    assert kafka_codec.decode(value, headers, keys_of(k)) == event


def test_each_seal_uses_a_fresh_nonce():
    k = key()
    assert kafka_codec.encode(created(), k)[0] != kafka_codec.encode(created(), k)[0]


def test_wrong_key_fails_to_open():
    value, headers = kafka_codec.encode(created(), key())
    with pytest.raises(sealing.SealBroken):
        kafka_codec.decode(value, headers, keys_of(key()))


def test_tampered_value_or_headers_fail_to_open():
    k = key()
    value, headers = kafka_codec.encode(created(), k)
    flipped = value[:20] + bytes([value[20] ^ 1]) + value[21:]
    with pytest.raises(sealing.SealBroken):
        kafka_codec.decode(flipped, headers, keys_of(k))
    # The same bytes under another type's schema header: the associated data differs.
    other = kafka_codec.encode(MemoryAccessed(user_id="u1", actor="user:u1", memory_ids=(), source="get"), k)[1]
    moved = [(n, v) for n, v in other]
    with pytest.raises(sealing.SealBroken):
        kafka_codec.decode(value, moved, keys_of(k))
    # Claiming another user's key (same material, another user id in the header) fails too.
    thief = DataKey("u2", 1, k.material)
    stolen = [(n, b"1:u2" if n == kafka_codec.SEAL_HEADER else v) for n, v in headers]
    with pytest.raises(sealing.SealBroken):
        kafka_codec.decode(value, stolen, keys_of(thief))


def test_a_destroyed_key_decodes_to_shredded():
    value, headers = kafka_codec.encode(created(), key())
    with pytest.raises(kafka_codec.Shredded) as shredded:
        kafka_codec.decode(value, headers, lambda user, version: None)
    assert (shredded.value.user_id, shredded.value.version, shredded.value.event_type) == ("u1", 1, "MemoryCreated")


def test_a_sealed_value_without_a_key_lookup_is_a_clear_error():
    value, headers = kafka_codec.encode(created(), key())
    with pytest.raises(kafka_codec.SealedWithoutKeys, match="no key store"):
        kafka_codec.decode(value, headers)


def test_unsealed_legacy_events_still_decode_with_or_without_keys():
    for path in sorted(GOLDEN.glob("*.avro")):
        expected = json.loads(path.with_suffix(".json").read_text())
        headers = [(kafka_codec.SCHEMA_HEADER, expected["fingerprint"].encode())]
        event = kafka_codec.decode(path.read_bytes(), headers, lambda user, version: pytest.fail("no key needed"))
        assert event == kafka_codec.decode(path.read_bytes(), headers)


def test_every_event_is_sealed_but_user_erased():
    assert {t for t in EVENT_TYPES if not sealing.is_sealed_type(t)} == {"UserErased"}
    k = key()
    erased = UserErased(user_id="u1", actor="operator:root", reason="request 42")
    value, headers = kafka_codec.encode(erased, k)
    assert kafka_codec.seal_ref(headers) is None  # readable after the key is gone: it purges the read models
    assert kafka_codec.decode(value, headers) == erased
    for identity in (UserRegistered(user_id="u1", actor="a", display_name=f"Ada {MARKER}"),
                     ApiKeyIssued(user_id="u1", actor="a", key_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10",
                                  prefix="rs_abc", key_hash="sha256:00", scopes=("read",), name=MARKER)):
        value, headers = kafka_codec.encode(identity, k)
        assert MARKER.encode() not in value and kafka_codec.seal_ref(headers) == ("u1", 1)


def test_a_key_seals_only_its_own_users_events():
    with pytest.raises(ValueError, match="cannot seal"):
        kafka_codec.encode(created(user="u2"), key("u1"))


def test_wrapped_keys_unwrap_only_for_their_user_and_version():
    master = sealing.new_key_material()
    k = key("alice", 3)
    wrapped = sealing.wrap(master, k)
    assert k.material not in wrapped
    assert sealing.unwrap(master, "alice", 3, wrapped) == k
    for user, version, m in (("bob", 3, master), ("alice", 4, master), ("alice", 3, sealing.new_key_material())):
        with pytest.raises(sealing.SealBroken):
            sealing.unwrap(m, user, version, wrapped)
    assert "material" not in repr(k) and repr(k.material) not in repr(k)


def test_seal_header_parsing():
    assert sealing.parse_seal_header(b"12:team:alice") == ("team:alice", 12)
    for bad in (b"", b"x:alice", b"3:", b"alice"):
        with pytest.raises(sealing.SealBroken):
            sealing.parse_seal_header(bad)


def test_creates_never_move_past_an_erasure():
    before = Applied(0, 1, created(memory_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a11"))
    erased = Applied(0, 2, UserErased(user_id="u1", actor="operator:root"))
    after = Applied(0, 3, created(memory_id="6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a12"))
    written = [item for creates, others in hoist_creates([before, erased, after]) for item in creates + others]
    assert written == [before, erased, after]


def _store_with(*keys_and_tombstones):
    from adapters.key_store import KeyStore

    store = KeyStore("postgresql://nowhere.invalid/none", sealing.new_key_material())
    for user, version, k in keys_and_tombstones:
        store._remember(user, version, k)
    return store


async def test_the_keyring_opens_from_its_cache_and_reads_an_erased_users_events_as_shredded():
    from adapters.key_store import KeyMissing, Keyring

    k = key("u1", 2)
    keyring = Keyring(_store_with(("u1", 2, k), ("u1", 1, None)))
    value, headers = kafka_codec.encode(created(), k)
    assert (await keyring.decode(value, headers)).text == created().text  # no I/O: the key is cached
    old, old_headers = kafka_codec.encode(created(), key("u1", 1))
    with pytest.raises(kafka_codec.Shredded):
        await keyring.decode(old, old_headers)  # v1 is a tombstone
    with pytest.raises(KeyMissing):
        keyring.store.cached("u1", 3)
    keyring.forget("u1")
    assert not keyring.store.is_cached("u1", 2)


async def test_a_worker_publisher_drops_an_erased_users_events_without_appending():
    from adapters.kafka_log import EventPublisher

    class NoKeys:  # every user erased: keys_for(revive=False) finds none
        async def keys_for(self, events, revive=True):
            assert revive is False
            return {}

    publisher = EventPublisher("127.0.0.1:1", keys=NoKeys(), revive_erased=False, timeout_s=0.5)
    token = await publisher.publish([created()])
    assert token.offsets == ()  # nothing appended, Kafka never asked
    assert publisher._producer is None
