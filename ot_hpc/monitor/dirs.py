"""The experiments directories: where ot-submit puts ``specs/`` and ``logs/``.

Order: ``--experiments-dir DIR`` (repeatable) if given; else ``$OT_HPC_EXPERIMENTS_DIR``
(``os.pathsep``-separated, several allowed); else every directory ot-submit has submitted
into (it remembers them in ``~/.config/ot-hpc/experiments-dirs``, since site env files put
them on scratch, e.g. ``$SCRATCH/ot-hpc-experiments``) plus ``~/ot-hpc-experiments``.
This module is the one source of that default: ot-submit's ``EXPERIMENTS_DIR`` setting
(``ot_hpc.config``) is built from ``DEFAULT_EXPERIMENTS_DIRNAME``.
"""
from __future__ import annotations

import os
from typing import List, Mapping, Optional, Sequence

EXPERIMENTS_DIR_VAR = "OT_HPC_EXPERIMENTS_DIR"
DEFAULT_EXPERIMENTS_DIRNAME = "ot-hpc-experiments"
DEFAULT_EXPERIMENTS_DIR = os.path.join("~", DEFAULT_EXPERIMENTS_DIRNAME)
KNOWN_DIRS_FILENAME = "experiments-dirs"
LOGS = "logs"
SPECS = "specs"


def experiments_dirs(given: Optional[Sequence[str]] = None,
                     environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """Absolute, de-duplicated experiments directories (they need not exist)."""
    env = os.environ if environ is None else environ
    if given:
        raw = list(given)
    elif env.get(EXPERIMENTS_DIR_VAR, "").strip():
        raw = env[EXPERIMENTS_DIR_VAR].split(os.pathsep)
    else:
        raw = read_known_dirs(env) + [DEFAULT_EXPERIMENTS_DIR]
    home = env.get("HOME")
    out: List[str] = []
    for item in raw:
        item = item.strip()
        if not item:
            continue
        if item.startswith("~") and home:
            item = home + item[1:] if item == "~" or item.startswith("~/") else os.path.expanduser(item)
        else:
            item = os.path.expanduser(item)
        path = os.path.abspath(item)
        if path not in out:
            out.append(path)
    return out


def logs_dirs(experiments: Sequence[str]) -> List[str]:
    return [os.path.join(d, LOGS) for d in experiments]


def known_dirs_file(environ: Optional[Mapping[str, str]] = None) -> str:
    from ..paths import user_config_dir

    return str(user_config_dir(environ) / KNOWN_DIRS_FILENAME)


def read_known_dirs(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The experiments directories ot-submit remembered (missing file: none)."""
    try:
        with open(known_dirs_file(environ)) as handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError:
        return []


def remember_experiments_dir(path: str, environ: Optional[Mapping[str, str]] = None) -> None:
    """Add ``path`` to the remembered directories (called by ot-submit after a submission).

    One short line appended with O_APPEND: concurrent submissions cannot interleave it.
    """
    path = os.path.abspath(path)
    if path in read_known_dirs(environ):
        return
    target = known_dirs_file(environ)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (path + "\n").encode())
    finally:
        os.close(fd)
