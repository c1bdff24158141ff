"""User errors: bad data, annotation files, checkpoints, flags or exp values.

Every tools/*.py entry point runs through `run_cli`: a UserError (or a SystemExit carrying a message)
becomes one line on stderr and exit status 2; `--debug` or YOLOX_DEBUG=1 shows the traceback instead.
A ReportedError was already logged in one line by whoever raised it: exit status 1, no traceback.
Any other exception is our bug and keeps its full traceback. Checkpoints and logs written before the
error stay as they are: checkpoints are written atomically and the log sinks are flushed on exit.
"""
import argparse
import os
import sys
from typing import Any, Callable, NoReturn

__all__ = ["UserError", "ReportedError", "CLIParser", "run_cli", "debug_requested", "USER_ERROR_STATUS",
           "REPORTED_ERROR_STATUS"]

USER_ERROR_STATUS = 2
REPORTED_ERROR_STATUS = 1


class UserError(Exception):
    """A problem with what the user gave us; its message is one line saying what and how to fix it."""


class ReportedError(Exception):
    """A failure (not the user's) already logged in one clear line; a traceback of the raiser would add nothing."""


def debug_requested(argv=None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("YOLOX_DEBUG", "") not in ("", "0")


class CLIParser(argparse.ArgumentParser):
    """argparse with a --debug flag and one-line errors (no usage block), exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true",
                          help="show the full traceback of user errors (also YOLOX_DEBUG=1)")

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR_STATUS, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def run_cli(entry: Callable[[], Any]) -> None:
    """Run a tool's main: user errors end in one line on stderr and exit status 2."""
    try:
        result = entry()
    except UserError as error:
        if debug_requested():
            raise
        print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_STATUS)
    except ReportedError:
        if debug_requested():
            raise
        sys.exit(REPORTED_ERROR_STATUS)
    except SystemExit as exit_request:
        if not isinstance(exit_request.code, str) or debug_requested():
            raise
        print(f"error: {one_line(exit_request)}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_STATUS)
    sys.exit(result if isinstance(result, int) else 0)
