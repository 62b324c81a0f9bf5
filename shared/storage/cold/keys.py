"""Key-encryption keys of the cold tier: Cloud KMS in production, a local key file in dev.

Each conversation's archive is encrypted under its own random data key; only the data key
wrapped by the key-encryption key (KEK) is stored, in the manifest. Destroying the wrapped copies
destroys the data key (crypto-shredding): the KEK never saw it stored, so nothing can unwrap it
again. The conversation id is bound to the wrapped key as associated data, so a wrapped key
copied into another manifest does not unwrap.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ConfigurationError, TerminalError
from shared.settings import Settings

DATA_KEY_BYTES = 32
_NONCE_BYTES = 12


class KeyUnwrapFailed(TerminalError):
    """A wrapped data key does not unwrap under the configured key-encryption key."""


class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys; ``name`` is recorded beside each wrapped key."""

    name: str

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """The data key encrypted under this KEK, bound to ``context``."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key back; :class:`KeyUnwrapFailed` when it does not unwrap."""
        ...


class LocalKeyFile:
    """A 32-byte AES-256-GCM key in a local file (dev only; production refuses it)."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(AESGCM.generate_key(bit_length=256))
        key = path.read_bytes()
        if len(key) != DATA_KEY_BYTES:
            raise ConfigurationError(
                f"the archive key file {path} does not hold 32 bytes", ["TELEMETRY_ARCHIVE_KEK"]
            )
        self._aead = AESGCM(key)
        #: A fingerprint, not the path: manifests never name a file on someone's machine.
        self.name = "file:" + hashlib.sha256(b"telemetry-kek" + key).hexdigest()[:16]

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """Encrypt a data key under the file's key, bound to ``context``."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a wrapped data key."""
        try:
            return self._aead.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], context)
        except InvalidTag:
            raise KeyUnwrapFailed("the data key does not unwrap under the local key") from None


class KmsKey:
    """A Cloud KMS symmetric key; KMS keeps its versions, rotation needs nothing here."""

    def __init__(self, key_name: str, client: Any = None) -> None:
        if client is None:
            from google.cloud import kms

            client = kms.KeyManagementServiceClient()
        self._client = client
        self._key = key_name
        self.name = "kms:" + key_name

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """Encrypt a data key with KMS (the key's primary version)."""
        answer = self._client.encrypt(
            request={
                "name": self._key,
                "plaintext": data_key,
                "additional_authenticated_data": context,
            }
        )
        return bytes(answer.ciphertext)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a wrapped data key with KMS (whichever version wrapped it)."""
        from google.api_core.exceptions import InvalidArgument

        try:
            answer = self._client.decrypt(
                request={
                    "name": self._key,
                    "ciphertext": wrapped,
                    "additional_authenticated_data": context,
                }
            )
        except InvalidArgument as exc:
            raise KeyUnwrapFailed(
                f"Cloud KMS refused to unwrap the data key: {exc.message}"
            ) from None
        return bytes(answer.plaintext)


def kek_from_settings(settings: Settings, kms_client: Any = None) -> KeyEncryptionKey:
    """The configured key-encryption key, or a :class:`ConfigurationError` saying what to set."""
    value = settings.telemetry_archive_kek
    if not value:
        raise ConfigurationError(
            "the cold archive needs a key-encryption key: set TELEMETRY_ARCHIVE_KEK to a Cloud "
            "KMS key name (or, in dev, file:PATH)",
            ["TELEMETRY_ARCHIVE_KEK"],
        )
    if value.startswith("file:"):
        return LocalKeyFile(Path(value.removeprefix("file:")).expanduser())
    return KmsKey(value, kms_client)
