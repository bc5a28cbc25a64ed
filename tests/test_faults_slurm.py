"""A bad day for Slurm's daemons: slurmctld stopped, slurmctld frozen, slurmdbd stopped.

Against the real local cluster, whole ot-* processes on both backends (pyslurm: the strict
stand-in driving the same cluster). Every test stops a daemon and restores it (and waits
until the controller answers) even when it fails; they run after every other test
(marker ``faults``, see conftest.py). Never run them on a cluster others are using: use
your own lane (tools/debian13-lane.sh with OT_LANE_NETNS).

The bound checked is the issue's: each ot-* command gives up within 1.5x the plain
client's own give-up time (measured here, in the same minute, for squeue and sbatch).
Measured times are printed (pytest -s).
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ot_hpc.scheduler.deadline import command_deadline

from . import faultkit
from .faultkit import BACKENDS, error_lines, ot, stopped, timed

pytestmark = [pytest.mark.slurm, pytest.mark.faults, pytest.mark.usefixtures("slurm_cluster")]

BOUND = 1.5  # ot-* give-up time <= BOUND x the plain client's


@pytest.fixture(autouse=True)
def _may_stop_daemons():
    faultkit.require_faults()


def submit_args(name: str, exp: Path):
    return ["--config", "demo.env", "--cluster", "local", "--hold", "--job-name", name,
            "--experiments-dir", str(exp)]


def left_behind(exp: Path):
    """Files ot-submit wrote under its experiments directory."""
    return sorted(str(p.relative_to(exp)) for p in exp.rglob("*") if p.is_file()) if exp.exists() else []


def report(what: str, seconds: float) -> None:
    print(f"[faults] {what}: {seconds:.1f} s", file=sys.stderr)


def assert_unreachable(result, seconds: float, bound: float, command: str, backend: str) -> None:
    """Exit 1, one line saying the controller is unreachable, inside the bound."""
    lines = error_lines(result.stderr)
    assert result.returncode == 1, (command, backend, result.stdout, result.stderr)
    assert len(lines) == 1 and "controller unreachable" in lines[0].lower(), lines
    assert seconds <= bound, f"{command} ({backend}) took {seconds:.1f} s > {bound:.1f} s"


def test_controller_down_each_command_fails_in_one_line_within_its_deadline_then_recovers(tmp_path):
    name = f"faultctl-{uuid.uuid4().hex[:6]}"
    exp = tmp_path / "exp"
    try:
        with stopped("slurmctld"):
            plain = {}
            for command in (["squeue", "-h"], ["sbatch", "--hold", "-J", name, "--wrap", "true"]):
                result, plain[command[0]] = timed(command)
                assert result.returncode != 0, result.stdout
                report(f"plain {command[0]} gives up", plain[command[0]])
            bound = BOUND * max(plain.values())
            for backend in BACKENDS:
                for command, args in (("ot-status", []), ("ot-submit", submit_args(name, exp))):
                    result, seconds = ot(command, args, backend, cwd=str(tmp_path))
                    report(f"{command} --backend {backend} gives up", seconds)
                    assert_unreachable(result, seconds, bound, command, backend)
                    assert left_behind(exp) == [], left_behind(exp)
                # ot-sfail reads accounting (slurmdbd), which still answers: it works.
                result, seconds = ot("ot-sfail", [], backend, cwd=str(tmp_path))
                report(f"ot-sfail --backend {backend} (accounting up) answers", seconds)
                assert result.returncode == 0 and result.stderr == "", result.stderr
            with stopped("slurmdbd"):  # no accounting either: the fallback finds no controller
                for backend in BACKENDS:
                    result, seconds = ot("ot-sfail", [], backend, cwd=str(tmp_path))
                    report(f"ot-sfail --backend {backend} (accounting down too) gives up", seconds)
                    assert_unreachable(result, seconds, bound, "ot-sfail", backend)
        # Restarted: everything works again, nothing to clean up by hand.
        assert faultkit.jobs_named(name) == []  # neither sbatch nor ot-submit made a job
        for backend in BACKENDS:
            result, _ = ot("ot-status", [], backend, cwd=str(tmp_path))
            assert result.returncode == 0, result.stderr
            result, _ = ot("ot-submit", submit_args(name, exp), backend, cwd=str(tmp_path))
            assert result.returncode == 0, result.stderr
        assert len(faultkit.jobs_named(name)) == 2
        assert len(list((exp / "specs").glob(f"{name}_*.json"))) == 2
    finally:
        faultkit.cancel_named(name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_controller_that_comes_back_inside_the_deadline_is_used(tmp_path, backend):
    name = f"faultback-{uuid.uuid4().hex[:6]}"
    exp = tmp_path / "exp"
    try:
        with stopped("slurmctld"):
            command = [sys.executable, str(faultkit.REPO / "bin" / "ot-submit"), *submit_args(name, exp)]
            started = time.monotonic()
            process = subprocess.Popen(command, env=faultkit.command_env(backend), cwd=str(tmp_path),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            faultkit.restore("slurmctld")  # back while ot-submit still tries
            out, err = process.communicate(timeout=120)
            seconds = time.monotonic() - started
        report(f"ot-submit --backend {backend}, controller back after ~1 s + its start-up", seconds)
        assert process.returncode == 0, err
        assert len(faultkit.jobs_named(name)) == 1
        assert len(list((exp / "specs").glob(f"{name}_*.json"))) == 1
    finally:
        faultkit.cancel_named(name)


def _request(tmp_path: Path, name: str):
    import socket

    from ot_hpc import submission
    from ot_hpc.config.discovery import load_config

    config = load_config("demo.env", {"CLUSTER": "local", "HOLD": "true", "JOB_NAME": name,
                                      "EXPERIMENTS_DIR": str(tmp_path / "exp")}, [],
                         hostname=socket.gethostname(), fqdn=socket.getfqdn())
    return submission.build(config, cwd=str(faultkit.REPO), run_skyrl_check=False)


def _scheduler(backend: str):
    if backend == "cli":
        from ot_hpc.scheduler.commands import CommandScheduler

        return CommandScheduler()
    from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler

    from .test_scheduler_contract import load_standin_pyslurm

    return PyslurmScheduler(pyslurm_module=load_standin_pyslurm())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_submission_that_times_out_keeps_its_spec_and_says_how_to_check(tmp_path, backend):
    """slurmctld frozen (SIGSTOP): it accepts sbatch's connection and answers nothing, so
    sbatch times out after it may have handed the job over; once thawed the controller
    may create the job. Its spec must still be there, and the message says how to check."""
    from ot_hpc import submission
    from ot_hpc.scheduler import SubmissionUncertain

    name = f"faultfrz-{uuid.uuid4().hex[:6]}"
    request = _request(tmp_path, name)
    scheduler = _scheduler(backend).use_deadline(command_deadline())
    try:
        with faultkit.frozen_controller():
            started = time.monotonic()
            with pytest.raises(SubmissionUncertain) as caught:
                submission.schedule(request, scheduler)
            report(f"submit --backend {backend} to a frozen controller gives up", time.monotonic() - started)
        message = str(caught.value)
        assert "ot-status" in message and request.spec_path in message and "\n" not in message
        assert Path(request.spec_path).exists()  # whatever Slurm did, the job has its spec
        time.sleep(2)  # thawed: the controller handles what it had received
        created = len(faultkit.jobs_named(request.job_request.name))
        print(f"[faults] jobs the thawed controller created ({backend}): {created}", file=sys.stderr)
    finally:
        faultkit.cancel_named(request.job_request.name)


def test_accounting_down_sfail_falls_back_to_the_controller_and_submit_still_submits(tmp_path):
    name = f"faultdbd-{uuid.uuid4().hex[:6]}"
    exp = tmp_path / "exp"
    try:
        with stopped("slurmdbd"):
            for backend in BACKENDS:
                result, seconds = ot("ot-sfail", [], backend, cwd=str(tmp_path))
                report(f"ot-sfail --backend {backend}, accounting down", seconds)
                assert result.returncode == 0, result.stderr
                assert "accounting is not available" in result.stderr.lower()
                assert "controller" in result.stderr
                result, seconds = ot("ot-submit", submit_args(name, exp), backend, cwd=str(tmp_path))
                report(f"ot-submit --backend {backend}, accounting down", seconds)
                assert result.returncode == 0, result.stderr
            assert len(faultkit.jobs_named(name)) == 2
    finally:
        faultkit.cancel_named(name)
