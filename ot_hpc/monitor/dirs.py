"""The experiments directories: where ot-submit puts ``specs/`` and ``logs/``.

Order: ``--experiments-dir DIR`` (repeatable) if given; else ``$OT_HPC_EXPERIMENTS_DIR``
(``os.pathsep``-separated, several allowed); else ``~/ot-hpc-experiments``, the same
default as ot-submit's ``EXPERIMENTS_DIR`` setting (``ot_hpc.config``).
"""
from __future__ import annotations

import os
from typing import List, Mapping, Optional, Sequence

EXPERIMENTS_DIR_VAR = "OT_HPC_EXPERIMENTS_DIR"
DEFAULT_EXPERIMENTS_DIR = os.path.join("~", "ot-hpc-experiments")
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
        raw = [DEFAULT_EXPERIMENTS_DIR]
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
