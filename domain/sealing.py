"""Sealing events with a user's data key (crypto-shredding): pure CPU, no I/O.

A sealed event's Kafka value is `nonce (12 bytes) || AES-256-GCM(avro bytes)`; the
associated data binds the ciphertext to its user, event type, writer schema and key
version, so a value cannot be replayed under another user's or type's headers. Data
keys themselves are stored wrapped (AES-256-GCM under the master key, bound to user and
version) so that a dump of the key store alone does not expose them. Destroying a
user's data keys makes every sealed event of that user unreadable for good: the log
stays immutable and replayable, without that user's content (docs/security.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit random nonces: safe for well under 2^32 messages per key
_SEAL_DOMAIN = b"recallstack/seal/v1"
_WRAP_DOMAIN = b"recallstack/wrap/v1"

# UserErased must stay readable after the key is gone: it is what purges the read models,
# on replay too. Every other event of a user is sealed, identity ones included (a display
# name or an API key's name is that user's personal data as much as a memory is).
UNSEALED_TYPES = frozenset({"UserErased"})


class SealBroken(ValueError):
    """Authentication failed: wrong key, tampered value, or headers that do not belong to it."""


@dataclass(frozen=True)
class DataKey:
    user_id: str
    version: int
    material: bytes

    def __repr__(self) -> str:  # never print key material (logs, tracebacks)
        return f"DataKey({self.user_id!r}, v{self.version})"


def is_sealed_type(event_type: str) -> bool:
    return event_type not in UNSEALED_TYPES


def new_key_material() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _join(*parts: str | bytes) -> bytes:
    # NUL cannot occur in user ids, type names or fingerprints we write: an unambiguous join.
    return b"\x00".join(p if isinstance(p, bytes) else p.encode() for p in parts)


def associated_data(user_id: str, event_type: str, fingerprint: str, version: int) -> bytes:
    return _join(_SEAL_DOMAIN, user_id, event_type, fingerprint, str(version))


def seal(material: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(material).encrypt(nonce, plaintext, aad)


def unseal(material: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise SealBroken("sealed value is too short")
    try:
        return AESGCM(material).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealBroken("sealed value does not authenticate (wrong key, or value/headers tampered)") from None


def error_associated_data(user_id: str, version: int) -> bytes:
    """For a dead letter's error text, sealed with the user's key (it may quote their content)."""
    return _join(b"recallstack/dlq-error/v1", user_id, str(version))


def wrap(master: bytes, key: DataKey) -> bytes:
    return seal(master, key.material, _join(_WRAP_DOMAIN, key.user_id, str(key.version)))


def unwrap(master: bytes, user_id: str, version: int, wrapped: bytes) -> DataKey:
    return DataKey(user_id, version, unseal(master, wrapped, _join(_WRAP_DOMAIN, user_id, str(version))))


def seal_header(key: DataKey) -> bytes:
    """The `rs-seal` header: `<version>:<user_id>` (the user id is also the record key, but
    a dead letter or a copy may travel without it)."""
    return f"{key.version}:{key.user_id}".encode()


def parse_seal_header(raw: bytes) -> tuple[str, int]:
    """(user_id, version) of an `rs-seal` header."""
    version, sep, user_id = raw.decode().partition(":")
    if not sep or not version.isdigit() or not user_id:
        raise SealBroken(f"malformed seal header {raw!r}")
    return user_id, int(version)
