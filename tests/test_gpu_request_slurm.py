"""Both GPU-request styles against the real local cluster (issue 13, "site facts").

``local`` asks for GPUs as GRES (like JSC); ``local_whole`` (a cluster file: ``CLUSTER_BASE=
local``, ``CLUSTER_GPU_REQUEST=none``) asks for whole nodes without any GRES request (like
TACC), and excludes a node. Slurm must receive exactly that, and Ray must get the GPUs the
node has in both: the allocation's in the GRES style, the node's device files (the local
cluster's fake ``/dev/ot-fake-nvidiaN``) in the whole-node style.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

FAKE_GPUS = len(glob.glob("/dev/ot-fake-nvidia[0-9]*"))


@pytest.fixture
def env(tmp_path):
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    (clusters / "local_whole.env").write_text(
        "CLUSTER_BASE=local\nCLUSTER_GPU_REQUEST=none\nCLUSTER_EXCLUDE_NODES=n3\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OT_HPC_")}
    environ.update(PYTHONPATH=REPO, OT_HPC_CLUSTERS_DIR=str(clusters))
    return environ


def submit(env, tmp_path, *args, timeout=300):
    argv = [sys.executable, os.path.join(REPO, "bin", "ot-submit"), "--config", "demo.env",
            "--needs-tunnel", "false", "--experiments-dir", str(tmp_path / "exp"), *args]
    result = subprocess.run(argv, cwd=os.path.join(REPO, "envs"), env=env, capture_output=True,
                            text=True, timeout=timeout)
    match = re.search(r"submitted job (\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return result, int(match.group(1))


def show(job_id):
    return subprocess.run(["scontrol", "show", "job", "-d", str(job_id)], capture_output=True,
                          text=True).stdout


def test_whole_node_style_sends_no_gres_and_excludes(env, tmp_path):
    _, job_id = submit(env, tmp_path, "--cluster", "local_whole", "--hold", "--gpus-per-node", "2")
    try:
        text = show(job_id)
        assert "gres" not in text.lower() or "TresPerNode=(null)" in text, text
        assert "ExcNodeList=n3" in text, text
        assert "NumTasks=2" in text and "Partition=debug" in text
    finally:
        subprocess.run(["scancel", str(job_id)], capture_output=True)


def test_gres_style_sends_gres(env, tmp_path):
    _, job_id = submit(env, tmp_path, "--cluster", "local", "--hold", "--gpus-per-node", "2")
    try:
        text = show(job_id)
        assert re.search(r"TresPerNode=\S*gpu:2", text), text
    finally:
        subprocess.run(["scancel", str(job_id)], capture_output=True)


def ray_line(tmp_path, job_id):
    logs = glob.glob(str(tmp_path / "exp" / "logs" / f"*_{job_id}.log"))
    assert len(logs) == 1
    text = open(logs[0]).read()
    match = re.search(r"Ray ready on all (\d+) nodes \((\d+) CPUs, (\d+) GPUs\)", text)
    assert match, text[-3000:]
    assert "demo: all 2 nodes alive with the expected resources" in text, text[-3000:]
    return tuple(int(g) for g in match.groups())


@pytest.mark.parametrize("cluster, request_gpus, expected_per_node", [
    ("local_whole", "0", FAKE_GPUS),  # whole node: every GPU of the node, whatever was asked
    ("local", "1", 1),  # GRES: what Slurm gave
])
def test_ray_gets_the_gpus_the_node_has(env, tmp_path, cluster, request_gpus, expected_per_node):
    if importlib_missing("ray"):
        pytest.skip("ray is not installed in this interpreter")
    result, job_id = submit(env, tmp_path, "--cluster", cluster, "--gpus-per-node", request_gpus,
                            "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    nodes, _, gpus = ray_line(tmp_path, job_id)
    assert (nodes, gpus) == (2, 2 * expected_per_node)


def importlib_missing(name):
    import importlib.util

    return importlib.util.find_spec(name) is None
