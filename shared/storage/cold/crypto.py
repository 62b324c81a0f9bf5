"""Sealing one artifact: AES-256-GCM under the conversation's data key.

The nonce is derived from the data key and the artifact's SHA-256 (a synthetic IV): the same
bytes sealed twice in one conversation give the same sealed object, so the content-addressed
name repeats and the object is stored once; different bytes get different nonces. The
conversation id is the associated data, so an object moved to another conversation fails to open.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import TerminalError

#: Marks a sealed object (format version 1).
MAGIC = b"TCA1"
_NONCE_BYTES = 12


class ArchiveTampered(TerminalError):
    """A sealed object does not open: it was changed, or belongs to another conversation."""


def new_data_key() -> bytes:
    """A fresh random AES-256 key for one conversation."""
    return os.urandom(32)


def seal(data_key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """The sealed form of ``plaintext`` (magic, nonce, ciphertext with its tag)."""
    digest = hashlib.sha256(plaintext).digest()
    nonce = hmac.new(data_key, b"nonce" + digest, hashlib.sha256).digest()[:_NONCE_BYTES]
    return MAGIC + nonce + AESGCM(data_key).encrypt(nonce, plaintext, context)


def open_sealed(data_key: bytes, sealed: bytes, context: bytes, name: str = "object") -> bytes:
    """The plaintext of a sealed object; :class:`ArchiveTampered` if it does not authenticate."""
    head = len(MAGIC)
    if sealed[:head] != MAGIC:
        raise ArchiveTampered(f"{name} is not a sealed archive object")
    nonce = sealed[head : head + _NONCE_BYTES]
    try:
        return AESGCM(data_key).decrypt(nonce, sealed[head + _NONCE_BYTES :], context)
    except InvalidTag:
        raise ArchiveTampered(f"{name} does not authenticate: it was changed") from None
