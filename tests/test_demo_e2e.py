"""The README's first command, for real: `ot-submit --config demo.env --wait` on the local
cluster runs the runner end to end (the egress probe, with separate hosts the tunnel to the
local login sshd, Ray on 2 nodes, the demo trainer, shutdown), and the monitoring commands
tell the truth about it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "local_network")]

SSH_KEY = "/var/lib/ot-hpc-local/ssh/id_ed25519"


def run(*argv, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    if not os.path.exists(SSH_KEY):
        problem = "the local login sshd is not set up (run: bash tools/local-login-sshd.sh start)"
        if os.environ.get("OT_HPC_REQUIRE_CLUSTER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    experiments = tmp_path_factory.mktemp("demo-exp")
    env = {**os.environ, "PYTHONPATH": REPO}
    result = run(os.path.join(REPO, "bin", "ot-submit"), "--config", "demo.env", "--wait",
                 "--experiments-dir", str(experiments), cwd=os.path.join(REPO, "envs"), env=env)
    match = re.search(r"submitted job (\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return result, int(match.group(1)), str(experiments), env


def test_demo_job_completes_through_every_phase(demo_run, local_network):
    result, job_id, experiments, _ = demo_run
    net = local_network
    assert result.returncode == 0, result.stdout + result.stderr
    logs = [name for name in os.listdir(os.path.join(experiments, "logs")) if name.endswith(f"_{job_id}.log")]
    assert len(logs) == 1
    text = open(os.path.join(experiments, "logs", logs[0])).read()
    for phase in ("environment", "egress", "ray", "training", "shutdown"):
        assert f"[{phase}] begin" in text and f"[{phase}] done in " in text, phase
    if net.separate:  # NEEDS_TUNNEL=auto: the probe really fails on the compute node
        assert f"[egress] no internet ({net.internet}: " in text and "opening an SSH tunnel" in text
        assert "SOCKS tunnel socks5h://" in text
        assert f"{net.internet} reachable through the tunnel (answered via {net.login_host}:2222)" in text
    else:  # one shared network stack: the probe gets out directly
        assert f"[egress] internet reachable ({net.internet}): no tunnel needed" in text
    assert f"node addresses: n1={net.nodes['n1']}, n2={net.nodes['n2']}" in text
    assert "Ray ready on all 2 nodes" in text
    assert "demo: all 2 nodes alive with the expected resources" in text
    assert text.rstrip().splitlines()[-1].split("] ", 1)[1].startswith("exit 0; timings: ")


def test_status_and_history_report_the_demo_job(demo_run):
    _, job_id, experiments, env = demo_run
    status = run(os.path.join(REPO, "bin", "ot-status"), str(job_id), "--json",
                 "--experiments-dir", experiments, env=env)
    assert status.returncode == 0, status.stderr
    (job,) = json.loads(status.stdout)["jobs"]
    assert job["job_id"] == job_id and job["state"] == "COMPLETED" and job["node_count"] == 2
    assert job["log_path"].startswith(experiments)
