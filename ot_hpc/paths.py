"""Where ot-hpc finds its env files (site env files, example job configs, cluster files).

Search order for the ``envs/`` directory:

1. ``$OT_HPC_ENVS_DIR`` (a directory you keep your own env files in);
2. the repository's ``envs/`` next to the package (a checkout or an editable install);
3. ``<sys.prefix>/share/ot-hpc/envs`` (where ``pip install .`` puts ``envs/*.env``).

Cluster definitions added or overridden by the user (``<name>.env``, see
:mod:`ot_hpc.clusters`) are read from ``$OT_HPC_CLUSTERS_DIR`` (``:``-separated),
``~/.config/ot-hpc/clusters`` and ``<envs>/clusters``, first one wins.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Mapping, Optional

ENVS_DIR_VAR = "OT_HPC_ENVS_DIR"
CLUSTERS_DIR_VAR = "OT_HPC_CLUSTERS_DIR"

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ENVS_DIR = PACKAGE_DIR.parent / "envs"
INSTALLED_ENVS_DIR = Path(sys.prefix) / "share" / "ot-hpc" / "envs"


def _environ(environ: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def envs_dirs(environ: Optional[Mapping[str, str]] = None) -> List[Path]:
    """Every candidate ``envs/`` directory that exists, in search order."""
    env = _environ(environ)
    candidates: List[Path] = []
    if env.get(ENVS_DIR_VAR):
        candidates.append(Path(env[ENVS_DIR_VAR]).expanduser())
    candidates += [REPO_ENVS_DIR, INSTALLED_ENVS_DIR]
    seen, found = set(), []
    for path in candidates:
        key = str(path.resolve()) if path.exists() else str(path)
        if path.is_dir() and key not in seen:
            seen.add(key)
            found.append(path)
    return found


def envs_dir(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The first ``envs/`` directory that exists, or None."""
    dirs = envs_dirs(environ)
    return dirs[0] if dirs else None


def user_config_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = _environ(environ)
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "ot-hpc"


def cluster_dirs(environ: Optional[Mapping[str, str]] = None) -> List[Path]:
    """Directories holding user cluster files, first one wins (existing ones only)."""
    env = _environ(environ)
    candidates: List[Path] = []
    for item in (env.get(CLUSTERS_DIR_VAR) or "").split(os.pathsep):
        if item.strip():
            candidates.append(Path(item.strip()).expanduser())
    candidates.append(user_config_dir(env) / "clusters")
    candidates += [d / "clusters" for d in envs_dirs(env)]
    return [p for p in candidates if p.is_dir()]


def find_env_file(
    name: str,
    cwd: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    search_cwd: bool = True,
) -> Optional[Path]:
    """Find an env file: as given (absolute, or relative to ``cwd``), then in ``envs/``.

    ``gsm8k`` finds ``gsm8k.env`` too. Returns None when nothing matches.
    """
    if not name:
        return None
    base = Path(cwd or os.getcwd())
    given = Path(name).expanduser()
    names = [given] if given.suffix == ".env" else [given, given.with_name(given.name + ".env")]
    for candidate in names:
        if not search_cwd and not candidate.is_absolute():
            break
        path = candidate if candidate.is_absolute() else base / candidate
        if path.is_file():
            return path
    if given.is_absolute() or len(given.parts) != 1:
        return None
    for directory in envs_dirs(environ):
        for candidate in names:
            path = directory / candidate.name
            if path.is_file():
                return path
    return None


def package_import_root() -> Path:
    """The directory that must be on PYTHONPATH for ``import ot_hpc`` to find this copy."""
    return PACKAGE_DIR.parent
