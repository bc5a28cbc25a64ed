"""Which Ray the trainer's interpreter has, and whether it can authenticate.

Ray >= 2.52 has token authentication (``RAY_AUTH_MODE=token``); older Ray (skyrl-train
0.3.1 pins 2.51.1) accepts code from anyone who reaches the cluster's ports. ``RAY_AUTH``
decides what happens then: ``auto`` (the default) runs without authentication after one
warning line, ``required`` refuses the job (ot-submit: a problem, exit 2; the runner:
exit 2). ot-submit and the runner ask the same question of the trainer's interpreter
(:func:`ray_version`): one subprocess, never ``import ray`` into ot-submit; on the login
node the answer is cached per interpreter (its path, its mtime and its ``bin``
directory's, which changes when pip installs another Ray).
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Dict, Mapping, Optional, Tuple

MIN_TOKEN_AUTH = (2, 52)
AUTH_CHOICES = ("auto", "required")
VERSION_PROBE = ("import importlib.metadata as m\n"
                 "try:\n    print(m.version('ray'))\n"
                 "except m.PackageNotFoundError:\n    import ray; print(ray.__version__)\n")
CACHE_NAME = "ray-versions.json"


def parse_version(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """``"2.51.1"`` -> (2, 51); None when it is not a version."""
    match = re.match(r"\s*(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def supports_token_auth(version: Optional[str]) -> bool:
    parsed = parse_version(version)
    return parsed is not None and parsed >= MIN_TOKEN_AUTH


def minimum() -> str:
    return ".".join(str(part) for part in MIN_TOKEN_AUTH)


def no_auth_risk(version: str, python: str) -> str:
    """The one line that names the version and the risk."""
    return (f"Ray {version} ({python}) has no token authentication (Ray >= {minimum()} has): "
            "anyone who can reach the job's nodes can run code as you through its Ray cluster")


def installed_ray_version() -> Optional[str]:
    """This interpreter's Ray version, or None; Ray is not imported. Its ``ray-<version>
    .dist-info`` next to the package is read first (a directory listing, where
    ``importlib.metadata`` would scan every distribution on the path: the runner asks this
    before Ray starts, on the clock)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ray")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    site = os.path.dirname(os.path.dirname(spec.origin))
    try:
        names = os.listdir(site)
    except OSError:
        names = []
    for name in names:
        match = re.fullmatch(r"ray-(\d+\.\d+[^-]*)\.dist-info", name)
        if match:
            return match.group(1)
    import importlib.metadata as metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def probe_ray_version(python: str, env: Optional[Mapping[str, str]] = None,
                      timeout: float = 60.0) -> Tuple[Optional[str], Optional[str]]:
    """(version, None) or (None, why) for the interpreter ``python``, in a subprocess."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        version = installed_ray_version()
        return (version, None) if version else (None, "Ray is not installed")
    import subprocess

    try:
        done = subprocess.run([python, "-c", VERSION_PROBE], env=None if env is None else dict(env),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cannot run {python}: {exc}"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or parse_version(lines[-1]) is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"Ray does not import with {python} ({last[:200]})"
    return lines[-1].strip(), None


def _cache_key(python: str) -> Optional[str]:
    try:
        own = os.stat(python).st_mtime_ns
        bin_dir = os.stat(os.path.dirname(os.path.abspath(python))).st_mtime_ns
    except OSError:
        return None
    return f"{os.path.abspath(python)}|{own}|{bin_dir}"


def cache_path(environ: Mapping[str, str]) -> str:
    home = environ.get("HOME") or os.path.expanduser("~")
    base = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "ot-hpc", CACHE_NAME)


def _read_cache(path: str) -> Dict[str, str]:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_cache(path: str, data: Mapping[str, str]) -> None:
    import tempfile

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ray-versions-", dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(data), handle, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: never worth failing a submission over


def ray_version(python: str, environ: Optional[Mapping[str, str]] = None,
                use_cache: bool = True) -> Tuple[Optional[str], Optional[str]]:
    """:func:`probe_ray_version`, cached on the login node (only answers, never failures;
    this interpreter's own Ray is read from its metadata, no cache needed)."""
    environ = os.environ if environ is None else environ
    same = os.path.realpath(python) == os.path.realpath(sys.executable)
    key = _cache_key(python) if use_cache and not same else None
    path = cache_path(environ)
    cached = _read_cache(path) if key else {}
    if key and key in cached:
        return cached[key], None
    version, problem = probe_ray_version(python)
    if key and version:
        cached = {k: v for k, v in cached.items() if not k.startswith(os.path.abspath(python) + "|")}
        cached[key] = version
        _write_cache(path, cached)
    return version, problem
