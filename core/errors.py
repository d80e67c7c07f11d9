"""Exit codes (docs/architecture.md) and the user-facing errors that map onto them.

Every error a user can cause is one of these; the CLI prints its message (no
traceback) and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    PASSED = 0
    SLO_FAILED = 1
    BAD_INPUT = 2
    REFUSED = 3
    RUN_ERROR = 4


class LoadbearingError(Exception):
    """Base for errors reported to the user with an exit code and no traceback."""

    exit_code: ExitCode = ExitCode.RUN_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(LoadbearingError):
    """Exit 2: a plan, flag or script is wrong. Raised before any load is sent."""

    exit_code = ExitCode.BAD_INPUT


class Refused(LoadbearingError):
    """Exit 3: a target host is not in the plan's allow_hosts. Raised before any load."""

    exit_code = ExitCode.REFUSED


class RunError(LoadbearingError):
    """Exit 4: a runner crashed, the metrics store is unreachable, or the run was aborted."""

    exit_code = ExitCode.RUN_ERROR


class Aborted(BaseException):
    """Ctrl-C or SIGTERM during a run: raised by the controller's signal handler, recognised by the
    backends when they stop their runners (a BaseException, so no `except Exception` swallows it)."""
