"""Shared fixtures: the real local Slurm cluster and polling helpers.

Tests that talk to Slurm are marked ``slurm`` and need the cluster started by
``tools/local-cluster.sh start``. Without it they are skipped with the reason,
unless ``OT_HPC_REQUIRE_CLUSTER=1`` (set by ``tools/dev.sh test`` and CI), where a
missing cluster is an error: CI must never pass by skipping.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Callable, Optional

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL_SECONDS = 0.25


def _cluster_problem() -> Optional[str]:
    if shutil.which("sinfo") is None:
        return "Slurm's commands are not installed (run: bash tools/local-cluster.sh start)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "scontrol ping did not answer (run: bash tools/local-cluster.sh start)"
    if "UP" not in ping.stdout:
        return "the local Slurm controller is not up (run: bash tools/local-cluster.sh start)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip (or, under OT_HPC_REQUIRE_CLUSTER=1, fail) when the local cluster is down."""
    skip_or_fail(_cluster_problem())


def skip_or_fail(problem: Optional[str]) -> None:
    """Skip with ``problem`` (fail under OT_HPC_REQUIRE_CLUSTER=1); nothing when None."""
    if problem:
        if os.environ.get("OT_HPC_REQUIRE_CLUSTER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def local_network():
    """The local cluster's network (tests/localnet.py): separate hosts or loopback."""
    from .localnet import NETWORK_ENV, read_network

    network = read_network()
    if network is None:
        problem = (f"{NETWORK_ENV} is missing: the local cluster's network is not set up "
                   "(run: bash tools/local-cluster.sh start)")
        if os.environ.get("OT_HPC_REQUIRE_CLUSTER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return network


@pytest.fixture(scope="session")
def current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = POLL_SECONDS):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def base_environment() -> dict:
    """The minimal explicit environment test jobs get (what ot-submit would send)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    if "SLURM_CONF" in os.environ:
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]
    return env


@pytest.fixture(autouse=True)
def _isolated_user_config(tmp_path_factory, monkeypatch):
    """Keep tests (and the commands they run) out of the real ~/.config/ot-hpc."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture
def huggingface_hub():
    """The real huggingface_hub (part of the test extra: missing it fails, never skips)."""
    try:
        import huggingface_hub as module
    except ImportError:
        pytest.fail("huggingface_hub is not installed: pip install -e '.[test]'")
    return module


def fake_trainer_python(directory, ray_version: str = "2.51.1") -> str:
    """A TRAINER_PYTHON (``<directory>/bin/python``, a shell script) that answers
    ot_hpc.skyrl_detect's question as an interpreter with Ray ``ray_version`` and no SkyRL
    would (skyrl-train 0.3.1 pins Ray 2.51.1): for checks that need only the Ray version."""
    import json as _json

    script = os.path.join(str(directory), "bin", "python")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    answer = _json.dumps({"python_version": "3.12.1", "skyrl": None, "skyrl_train": None,
                          "ray": ray_version, "modules": {}, "paths": []})
    with open(script, "w") as handle:
        handle.write(f"#!/bin/sh\ncat <<'JSON'\n{answer}\nJSON\n")
    os.chmod(script, 0o755)
    return script


def pytest_collection_modifyitems(session, config, items):
    """Tests marked ``faults`` stop slurmctld or slurmdbd (and restore them): they run after
    every other test, in their own order, so no other test ever meets a stopped daemon."""
    items[:] = ([item for item in items if item.get_closest_marker("faults") is None]
                + [item for item in items if item.get_closest_marker("faults") is not None])
