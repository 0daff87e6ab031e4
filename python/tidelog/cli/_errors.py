"""The command line's exit codes and its one error path: every error a user can
cause ends as one line on stderr, ``tidelog <verb>: <what went wrong>``, and
an exit code from the table below; never a traceback."""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import NoReturn

#: Success (``verify``: no damage).
EXIT_OK = 0
#: The command ran and failed: damaged or malformed data (``produce --on-error
#: stop``), a refusal (a group with live members, a topic that exists, a log
#: another process holds exclusively), a system error.
EXIT_FAILED = 1
#: The command could not run as typed: a bad or missing argument, or a log
#: folder, topic or group that does not exist.
EXIT_USAGE = 2
#: Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    failed: bad or damaged data, a refusal (topic exists, group has live members, log locked), I/O error
  2    bad arguments, or a log folder, topic or group that does not exist
  3    verify only: damage found and repaired
  130  interrupted (Ctrl-C)"""


class CliError(Exception):
    """An error to report as one line and exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


def exit_code_for(error: BaseException) -> int:
    """The exit code of an exception that reached the top of a command."""
    from .. import errors

    if isinstance(error, CliError):
        return error.code
    not_there = (errors.UnknownTopicError, errors.UnknownGroupError, errors.LogNotFoundError,
                 errors.NotALogFolderError, errors.InvalidTopicNameError, errors.InvalidGroupIdError,
                 errors.InvalidArgumentError)
    if isinstance(error, not_there) and not isinstance(error, errors.SerializationError):
        return EXIT_USAGE
    if isinstance(error, (FileNotFoundError, NotADirectoryError)) and not isinstance(error, errors.TidelogError):
        return EXIT_USAGE
    return EXIT_FAILED


def one_line(error: BaseException) -> str:
    """The error as one line: its message, with the class name where the
    message alone would not say what kind of failure it was."""
    from .. import errors

    if isinstance(error, CliError):
        text = str(error)
    elif isinstance(error, (errors.UnknownTopicError, errors.UnknownGroupError, errors.InvalidArgumentError,
                            errors.TopicExistsError, errors.InvalidTopicNameError, errors.InvalidGroupIdError)):
        text = str(error)
    elif isinstance(error, OSError) and not isinstance(error, errors.TidelogError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror}{where}"
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())  # one line, whatever the message held


def report(verb: str, error: BaseException) -> int:
    """Prints ``tidelog <verb>: <message>`` on stderr; returns the exit code."""
    print(f"tidelog {verb}: {one_line(error)}", file=sys.stderr, flush=True)
    return exit_code_for(error)


def require_log_folder(path: str) -> str:
    """``path`` if it is a tidelog log folder; a usage error saying what it is
    instead ("does not exist", "is a file", "is not a tidelog log folder").
    Commands that only read or change a log call this first, so a mistyped
    path never creates an empty log."""
    from .._verify import log_folder_problem

    problem = log_folder_problem(path)
    if problem:
        raise usage_error(problem)
    return path


class Parser(argparse.ArgumentParser):
    """argparse with examples kept as written and argument errors as one line
    (``tidelog consume: --from: ... (see tidelog consume --help)``), exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def quiet_broken_pipe() -> None:
    """After stdout's reader went away (``tidelog consume ... | head``): point
    stdout at /dev/null so the interpreter's final flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError as e:  # pragma: no cover - no /dev/null
        if e.errno != errno.ENOENT:
            raise
