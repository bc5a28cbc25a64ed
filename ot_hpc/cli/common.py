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

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: one line naming the field, the value and the fix. Exit code 2."""


class _VersionAction(argparse.Action):
    """``--version`` prints the package version and the backend ``auto`` resolves to."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show version and backend, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            backend = get_scheduler(getattr(namespace, "backend", None)).name
        except BackendUnavailable as exc:
            backend = f"unavailable ({exc})"
        print(f"{parser.prog} (ot-hpc) {__version__}; scheduler backend: {backend}")
        parser.exit(0)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
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
    requested_backend(args.backend)  # validates the name (also $OT_HPC_BACKEND)
    scheduler = get_scheduler(args.backend)
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
