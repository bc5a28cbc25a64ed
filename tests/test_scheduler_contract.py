"""One contract, every backend, the real local Slurm cluster.

Lanes:
- ``cli``: Slurm's commands.
- ``pyslurm``: the real pyslurm bindings; skipped with the reason where pyslurm does not
  import (it builds only against Slurm 25.11; CI machines run 22.05/24.11).
- ``pyslurm-standin``: the same pyslurm backend code driving a strict stand-in of the
  pyslurm 25.11.2 API (tests/standin/pyslurm, names read from the sources), itself
  backed by this real cluster: a wrong pyslurm attribute name fails here too.
"""
from __future__ import annotations

import importlib
import os
import sys
from datetime import datetime, timedelta

import pytest

from ot_hpc.scheduler import BackendUnavailable, JobRequest, JobState, SchedulerError
from ot_hpc.scheduler.commands import CommandScheduler

from .conftest import REPO, base_environment, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

STANDIN_DIR = os.path.join(REPO, "tests", "standin")
LANES = ("cli", "pyslurm", "pyslurm-standin")
NAME_PREFIX = "contract-"
TIMEOUT_WAIT_SECONDS = 200  # 1-minute limit + slurmctld's 30 s check + KillWait


def _real_pyslurm_scheduler():
    from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler

    return PyslurmScheduler()


