"""Command-line pieces the monitoring commands share (argparse types and options)."""
from __future__ import annotations

import argparse
import math

from .dirs import EXPERIMENTS_DIR_VAR


def parse_positive_number(text: str, what: str) -> float:
    """A finite number > 0 (``7``, ``0.5``, ``1e1``); ValueError naming ``what`` otherwise."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{what} must be a positive number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, not {text!r}")
    return value


def positive_number(what: str):
    """An argparse type: a finite number > 0 (fractions allowed); bad values exit 2."""

    def convert(text: str) -> float:
        try:
            return parse_positive_number(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def positive_int(what: str):
    """An argparse type: a whole number >= 1; bad values exit 2."""

    def convert(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number >= 1, not {text!r}")
        return value

    return convert


def add_experiments_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiments-dir", action="append", metavar="DIR", default=None,
        help="experiments directory holding logs/ and specs/ (repeatable); default: "
        f"${EXPERIMENTS_DIR_VAR} (':'-separated) or ~/ot-hpc-experiments",
    )


def add_tail(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tail", type=positive_int("--tail"), metavar="N", default=None,
                        help="show the last N lines of each job's log")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def current_user() -> str:
    """Who runs this command, from the uid (never ``$USER``/``$LOGNAME``, which anyone can
    set: ``getpass.getuser()`` trusts them). A uid without a passwd entry is its number,
    which Slurm's ``-u`` takes too."""
    import os
    import pwd

    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def write_lines(lines, stream=None) -> None:
    """Print lines; a closed pipe (``| head``) ends the output quietly."""
    import os
    import sys

    out = sys.stdout if stream is None else stream
    try:
        if lines:
            out.write("\n".join(lines) + "\n")
        out.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def write_json(data, stream=None) -> None:
    import json

    write_lines([json.dumps(data, sort_keys=False)], stream)


def job_id(text: str) -> int:
    """argparse type for a Slurm job id (a positive whole number)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"job id must be a positive whole number, not {text!r}")
    return value
