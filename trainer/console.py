"""Command-line conventions shared by ``trainer`` and ``tuner``: one-line errors, exit codes, ``--debug``.

* Bad input (``trainer.errors.UserError``, and argparse's own errors): one line
  ``PROG: error: ...`` on stderr, exit code 2, no traceback.
* Training that could not go on (``TrainingFailed``): one line, exit code 1.
* Anything else is a bug: one line saying so and how to see the traceback, exit code 1;
  with ``--debug`` (or ``SMART_TUNER_DEBUG=1``) the traceback is printed.
* Ctrl-C: exit code 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

from trainer.errors import TrainingFailed, UserError

EXIT_OK = 0
EXIT_FAILED = 1  # training failed, a corpus report with blocking problems, or an internal bug
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DEBUG_ENV = "SMART_TUNER_DEBUG"
DISTRIBUTION = "smart-tuner"  # the distribution both commands come from (pyproject.toml's project.name)


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error convention: ``PROG: error: ...`` and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` (print the traceback of an internal error) to a top-level parser."""
    parser.add_argument("--debug", action="store_true",
                        help=f"on an internal error, print its traceback (also ${DEBUG_ENV}=1)")


def distribution_version() -> str:
    """Return the installed distribution's version, or the package's own when it runs uninstalled."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # a source checkout on PYTHONPATH
        from trainer import __version__

        return f"{__version__} (not installed)"


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--version`` (print ``PROG VERSION`` of the installed distribution and exit) to a top-level parser."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {distribution_version()}",
                        help=f"print the installed version of {DISTRIBUTION} and exit")


def first_line(err: BaseException) -> str:
    """Return the first line of ``err``'s message, or its type name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_guarded(run: Callable[[], int], prog: str, debug: bool = False,
                interrupted: str = "interrupted") -> int:
    """Return ``run()``'s exit code, turning exceptions into the conventions of this module."""
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return run()
    except UserError as err:
        print(f"{prog}: error: {first_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingFailed as err:
        print(f"{prog}: training stopped: {first_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`tuner status | head`): not an error of ours. Point stdout at
        # nothing so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: internal error: {type(err).__name__}: {first_line(err)} "
              + ("(a bug: please report it with the traceback above)" if debug else
                 f"(a bug; run again with {prog} --debug ... to see the traceback)"), file=sys.stderr)
        return EXIT_FAILED


def main_with(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None, prog: str,
              interrupted: str = "interrupted") -> int:
    """Parse ``argv`` with ``build_parser()`` and run the chosen command's ``run(args)`` under ``run_guarded``."""
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: args.run(args), prog, debug=getattr(args, "debug", False), interrupted=interrupted)
