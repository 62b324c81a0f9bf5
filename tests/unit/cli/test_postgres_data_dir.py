"""The dev stack's persistent PostgreSQL folder: a predictable name in /tmp, claimed safely."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from telemetry_cli.stack import postgres
from telemetry_cli.stack.errors import StackError
from telemetry_cli.stack.postgres import claim_data_dir


def test_a_new_data_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "pg"
    claim_data_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    claim_data_dir(folder)  # this user's own folder, the next run: used as it is


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "pg").symlink_to(target)
    with pytest.raises(StackError, match="is not a folder"):
        claim_data_dir(tmp_path / "pg")


def test_another_users_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pg"
    folder.mkdir(mode=0o700)
    someone_else = os.geteuid() + 4242
    monkeypatch.setattr(postgres.os, "geteuid", lambda: someone_else)
    with pytest.raises(StackError, match="belongs to another user"):
        claim_data_dir(folder)


def test_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pg"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(StackError, match="can be written by other users"):
        claim_data_dir(folder)
