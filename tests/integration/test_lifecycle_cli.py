"""`telemetry retention | erase | archive | audit` on the real services, as an operator runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shared.settings import reset_settings
from shared.storage.gcs import reset_storage_client
from shared.storage.hot.engine import dispose_engine
from telemetry_cli.cli import cli
from tests.integration.test_lifecycle import KEYRING, TODAY, Tiers, events
from tests.integration.tiers import Warm

pytestmark = pytest.mark.integration


def _reset() -> None:
    reset_settings()
    reset_storage_client()
    dispose_engine()


@pytest.fixture
def operator(warm: Warm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tiers]:
    """The CLI's environment pointed at a fresh database and bucket."""
    tiers = Tiers(warm)
    assert warm.settings.database_url is not None
    monkeypatch.setenv("DATABASE_URL", warm.settings.database_url.get_secret_value())
    monkeypatch.setenv("TELEMETRY_BUCKET", warm.settings.telemetry_bucket)
    monkeypatch.setenv("TELEMETRY_PSEUDONYM_KEY", KEYRING)
    monkeypatch.setenv("TELEMETRY_ARCHIVE_KEK", f"file:{warm.tmp / 'kek.key'}")
    _reset()
    yield tiers
    _reset()


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_operator_erases_checks_and_restores(operator: Tiers, tmp_path: Path) -> None:
    operator.store(events("u-cli", TODAY, 4, llm=1) + events("u-other", TODAY, 2))
    operator.snapshot()
    operator.lifecycle.archive().archive("conv-cli", {"t.txt": "kept words"}, "u-other")

    restored = run("archive", "restore", "conv-cli", "--to", str(tmp_path / "out"))
    assert restored.exit_code == 0, restored.output
    assert (tmp_path / "out" / "t.txt").read_text() == "kept words"
    assert "restored 1 artifacts" in restored.output
    checked = run("archive", "verify", "--deep")
    assert checked.exit_code == 0 and "1 manifests, 1 objects checked, 0 problems" in checked.output

    ids = tmp_path / "ids.txt"
    ids.write_text("u-cli\n\n")
    erased = run("erase", "--user-ids-file", str(ids))
    assert erased.exit_code == 0, erased.output
    request_id = erased.output.split("request ")[1].split(":")[0]
    assert '"telemetry_events": 3' in erased.output and "u-cli" not in erased.output
    status = run("erase", "status", request_id)
    assert status.exit_code == 0 and "done" in status.output
    verified = run("erase", "verify", request_id)
    assert verified.exit_code == 0 and "nothing remains" in verified.output
    audit = run("audit", "verify")
    assert audit.exit_code == 0 and "chain intact" in audit.output

    dry = run("retention", "--dry-run")
    assert dry.exit_code == 0 and "dry run: nothing changed" in dry.output


def test_operator_mistakes_are_one_line_errors(operator: Tiers) -> None:
    assert "name someone" in run("erase").output
    unknown = run("erase", "status", "er-" + "0" * 20)
    assert unknown.exit_code == 1 and "no erasure request" in unknown.output
    missing = run("archive", "restore", "no-such-conversation")
    assert missing.exit_code == 1 and "no archive of conversation" in missing.output
