"""RAY_AUTH on the real cluster with a trainer's Ray older than 2.52 (OT_HPC_FAULT_RAY_VERSION
makes the runner take this Ray for 2.51.1, skyrl-train 0.3.1's pin): ``auto`` trains without
authentication after one warning line naming the version and the risk; ``required`` stops
before Ray starts, exit 2."""
from __future__ import annotations

import pytest

from ot_hpc.scheduler import JobState

from .test_runner_slurm import experiments, ray_available, submit  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available")]
OLD = {"OT_HPC_FAULT_RAY_VERSION": "2.51.1"}


def test_old_ray_under_auto_runs_after_one_warning(experiments):  # noqa: F811
    job = submit(experiments, "oldray-auto", 1, ["demo.print_env=RAY_AUTH_MODE,RAY_AUTH_TOKEN_PATH"],
                 environment=OLD)
    record = job.wait_end()
    text = job.log()
    assert record.state == JobState.COMPLETED, text[-3000:]
    warnings = [line for line in text.splitlines() if "WARNING" in line and "2.51.1" in line]
    assert len(warnings) == 1 and "[environment] WARNING: " in warnings[0], warnings
    assert "has no token authentication" in warnings[0] and "run code as you" in warnings[0]
    assert "NO authentication" in text and "demo: env RAY_AUTH_MODE=disabled" in text
    assert "demo: env RAY_AUTH_TOKEN_PATH=<unset>" in text


def test_old_ray_under_required_stops_before_ray(experiments):  # noqa: F811
    job = submit(experiments, "oldray-required", 1, environment=OLD, spec_extra={"ray_auth": "required"})
    record = job.wait_end()
    text = job.log()
    assert record.exit_code == 2, text[-3000:]
    assert "[environment] failed after" in text and "RAY_AUTH=required but Ray 2.51.1" in text
    assert "[ray] begin" not in text
