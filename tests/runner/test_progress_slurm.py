"""Training progress end to end: the real runner on the local Slurm cluster runs the CPU
stand-in printing SkyRL-shaped progress (real tqdm bar with ``\\r`` redraws, ``Step N:``
dicts), once as skyrl-train prints it to its own stderr, once as skyrl 0.4's loop does
from a Ray task (through Ray's driver, prefixed). While each job holds after its steps,
the run-state file and ``ot-status --json`` carry step, total and reward, and the text
output shows the line; after it ends the last progress stays in the run-state file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ot_hpc import demo_progress
from ot_hpc.scheduler import JobState

from ..conftest import REPO, wait_for
from .test_runner_slurm import JOB_TIMEOUT, assert_clean, experiments, ray_available, submit  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available")]

STEPS, TOTAL = 3, 6
WANT_REWARD = demo_progress.reward_at(STEPS, TOTAL)
MODES = {"stderr": ("skyrl-train", "false"), "ray": ("skyrl", "true")}


def ot_status(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, OT_HPC_BACKEND="cli")
    return subprocess.run([sys.executable, "-m", "ot_hpc.cli.status", *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=REPO)


@pytest.fixture(scope="module")
def progress_jobs(experiments, tmp_path_factory):  # noqa: F811
    """Both jobs at once (1 node, 1 CPU each), each holding after its steps until released."""
    pytest.importorskip("tqdm")
    release = tmp_path_factory.mktemp("progress") / "release"
    jobs = {}
    for mode, (line, in_ray) in MODES.items():
        jobs[mode] = submit(experiments, f"progress-{mode}", 1, [
            f"demo.skyrl_progress={line}", f"demo.progress_in_ray={in_ray}", f"demo.progress_steps={STEPS}",
            f"demo.progress_total={TOTAL}", "demo.progress_delay=0.3", f"demo.wait_for_file={release}"])
    seen = {}
    try:
        for mode, job in jobs.items():
            def held_with_progress(job=job):
                state = job.state()
                progress = state.progress if state else None
                return progress if progress and progress.get("metrics_step") == STEPS and \
                    progress.get("step") == STEPS and "demo: waiting for" in job.log() else None

            seen[mode] = {"state": wait_for(held_with_progress, JOB_TIMEOUT, f"{mode} job {job.id}'s progress"),
                          "json": ot_status("--json", "--experiments-dir", experiments, str(job.id)),
                          "text": ot_status("--experiments-dir", experiments, str(job.id))}
    except BaseException:
        for job in jobs.values():
            print(job.log()[-4000:])
        raise
    finally:
        release.write_text("go")
    for mode, job in jobs.items():
        seen[mode]["record"] = job.wait_end()
        seen[mode]["job"] = job
    return seen


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_run_state_file_carries_the_progress(progress_jobs, mode):
    progress = progress_jobs[mode]["state"]
    assert (progress["step"], progress["total"], progress["metrics_step"]) == (STEPS, TOTAL, STEPS)
    assert progress["metrics"] == {"reward": WANT_REWARD, "loss": demo_progress.loss_at(STEPS)}
    assert progress["metric_keys"]["reward"] == "reward/avg_raw_reward"
    assert progress["rewards"] == [[s, demo_progress.reward_at(s, TOTAL)] for s in range(1, STEPS + 1)]
    assert progress["seconds_per_step"] > 0 and progress["eta_seconds"] is not None


@pytest.mark.parametrize("mode", sorted(MODES))
def test_ot_status_json_and_text_show_it(progress_jobs, mode):
    job = progress_jobs[mode]["job"]
    result = progress_jobs[mode]["json"]
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)["jobs"]
    assert item["job_id"] == job.id and item["phase"] == "training"
    assert (item["progress"]["step"], item["progress"]["total"]) == (STEPS, TOTAL)
    assert item["progress"]["metrics"]["reward"] == WANT_REWARD
    text = progress_jobs[mode]["text"]
    assert text.returncode == 0, text.stderr
    line = next((l.strip() for l in text.stdout.splitlines() if "training step" in l), "")
    assert line.startswith(f"training step {STEPS}/{TOTAL}, ") and ", ETA " in line, text.stdout
    assert f"reward {WANT_REWARD:g} " in line and "loss 0.25" in line


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_job_ends_well_and_keeps_its_last_progress(progress_jobs, mode):
    job, record = progress_jobs[mode]["job"], progress_jobs[mode]["record"]
    text = job.log()
    assert record.state == JobState.COMPLETED, text[-3000:]
    if mode == "ray":
        assert "(skyrl_entrypoint pid=" in text  # it really came through Ray's driver
    assert "Training Batches Processed:  50%" in text and "Step 3: " in text
    state = job.state()
    assert state.phase == "done" and state.progress["step"] == STEPS
    assert "progress reading switched off" not in text
    assert_clean(job)
