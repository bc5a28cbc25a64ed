"""Which Ray the trainer's interpreter has, and whether it can authenticate.

Ray >= 2.52 has token authentication (``RAY_AUTH_MODE=token``); older Ray (skyrl-train
0.3.1 pins 2.51.1) accepts code from anyone who reaches the cluster's ports. ``RAY_AUTH``
decides what happens then: ``auto`` (the default) runs without authentication after one
warning line, ``required`` refuses the job (ot-submit: a problem, exit 2; the runner:
exit 2). On the login node the version comes from :mod:`ot_hpc.skyrl_detect` (the one
subprocess that asks TRAINER_PYTHON which SkyRL and which Ray it has, cached); the runner
asks again on the compute node (:func:`installed_ray_version`, in the trainer's Python).
"""
from __future__ import annotations

import os
import re
from typing import Optional, Tuple

MIN_TOKEN_AUTH = (2, 52)
AUTH_CHOICES = ("auto", "required")


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
