"""The cold tier's sealing and key wrapping (the KMS client faked; files and AES-GCM real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import InvalidArgument

from shared.errors import ConfigurationError, ContractViolation
from shared.settings import Settings
from shared.storage.cold.archive import validate_request
from shared.storage.cold.crypto import ArchiveTampered, new_data_key, open_sealed, seal
from shared.storage.cold.keys import KeyUnwrapFailed, KmsKey, LocalKeyFile, kek_from_settings


def test_sealing_is_deterministic_per_key_and_bytes_so_objects_deduplicate() -> None:
    key = new_data_key()
    one, two = seal(key, b"transcript", b"conv-1"), seal(key, b"transcript", b"conv-1")
    assert one == two and b"transcript" not in one
    assert seal(key, b"other", b"conv-1")[4:16] != one[4:16]  # another nonce
    assert seal(new_data_key(), b"transcript", b"conv-1") != one
    assert open_sealed(key, one, b"conv-1") == b"transcript"


def test_a_changed_or_moved_object_does_not_open() -> None:
    key = new_data_key()
    sealed = seal(key, b"words", b"conv-1")
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(ArchiveTampered, match="changed"):
        open_sealed(key, flipped, b"conv-1", "archives/ab/x")
    with pytest.raises(ArchiveTampered):
        open_sealed(key, sealed, b"conv-2")  # bound to its conversation
    with pytest.raises(ArchiveTampered, match="not a sealed"):
        open_sealed(key, b"plain bytes", b"conv-1")


def test_local_key_file_is_created_private_and_wraps(tmp_path: Path) -> None:
    path = tmp_path / "kek" / "archive.key"
    kek = LocalKeyFile(path)
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_bytes()) == 32
    assert kek.name.startswith("file:") and str(tmp_path) not in kek.name
    data_key = new_data_key()
    wrapped = kek.wrap(data_key, b"conv-1")
    assert LocalKeyFile(path).unwrap(wrapped, b"conv-1") == data_key
    with pytest.raises(KeyUnwrapFailed):
        kek.unwrap(wrapped, b"conv-2")
    path.write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        LocalKeyFile(path)


class FakeKms:
    """Stands for KeyManagementServiceClient: XOR 'encryption', associated data checked."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def encrypt(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        data = bytes(b ^ 0x5A for b in request["plaintext"])
        return type("R", (), {"ciphertext": request["additional_authenticated_data"] + b"|" + data})

    def decrypt(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        context, _, data = request["ciphertext"].partition(b"|")
        if context != request["additional_authenticated_data"]:
            raise InvalidArgument("Decryption failed")
        return type("R", (), {"plaintext": bytes(b ^ 0x5A for b in data)})


def test_kms_key_wraps_with_the_conversation_as_associated_data() -> None:
    name = "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"
    kms = FakeKms()
    kek = KmsKey(name, kms)
    data_key = new_data_key()
    wrapped = kek.wrap(data_key, b"conv-1")
    assert kek.unwrap(wrapped, b"conv-1") == data_key
    assert kek.name == "kms:" + name and kms.requests[0]["name"] == name
    with pytest.raises(KeyUnwrapFailed, match="Cloud KMS refused"):
        kek.unwrap(wrapped, b"conv-2")


def test_kek_from_settings_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELEMETRY_ARCHIVE_KEK", raising=False)  # the session's stack sets one
    with pytest.raises(ConfigurationError, match="TELEMETRY_ARCHIVE_KEK"):
        kek_from_settings(Settings())
    local = Settings.from_environment({"TELEMETRY_ARCHIVE_KEK": f"file:{tmp_path / 'k'}"})
    assert isinstance(kek_from_settings(local), LocalKeyFile)
    kms = Settings.from_environment(
        {"TELEMETRY_ARCHIVE_KEK": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}
    )
    assert isinstance(kek_from_settings(kms, FakeKms()), KmsKey)
    with pytest.raises(ConfigurationError, match="cryptoKeys"):
        Settings.from_environment({"TELEMETRY_ARCHIVE_KEK": "my-key"})


@pytest.mark.parametrize(
    ("conversation", "artifacts", "problem"),
    [
        ("", {"a": b"x"}, "conversation_id"),
        ("c" * 129, {"a": b"x"}, "conversation_id"),
        ("c-1", {}, "non-empty"),
        ("c-1", {"../etc": b"x"}, "artifact name"),
        ("c-1", {".hidden": b"x"}, "artifact name"),
        ("c-1", {"a": 3}, "bytes or text"),
        ("c-1", {"a": b"x" * 11}, "over TELEMETRY_ARCHIVE_MAX_BYTES=10"),
    ],
)
def test_bad_archive_requests_say_what_is_wrong(
    conversation: str, artifacts: Any, problem: str
) -> None:
    with pytest.raises(ContractViolation, match=problem):
        validate_request(conversation, artifacts, max_bytes=10)


def test_text_artifacts_are_stored_as_utf8() -> None:
    assert validate_request("c-1", {"t.txt": "é"}, 10) == {"t.txt": "é".encode()}
