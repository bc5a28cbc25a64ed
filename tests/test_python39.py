"""Login nodes often have old system Pythons: every module must import on Python 3.9.

Runs the oldest supported interpreter found here (skipped with the reason when there is
none) and imports every ot_hpc module in it. Missing third-party packages (dotenv, sh,
Ray, huggingface_hub, pyslurm) are tolerated; anything else — syntax from 3.10+, a
``dataclass(slots=True)``, ``X | Y`` evaluated at run time — fails.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

from .conftest import REPO

OPTIONAL = ("dotenv", "sh", "ray", "huggingface_hub", "pyslurm", "hydra", "omegaconf")

PROBE = r"""
import importlib, pkgutil, sys, traceback
import ot_hpc
optional = set(sys.argv[1].split(","))
bad = []
for info in pkgutil.walk_packages(ot_hpc.__path__, "ot_hpc."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in optional:
            bad.append(f"{info.name}: {exc!r}")
    except Exception:
        bad.append(f"{info.name}: {traceback.format_exc(limit=1)}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
"""


def _python39():
    found = shutil.which("python3.9")
    candidates = ([found] if found else []) + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    for candidate in candidates:
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 9)":
            return candidate
    return None


def test_every_module_imports_on_python_3_9():
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 interpreter on this machine")
    result = subprocess.run([python, "-c", PROBE, ",".join(OPTIONAL)], cwd=REPO,
                            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": REPO},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
