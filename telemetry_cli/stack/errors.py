"""The local stack's own error (a tooling error: never raised by a function)."""

from __future__ import annotations

from shared.errors import TerminalError


class StackError(TerminalError):
    """The local stack could not start; names the cause and the log file to read."""

    def __init__(self, message: str, log_file: str | None = None) -> None:
        text = f"{message} (see {log_file})" if log_file else message
        super().__init__(text, log_file=log_file)
        self.log_file = log_file
