"""The sampling override through the real GCS emulator, switched by the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from click.testing import CliRunner

from shared.policy.flags import RuntimeFlags, read_flags
from shared.settings import get_settings
from shared.storage import gcs_json
from shared.storage.flags_object import GcsFlagStore
from shared.storage.gcs import get_storage_client, reset_storage_client
from telemetry_cli.cli import cli

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_client(services):
    reset_storage_client()
    gcs_json.reset_client()
    yield
    CliRunner().invoke(cli, ["sampling", "clear"])
    reset_storage_client()
    gcs_json.reset_client()


def test_override_set_read_and_cleared_through_the_bucket() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["sampling", "override", "--for", "2h", "--reason", "INC-42"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["sampling_override"] is True and summary["reason"] == "INC-42"
    flags = RuntimeFlags(get_settings(), GcsFlagStore(get_settings()))
    assert flags.refresh().sampling_override(datetime.now(UTC))
    assert not flags.refresh().sampling_override(datetime.now(UTC) + timedelta(hours=3))
    status = json.loads(runner.invoke(cli, ["sampling", "status"]).output)
    assert status["sampling_override"] is True
    assert (
        json.loads(runner.invoke(cli, ["sampling", "clear"]).output)["sampling_override"] is False
    )
    assert read_flags(GcsFlagStore()).sampling_override_until is None
    assert not flags.refresh().sampling_override(datetime.now(UTC))


def test_small_objects_over_the_json_api_are_the_librarys_objects() -> None:
    """What ``gcs_json`` writes, the storage library reads, and the other way round; a missing
    object is None, and a refusal is a typed error naming the status."""
    settings = get_settings()
    name = "config/json-api check é.json"
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    assert gcs_json.read_object(settings, name, 5.0) is None
    gcs_json.write_object(settings, name, b'{"a": 1}', "application/json", 5.0)
    blob = bucket.get_blob(name)
    assert blob.download_as_bytes() == b'{"a": 1}' and blob.content_type == "application/json"
    bucket.blob(name).upload_from_string(b"from the library")
    assert gcs_json.read_object(settings, name, 5.0) == b"from the library"
    bucket.blob(name).delete()
    with pytest.raises(gcs_json.GcsObjectError) as refused:
        gcs_json.write_object(
            msgspec.structs.replace(settings, telemetry_bucket="no-such-bucket"),
            name,
            b"x",
            "text/plain",
            5.0,
        )
    assert refused.value.status == 404 and "writing" in str(refused.value)


def test_bad_durations_are_refused() -> None:
    runner = CliRunner()
    for bad in ("forever", "0h", "9d", "h"):
        result = runner.invoke(cli, ["sampling", "override", "--for", bad])
        assert result.exit_code == 2, bad
        assert "duration" in result.output or "between a minute" in result.output


class FunctionStore:
    """A flag store whose reads are a function's answers."""

    def __init__(self, read) -> None:
        self.read = read

    def write(self, data: bytes) -> None:
        raise NotImplementedError


def test_unreadable_flags_keep_the_last_value() -> None:
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("bucket unreachable")
        return json.dumps(
            {"sampling_override_until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
        ).encode()

    flags = RuntimeFlags(get_settings(), FunctionStore(flaky))
    assert flags.refresh().sampling_override(datetime.now(UTC))
    assert flags.refresh().sampling_override(datetime.now(UTC))  # failure: last value kept
    assert flags.failures == 1


def test_background_refresh_never_blocks(monkeypatch) -> None:
    import threading

    gate = threading.Event()

    def slow():
        gate.wait(5)
        return None

    flags = RuntimeFlags(get_settings(), FunctionStore(slow))
    assert flags.sampling_override() is False  # answers at once, refresh runs behind
    gate.set()