def load_standin_pyslurm():
    """Import tests/standin/pyslurm without leaving it visible as ``pyslurm``."""
    saved = {name: mod for name, mod in sys.modules.items() if name == "pyslurm" or name.startswith("pyslurm.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, STANDIN_DIR)
    try:
        module = importlib.import_module("pyslurm")
        importlib.import_module("pyslurm.db")
    finally:
        sys.path.remove(STANDIN_DIR)
        for name in [n for n in sys.modules if n == "pyslurm" or n.startswith("pyslurm.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    return module


def make_scheduler(lane: str):
    if lane == "cli":
        return CommandScheduler()
    from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler

    if lane == "pyslurm":
        try:
            return PyslurmScheduler()
        except BackendUnavailable as exc:
            pytest.skip(f"real pyslurm lane: pyslurm cannot be used here: {exc}")
    return PyslurmScheduler(pyslurm_module=load_standin_pyslurm())


@pytest.fixture(scope="session")
def lane_schedulers(slurm_cluster):
    """One scheduler per lane, built once (a lane that cannot run holds its skip reason)."""
    built = {}
    for lane in LANES:
        try:
            built[lane] = make_scheduler(lane)
        except pytest.skip.Exception as exc:
            built[lane] = exc
    return built


@pytest.fixture(scope="session")
def timeout_jobs(lane_schedulers, tmp_path_factory):
    """A 1-minute job per lane, all submitted when the first lane starts, so the ~90 s
    until Slurm ends them overlap each other and the rest of the suite."""
    tmp = tmp_path_factory.mktemp("timeout")
    jobs = {}
    for lane, sched in lane_schedulers.items():
        if not isinstance(sched, BaseException):
            jobs[lane] = sched.submit(request_for(tmp, f"timeout-{lane}", "sleep 600", time_limit_minutes=1))
    yield jobs
    for job_id in jobs.values():
        CommandScheduler().cancel(job_id)


@pytest.fixture(scope="module", params=LANES)
def scheduler(request, lane_schedulers):
    sched = lane_schedulers[request.param]
    if isinstance(sched, BaseException):
        pytest.skip(str(sched))
    created = []
    sched.created_job_ids = created  # cancelled at the end of the lane
    sched.lane = request.param
    yield sched
    for job_id in created:
        CommandScheduler().cancel(job_id)


def request_for(tmp_path, name, script_body, **changes):
    values = dict(
        script="#!/bin/bash\n" + script_body + "\n",
        name=NAME_PREFIX + name,
        nodes=1,
        time_limit_minutes=5,
        environment={**base_environment(), "OT_CONTRACT_MARK": "given"},
        output_path=str(tmp_path / f"{name}-%j.out"),
        working_directory=str(tmp_path),
    )
    values.update(changes)
    return JobRequest(**values)


def submit(scheduler, request):
    job_id = scheduler.submit(request)
    scheduler.created_job_ids.append(job_id)
    return job_id


def wait_state(scheduler, job_id, states, timeout=60):
    def check():
        record = scheduler.get_job(job_id)
        return record if record is not None and record.state in states else None

    return wait_for(check, timeout, f"job {job_id} to reach {sorted(s.value for s in states)}")


def test_starts_timeout_jobs_and_two_nodes_run_two_tasks(scheduler, timeout_jobs, tmp_path):
    request = request_for(
        tmp_path, "twonodes",
        "srun bash -c 'echo node=$SLURMD_NODENAME'\nenv | sort > env.txt",
        nodes=2, ntasks_per_node=1,
    )
    job_id = submit(scheduler, request)
    record = wait_state(scheduler, job_id, {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
    assert record.state is JobState.COMPLETED, record
    output = (tmp_path / f"twonodes-{job_id}.out").read_text()
    nodes = {line.split("=", 1)[1] for line in output.splitlines() if line.startswith("node=")}
    assert len(nodes) == 2, output
    assert record.node_count == 2


def test_environment_is_exactly_what_was_given(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("OT_CONTRACT_LEAK", "login-env-value")
    job_id = submit(scheduler, request_for(tmp_path, "env", "env | sort"))
    wait_state(scheduler, job_id, {JobState.COMPLETED})
    env_lines = (tmp_path / f"env-{job_id}.out").read_text().splitlines()
    assert "OT_CONTRACT_MARK=given" in env_lines
    assert not [line for line in env_lines if line.startswith("OT_CONTRACT_LEAK=")]


def test_held_job_reads_back_every_field_then_cancels(scheduler, tmp_path, current_user):
    request = request_for(tmp_path, "held", "sleep 1", nodes=2, time_limit_minutes=7,
                          partition="gpu", gpus_per_node=2, hold=True)
    job_id = submit(scheduler, request)
    record = scheduler.get_job(job_id)
    assert record is not None
    assert record.job_id == job_id and record.name == NAME_PREFIX + "held"
    assert record.user == current_user
    assert record.state is JobState.PENDING and record.reason and "Held" in record.reason
    assert record.partition == "gpu" and record.node_count == 2
    assert record.time_limit_minutes == 7
    assert record.submit_time is not None and abs(datetime.now().astimezone() - record.submit_time) < timedelta(minutes=5)
    assert record.start_time is None and record.end_time is None
    assert record.stdout_path == str(tmp_path / f"held-{job_id}.out")
    assert record.restart_count == 0

    mine = {r.job_id: r for r in scheduler.list_jobs(user=current_user)}
    assert job_id in mine and mine[job_id].state is JobState.PENDING
    assert job_id not in {r.job_id for r in scheduler.list_jobs(user="nobody")}
    # A user passwd does not know lists nothing (squeue -u says "Invalid user"), digits too.
    assert scheduler.list_jobs(user="no-such-user-ot") == []
    assert scheduler.list_jobs(user=str(os.getuid())) == []
    assert record.account, record
    team = {r.job_id: r for r in scheduler.list_jobs(account=record.account)}
    assert team[job_id].user == current_user and team[job_id].account == record.account
    assert job_id not in {r.job_id for r in scheduler.list_jobs(account="no-such-account-ot")}

    scheduler.cancel(job_id)
    record = wait_state(scheduler, job_id, {JobState.CANCELLED}, timeout=30)
    assert record.end_time is not None
    scheduler.cancel(job_id)  # cancelling a finished job is not an error
    assert scheduler.get_job(10**9 - 7) is None


def test_release_runs_a_held_job(scheduler, tmp_path):
    job_id = submit(scheduler, request_for(tmp_path, "release", "true", hold=True))
    assert scheduler.get_job(job_id).state is JobState.PENDING
    scheduler.release(job_id)
    wait_state(scheduler, job_id, {JobState.COMPLETED})


def test_failing_job_reports_exit_code(scheduler, tmp_path):
    job_id = submit(scheduler, request_for(tmp_path, "fail", "echo failing; exit 3"))
    record = wait_state(scheduler, job_id, {JobState.FAILED, JobState.COMPLETED})
    assert record.state is JobState.FAILED
    assert record.exit_code == 3 and not record.exit_signal
    assert record.elapsed_seconds is not None and record.start_time and record.end_time


def test_requeue_restarts_the_same_job(scheduler, tmp_path):
    job_id = submit(scheduler, request_for(tmp_path, "requeue", "sleep 300", requeue=True))
    wait_state(scheduler, job_id, {JobState.RUNNING})
    scheduler.requeue(job_id)

    def restarted():
        record = scheduler.get_job(job_id)
        return record if record and record.restart_count >= 1 else None

    record = wait_for(restarted, 60, f"job {job_id} to be requeued")
    assert record.state.is_active
    scheduler.cancel(job_id)


def test_refused_submission_raises_slurms_message(scheduler, tmp_path):
    with pytest.raises(SchedulerError) as info:
        scheduler.submit(request_for(tmp_path, "refused", "true", partition="no-such-partition"))
    assert "partition" in str(info.value).lower()
    assert "\n" not in str(info.value)
    with pytest.raises(SchedulerError) as info:
        scheduler.submit(request_for(tmp_path, "toobig", "true", nodes=50))
    # Slurm's words, e.g. "More processors requested than permitted" (the local cluster sets
    # EnforcePartLimits=ALL, so what can never run is refused at submission).
    message = str(info.value).lower()
    assert "\n" not in message and any(word in message for word in ("processor", "node", "limit"))


def test_finished_jobs_in_accounting_for_user_and_window(scheduler, tmp_path, current_user):
    before = datetime.now().astimezone() - timedelta(seconds=2)
    job_id = submit(scheduler, request_for(tmp_path, "acct", "exit 3"))
    wait_state(scheduler, job_id, {JobState.FAILED})

    def in_history():
        # slurmdbd catches up asynchronously: for a moment a record may carry Slurm's
        # placeholder name "allocation" before the job's own name arrives.
        end = datetime.now().astimezone() + timedelta(seconds=2)
        found = [r for r in scheduler.list_finished_jobs(current_user, before, end)
                 if r.job_id == job_id and r.name == NAME_PREFIX + "acct"]
        return found[0] if found else None

    record = wait_for(in_history, 60, f"job {job_id} in accounting", interval=1.0)
    assert record.user == current_user and record.state is JobState.FAILED and record.exit_code == 3
    # A window that ended before the job started does not list it.
    earlier = scheduler.list_finished_jobs(current_user, before - timedelta(hours=2), before - timedelta(hours=1))
    assert job_id not in {r.job_id for r in earlier}
    # Another user's history does not list it.
    others = scheduler.list_finished_jobs("nobody", before, datetime.now().astimezone())
    assert job_id not in {r.job_id for r in others}


def test_time_limit_ends_in_timeout(scheduler, timeout_jobs):
    record = wait_state(scheduler, timeout_jobs[scheduler.lane], {JobState.TIMEOUT, JobState.FAILED, JobState.CANCELLED,
                                                 JobState.COMPLETED}, timeout=TIMEOUT_WAIT_SECONDS)
    assert record.state is JobState.TIMEOUT, record


def test_partition_limits(scheduler):
    debug = scheduler.get_partition("debug")
    assert (debug.name, debug.total_nodes, debug.max_time_minutes) == ("debug", 3, 1440)
    assert debug.state == "UP" and debug.node_limit == 3
    assert scheduler.get_partition("gpu").max_time_minutes == 2880
    assert scheduler.get_partition("no-such-partition") is None
    assert set(scheduler.list_partition_names()) >= {"debug", "gpu"}


# --- one contract for every Slurm version (22.05's and 25.11's formats differ) ----------


def test_exit_code_and_signal_from_the_controller_on_every_version(scheduler, tmp_path, current_user):
    """squeue's exit_code is 768 on 22.05 and 3:0 from 23.02 on; scontrol and pyslurm have
    their own forms: every path reports exit 3, and signal 9 for a SIGKILLed job."""
    failed = submit(scheduler, request_for(tmp_path, "exit3", "exit 3"))
    killed = submit(scheduler, request_for(tmp_path, "sigkill", "kill -9 $$"))
    for job_id in (failed, killed):
        wait_state(scheduler, job_id, {JobState.FAILED, JobState.COMPLETED, JobState.CANCELLED})
    listed = {r.job_id: r for r in scheduler.list_jobs(user=current_user, include_finished=True)}
    for record in (listed[failed], scheduler.get_job(failed)):
        assert (record.state, record.exit_code, record.exit_signal or 0) == (JobState.FAILED, 3, 0), record
    for record in (listed[killed], scheduler.get_job(killed)):
        assert record.state is JobState.FAILED and record.exit_signal == 9, record


def test_stdout_path_is_expanded_and_absolute_on_every_path(scheduler, tmp_path, current_user):
    """A relative pattern with %x, %j, %u, %A, %a and %% is reported as the absolute,
    expanded path Slurm writes, by the listing and by get_job, pending and finished."""
    pattern = "rel/%x_%j_%u_%A_%a_100%%.out"
    (tmp_path / "rel").mkdir()
    job_id = submit(scheduler, request_for(tmp_path, "pattern", "echo written", output_path=pattern,
                                           hold=True))
    name = NAME_PREFIX + "pattern"
    expected = str(tmp_path / "rel" / f"{name}_{job_id}_{current_user}_{job_id}_4294967294_100%.out")

    def reported():
        listed = {r.job_id: r for r in scheduler.list_jobs(user=current_user, include_finished=True)}
        return [listed[job_id].stdout_path, scheduler.get_job(job_id).stdout_path]

    assert reported() == [expected, expected]
    scheduler.release(job_id)
    wait_state(scheduler, job_id, {JobState.COMPLETED})
    assert reported() == [expected, expected]
    assert open(expected).read() == "written\n"


def test_a_user_slurm_does_not_know_has_no_jobs_and_no_history(scheduler):
    """25.11's sacct fails for a user without an association, 22.05's squeue warns and
    22.05/24.11's sacct say nothing: every backend answers "none" for all of them. ``daemon``
    is in every Debian passwd and never runs a job here (``nobody`` does: the benchmarks
    submit as nobody); the other name is in no passwd at all."""
    now = datetime.now().astimezone()
    for user in ("daemon", "no-such-user-ot-hpc"):
        assert scheduler.list_finished_jobs(user, now - timedelta(hours=1), now) == []
        assert scheduler.list_jobs(user=user) == []
