"""What every ot-* command shares: --backend, -v, --version, and exit codes.

Exit codes: 0 ok, 1 Slurm/system error (one line on stderr), 2 bad usage or bad input.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional

from .. import __version__
from ..scheduler import (
    BACKEND_NAMES,
    BackendUnavailable,
    Scheduler,
    SchedulerError,
    get_scheduler,
    requested_backend,
)
from ..scheduler.deadline import command_deadline

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: one line naming the field, the value and the fix. Exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Remembers the arguments it parses, so ``--version`` can see a ``--backend`` that
    comes after it (``--version --backend cli`` must not import pyslurm)."""

    raw_args: List[str] = []

    def parse_known_args(self, args=None, namespace=None):
        self.raw_args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):  # one line (argparse prints the whole usage first), exit 2
        self.exit(EXIT_USAGE, f"error: {message}; {usage_fix(self, message)}\n")


def usage_fix(parser: argparse.ArgumentParser, message: str) -> str:
    """The fix for argparse's ``message``: the closest option to an unknown one, else --help."""
    import difflib

    see = f"see {parser.prog} --help"
    if message.startswith("unrecognized arguments: "):
        unknown = message.split(": ", 1)[1].split()[0].split("=")[0]
        close = difflib.get_close_matches(unknown, list(parser._option_string_actions), n=1)
        if close:
            return f"did you mean {close[0]}? ({see})"
    return see


def backend_in(args: List[str]) -> Optional[str]:
    """The last ``--backend X`` / ``--backend=X`` in ``args`` (None without one)."""
    found = None
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--backend" and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith("--backend="):
            found = arg.split("=", 1)[1]
    return found


class _VersionAction(argparse.Action):
    """``--version`` prints the package version and the backend ``auto`` resolves to."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show version and backend, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        chosen = getattr(namespace, "backend", None) or backend_in(getattr(parser, "raw_args", []))
        try:
            backend = get_scheduler(chosen).name
        except BackendUnavailable as exc:
            backend = f"unavailable ({exc})"
        print(f"{parser.prog} (ot-hpc) {__version__}; scheduler backend: {backend}")
        parser.exit(0)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description)
    parser.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default=None,
        help="how to reach Slurm: pyslurm (C API), cli (Slurm's commands) or auto "
        "(pyslurm where it imports); default: $OT_HPC_BACKEND or auto",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say which backend is used")
    parser.add_argument("--version", action=_VersionAction)
    return parser


def scheduler_from_args(args: argparse.Namespace) -> Scheduler:
    """The backend asked for, bound to one deadline for all this command's Slurm calls
    (:func:`ot_hpc.scheduler.deadline.command_deadline`)."""
    requested_backend(args.backend)  # validates the name (also $OT_HPC_BACKEND)
    scheduler = get_scheduler(args.backend).use_deadline(command_deadline())
    if getattr(args, "verbose", False):
        print(f"scheduler backend: {scheduler.name}", file=sys.stderr)
    return scheduler


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def run_main(body: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None) -> int:
    """Run a command body, turning our exceptions into one line and an exit code."""
    try:
        return body(argv)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except BackendUnavailable as exc:
        error(str(exc))
        return EXIT_USAGE
    except SchedulerError as exc:
        error(str(exc))
        return EXIT_ERROR
    except OSError as exc:  # a directory not writable, a full disk, ...: one line, no traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        error(f"{exc.strerror or exc}{where}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
