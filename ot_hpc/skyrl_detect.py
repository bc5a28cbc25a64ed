"""Which SkyRL (and which Ray) the job will run: asked of the trainer's interpreter.

One short ``python -c`` in ``TRAINER_PYTHON`` (or ``PYTHON``) reads the installed
distributions' versions (``importlib.metadata``: nothing is imported) and whether the
entrypoint module exists, found the way ``python -m`` would find it (from the trainer's
working directory and ``EXTRA_PYTHONPATH``) but without importing any package on the way,
so neither torch nor vLLM is ever loaded.

The answer is cached per interpreter (path, its resolved path, mtime and size), working
directory and module names, in ``$XDG_CACHE_HOME/ot-hpc/skyrl-detect/``, and is used only
while every ``sys.path`` directory of that interpreter still has the mtime it had (a
``pip install`` there changes it): a dry run does not pay for the subprocess twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

from .skyrl_lines import SKYRL, SKYRL_TRAIN

CACHE_VERSION = 1
STRUCTURED_CONFIG_MODULE = "skyrl.train.config.config"

_DETECT_SCRIPT = r"""
import importlib.machinery, importlib.metadata, importlib.util, json, os, sys
modules = json.loads(sys.argv[1])
def version(name):
    try:
        return importlib.metadata.version(name)
    except Exception:
        return None
def exists(module):
    # importlib.util.find_spec would import every parent package: walk the path instead.
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except Exception:
        return False
    if spec is None or len(parts) == 1:
        return spec is not None
    locations = list(spec.submodule_search_locations or [])
    for depth, part in enumerate(parts[1:], start=2):
        last = depth == len(parts)
        found_dirs = [os.path.join(loc, part) for loc in locations
                      if os.path.isdir(os.path.join(loc, part))]
        if last:
            files = [os.path.join(loc, part + suffix) for loc in locations
                     for suffix in importlib.machinery.all_suffixes()]
            files += [os.path.join(d, "__main__.py") for d in found_dirs]
            return any(os.path.isfile(f) for f in files)
        if not found_dirs:
            return False
        locations = found_dirs
    return False
found = {m: exists(m) for m in modules}
print(json.dumps({"python_version": sys.version.split()[0], "skyrl": version("skyrl"),
    "skyrl_train": version("skyrl-train"), "ray": version("ray") if exists("ray") else None,
    "modules": found,
    "paths": sorted({os.path.abspath(p or ".") for p in sys.path if os.path.isdir(p or ".")})}))
"""


@dataclass(frozen=True)
class Installed:
    """What the trainer's interpreter has (``ok`` False: it could not be asked)."""

    python: str
    ok: bool
    reason: str = ""
    python_version: str = ""
    skyrl: Optional[str] = None  # version of the ``skyrl`` distribution
    skyrl_train: Optional[str] = None  # version of ``skyrl-train``
    ray: Optional[str] = None
    modules: Mapping[str, bool] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False

    @property
    def line(self) -> Optional[str]:
        """skyrl (>= 0.3 with the structured config) before skyrl-train; None: neither."""
        if self.skyrl and _at_least(self.skyrl, (0, 3)) and self.modules.get(STRUCTURED_CONFIG_MODULE):
            return SKYRL
        if self.skyrl_train:
            return SKYRL_TRAIN
        return None

    def version_of(self, line: str) -> Optional[str]:
        return self.skyrl if line == SKYRL else self.skyrl_train

    def has_module(self, module: str) -> Optional[bool]:
        return self.modules.get(module) if self.ok else None

    def summary(self) -> str:
        """``skyrl 0.4.0, Ray 2.57.0 (Python 3.12.1, /venv/bin/python)``, or why not known."""
        if not self.ok:
            return f"not known: {self.reason}"
        line = self.line
        what = f"{line} {self.version_of(line)}" if line else "no SkyRL installed"
        ray = f"Ray {self.ray}" if self.ray else "no Ray"
        return f"{what}, {ray} (Python {self.python_version}, {self.python})"


def _at_least(version: str, minimum: Tuple[int, int]) -> bool:
    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit()) or "0"
        numbers.append(int(digits))
    return tuple(numbers + [0] * (2 - len(numbers))) >= minimum


def cache_dir(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ot-hpc", "skyrl-detect")


def _key(python: str, modules: Sequence[str], cwd: Optional[str], pythonpath: str) -> Optional[str]:
    try:
        real = os.path.realpath(python)
        st = os.stat(real)
    except OSError:
        return None
    text = json.dumps([CACHE_VERSION, os.path.abspath(python), real, st.st_mtime_ns, st.st_size,
                       sorted(modules), cwd or "", pythonpath])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _mtimes(paths: Sequence[str]) -> Dict[str, int]:
    out = {}
    for path in paths:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = -1
    return out


def _read_cache(path: str) -> Optional[dict]:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("mtimes") != _mtimes(list(data.get("mtimes") or ())):
        return None
    return data


def _write_cache(path: str, data: dict) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next run a subprocess


def _ask(python: str, modules: Sequence[str], cwd: Optional[str], pythonpath: str,
         timeout_seconds: float) -> Tuple[Optional[dict], str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LANG", "TMPDIR")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    try:
        proc = subprocess.run([python, "-c", _DETECT_SCRIPT, json.dumps(list(modules))],
                              capture_output=True, text=True, timeout=timeout_seconds, env=env,
                              cwd=cwd or None, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cannot run {python}: {exc}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{python} did not answer ({tail})"
    try:
        return json.loads(lines[-1]), ""
    except ValueError:
        return None, f"{python} gave no readable answer"


def detect(python: str, modules: Sequence[str] = (), cwd: Optional[str] = None,
           pythonpath: str = "", environ: Optional[Mapping[str, str]] = None,
           timeout_seconds: float = 30.0) -> Installed:
    """What ``python`` has installed, and which of ``modules`` exist there; never raises."""
    modules = sorted(set(modules) | {STRUCTURED_CONFIG_MODULE})
    environ = os.environ if environ is None else environ
    key = _key(python, modules, cwd, pythonpath)
    path = os.path.join(cache_dir(environ), f"{key}.json") if key else None
    started = time.monotonic()
    data = _read_cache(path) if path else None
    cached = data is not None
    if data is None:
        data, reason = _ask(python, modules, cwd, pythonpath, timeout_seconds)
        if data is None:
            return Installed(python, False, reason, seconds=time.monotonic() - started)
        data["mtimes"] = _mtimes(data.pop("paths", []))
        if path:
            _write_cache(path, data)
    return Installed(
        python, True, python_version=str(data.get("python_version") or ""),
        skyrl=data.get("skyrl"), skyrl_train=data.get("skyrl_train"), ray=data.get("ray"),
        modules=dict(data.get("modules") or {}), seconds=time.monotonic() - started, cached=cached)


def to_dict(installed: Installed) -> dict:
    return asdict(installed)
