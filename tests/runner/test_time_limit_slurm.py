"""The time-limit warning against the real local cluster: Slurm's ``--signal=B:USR2@N``
(what every job of ot-submit asks for) reaches the runner, which stops the trainer (it
checkpoints), requeues the job while restarts are left, and the next run resumes from the
checkpoint. ``scancel --batch --signal=USR2`` is exactly what Slurm sends N seconds before
the limit, without waiting for it. Next to it: a user's scancel of the same kind of job
(SIGTERM, asked of Slurm: CANCELLED) is never requeued (tests/runner/test_node_faults_slurm.py
has that and preemption, which needs the 'urgent' partition).
"""
from __future__ import annotations

import subprocess

import pytest

from ot_hpc.scheduler import get_scheduler

from ..conftest import wait_for
from .test_runner_slurm import (assert_resumed_and_completed, experiments, ray_available,  # noqa: F401
                                submit)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available")]


def test_the_time_limit_warning_checkpoints_and_requeues(experiments, tmp_path):
    release, ckpt = tmp_path / "release", tmp_path / "ckpt"
    job = submit(experiments, "usr2", 1, [f"demo.wait_for_file={release}", f"demo.checkpoint_dir={ckpt}"],
                 max_restarts=1, time_limit=30)
    try:
        wait_for(lambda: "demo: waiting for" in job.log(), 120, f"job {job.id} to be training")
        subprocess.run(["scancel", "--batch", "--signal=USR2", str(job.id)], check=True, timeout=30)
        # the runner logs "[runner] exit 140" first, then requeues and says how that went
        wait_for(lambda: any(said in job.log() for said in ("[runner] requeued: ", "[runner] requeue failed")),
                 60, f"job {job.id}'s run to end and requeue after USR2")
        text = job.log()
        assert "received SIGUSR2: stopping" in text, text[-3000:]
        assert "[runner] exit 140" in text, text[-3000:]
        assert "requeued: Slurm will run this job again under the same id" in text, text[-3000:]
        assert "SIGTERM: " not in text  # USR2 is the time limit: Slurm is not asked why
        release.write_text("go")
        assert_resumed_and_completed(job)
    finally:
        get_scheduler("cli").cancel(job.id)
