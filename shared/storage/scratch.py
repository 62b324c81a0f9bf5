"""Private local folders for files that wait on this machine: Parquet before its upload, DuckDB's
spills, DuckDB's extension folder.

The temp folder (``TMPDIR``, ``/tmp`` on Cloud Run) is shared by every process and every user of
the machine, so nothing here has a fixed name in it:

* each process gets one folder of its own, ``telemetry-<pid>-<random>``, made by
  :func:`tempfile.mkdtemp` (mode 0700, created atomically, so no other user can own it or plant
  a symlink there first), removed when the process exits;
* each run (a snapshot, a compaction, an erasure, a query) gets a folder of its own inside it,
  again by :func:`tempfile.mkdtemp`, removed when the run ends, whether it ends well or not;
* a process that crashed cannot remove its folder, so the next process of the same user removes
  the folders of processes that no longer exist (:func:`sweep_stale`).
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

#: The name of a process's folder in the temp folder: this prefix, its pid, a dash, random.
PROCESS_PREFIX = "telemetry-"

_lock = threading.Lock()
_process_folder: tuple[int, Path] | None = None


def process_folder() -> Path:
    """This process's private folder (made on first use; a forked child makes its own)."""
    global _process_folder
    with _lock:
        pid = os.getpid()
        if _process_folder is None or _process_folder[0] != pid:
            sweep_stale()
            folder = Path(tempfile.mkdtemp(prefix=f"{PROCESS_PREFIX}{pid}-"))
            atexit.register(_remove, folder, pid)
            _process_folder = (pid, folder)
        return _process_folder[1]


def new_run_folder() -> Path:
    """A new private folder for one run's files, inside this process's folder; its owner
    removes it when the run ends (:func:`shared.storage.warm.export.workspace`)."""
    return Path(tempfile.mkdtemp(prefix="run-", dir=process_folder()))


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove this user's process folders whose process is gone (it crashed); the folders
    removed. Another user's folders, and anything that is not a plain folder, are left alone."""
    root = root or Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = list(root.glob(f"{PROCESS_PREFIX}*-*"))
    except OSError:
        return removed
    for path in candidates:
        pid = _pid_of(path.name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        logger.info("stale scratch folders removed", extra={"folders": len(removed)})
    return removed


def _pid_of(name: str) -> int | None:
    middle = name.removeprefix(PROCESS_PREFIX).split("-", 1)[0]
    return int(middle) if middle.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH  # EPERM: it exists, another user's
    return True


def _remove(folder: Path, pid: int) -> None:
    if os.getpid() == pid:  # not a forked child's exit
        shutil.rmtree(folder, ignore_errors=True)
