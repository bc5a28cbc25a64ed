"""Node failure and preemption against the real local cluster (marked ``faults``: they kill
an emulated node or preempt through the 'urgent' partition; a lane of your own only).

A node dies mid-job: ``local-cluster.sh stop-node`` SIGKILLs its slurmd and every process in
its network namespace (the job's step, the node agent, Ray). The runner sees its Ray node
die and ends the job (exit 6) long before the time limit; with ``--max-restarts 1`` the job
runs again (Slurm requeues a ``--requeue`` job whose node failed; the runner never requeues
twice). Preemption: a job of the 'urgent' partition (PriorityTier 10, PreemptMode=REQUEUE)
takes every node; Slurm requeues the preempted job, which resumes from its checkpoint.
"""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from ot_hpc.scheduler import JobState, get_scheduler

from ..conftest import wait_for
from ..faultkit import dead_node, node_state, require_faults
from .test_runner_slurm import (assert_clean, assert_resumed_and_completed, experiments,  # noqa: F401
                                ray_available, submit)

pytestmark = [pytest.mark.slurm, pytest.mark.faults,
              pytest.mark.usefixtures("slurm_cluster", "ray_available", "local_network")]

# Ray marks a node dead after its health checks fail (~15 s), Slurm after SlurmdTimeout
# (30 s on the local cluster) plus one ping interval: the job must end well inside this.
NODE_LOSS_BOUND = 90


@pytest.fixture(autouse=True)
def _faults(local_network):
    require_faults()
    if local_network.mode != "separate":
        pytest.skip("killing one node needs separate hosts (a network namespace per node)")


def test_a_node_dying_mid_training_ends_the_job_and_it_runs_again(experiments, tmp_path):
    release, ckpt = tmp_path / "release", tmp_path / "ckpt"
    job = submit(experiments, "nodedeath", 2, [f"demo.wait_for_file={release}",
                                                f"demo.checkpoint_dir={ckpt}"], max_restarts=1, time_limit=30)
    try:
        wait_for(lambda: "demo: waiting for" in job.log(), 120, f"job {job.id} to be training")
        assert job.record().state == JobState.RUNNING
        nodes, batch = re.search(r"on 2 node\(s\) (\S+); batch node (\S+);", job.log()).groups()
        worker = [n for n in nodes.split(",") if n != batch][0]
        with dead_node(worker) as killed:
            ended = wait_for(lambda: "[runner] exit " in job.log() and time.monotonic(), NODE_LOSS_BOUND,
                             f"job {job.id} to end after {worker} died")
            took = ended - killed
            print(f"node {worker} killed: the runner's run ended after {took:.1f} s")
            text = job.log()
            # the runner saw it first (Ray), or Slurm did (NODE_FAIL, requeued): both end the run
            assert (f"{worker}" in text and "the job cannot go on without it" in text) or \
                "Slurm has requeued the job itself" in text, text[-3000:]
            assert_clean(job, timeout=30)  # nothing of the job left on the surviving node
            state = job.state()
            assert state.phase == "failed" and "requeued" in (state.message or ""), state
            release.write_text("go")
            print(f"{worker} state after the run: {node_state(worker)}")
        text = assert_resumed_and_completed(job)
        print(f"killed -> second run done: {time.monotonic() - killed:.1f} s; "
              + [l for l in text.splitlines() if "the job cannot go on" in l or "SIGTERM:" in l][0])
    finally:
        get_scheduler("cli").cancel(job.id)


def _urgent_everywhere(nodes: int) -> int:
    done = subprocess.run(["sbatch", "--parsable", "-p", "urgent", "-N", str(nodes), "--exclusive",
                           "-J", "runnertest-urgent", "-o", "/dev/null", "--wrap", "sleep 3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().split(";")[0])


def test_a_preempted_job_is_requeued_by_slurm_and_resumes(experiments, tmp_path, local_network):
    release, ckpt = tmp_path / "release", tmp_path / "ckpt"
    job = submit(experiments, "preempt", 1, [f"demo.wait_for_file={release}", f"demo.checkpoint_dir={ckpt}"],
                 max_restarts=1, time_limit=30)
    urgent = None
    try:
        wait_for(lambda: "demo: waiting for" in job.log(), 120, f"job {job.id} to be training")
        urgent = _urgent_everywhere(len(local_network.nodes))
        preempted = time.monotonic()
        wait_for(lambda: "[runner] exit " in job.log(), 60, f"job {job.id} to be preempted")
        print(f"preempting job submitted -> the runner's run ended: {time.monotonic() - preempted:.1f} s")
        text = job.log()
        assert "received SIGTERM: stopping" in text, text[-3000:]
        assert "SIGTERM: Slurm has requeued the job itself" in text, text[-3000:]
        assert "not requeueing: Slurm has requeued the job itself (restart 1 next)" in text
        assert "requeued: Slurm will run" not in text  # never a second requeue
        assert_clean(job, timeout=30)
        assert "requeued by Slurm" in (job.state().message or "")
        release.write_text("go")
        assert_resumed_and_completed(job)
        print(f"preempted -> second run done: {time.monotonic() - preempted:.1f} s")
    finally:
        get_scheduler("cli").cancel(job.id)
        if urgent:
            get_scheduler("cli").cancel(urgent)
