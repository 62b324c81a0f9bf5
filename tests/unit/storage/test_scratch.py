"""Private local folders: one per process and per run, never a fixed name in the temp folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import load_settings
from shared.storage import scratch
from shared.storage.warm.export import workspace


@pytest.fixture
def own_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder is ``tmp_path``, and this process has no folder in it yet."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(scratch, "_process_folder", None)
    return tmp_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_folder_is_private_and_removed_when_the_run_ends(own_temp: Path) -> None:
    with workspace(load_settings(), attach_hot=False) as space:
        folder = space.folder
        (folder / "file.parquet").write_bytes(b"x")
        assert mode(folder) == 0o700 and mode(folder.parent) == 0o700
        assert folder.parent.parent == own_temp
        assert folder.parent.name.startswith(f"telemetry-{os.getpid()}-")
    assert not folder.exists()


def test_a_run_folder_is_removed_when_the_run_fails(own_temp: Path) -> None:
    with pytest.raises(RuntimeError), workspace(load_settings(), attach_hot=False) as space:
        folder = space.folder
        (folder / "half-written.parquet").write_bytes(b"x")
        raise RuntimeError("the run failed")
    assert not folder.exists()


def test_two_runs_never_share_a_folder(own_temp: Path) -> None:
    assert scratch.new_run_folder() != scratch.new_run_folder()


def test_the_process_folder_goes_when_the_process_exits(own_temp: Path) -> None:
    code = (
        "from shared.storage import scratch; import sys; "
        "print(scratch.process_folder()); sys.stdout.flush()"
    )
    env = {**os.environ, "TMPDIR": str(own_temp)}
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    folder = Path(out.stdout.strip())
    assert folder.parent == own_temp and not folder.exists()


def dead_pid() -> int:
    """A process id that no process has now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_crashed_processs_folder_is_removed_by_the_next_one(own_temp: Path) -> None:
    crashed = own_temp / f"telemetry-{dead_pid()}-abcd1234"
    (crashed / "run-x").mkdir(parents=True)
    living = own_temp / f"telemetry-{os.getppid()}-abcd1234"
    living.mkdir()
    other_tool = own_temp / "telemetry-stack-abcd1234"
    other_tool.mkdir()
    planted = own_temp / f"telemetry-{dead_pid()}-link"
    planted.symlink_to(other_tool)
    assert scratch.sweep_stale(own_temp) == [crashed]
    assert not crashed.exists()
    assert living.exists() and other_tool.exists() and planted.is_symlink()


def test_the_first_folder_of_a_process_sweeps_the_stale_ones(own_temp: Path) -> None:
    crashed = own_temp / f"telemetry-{dead_pid()}-abcd1234"
    crashed.mkdir()
    scratch.process_folder()
    assert not crashed.exists()
