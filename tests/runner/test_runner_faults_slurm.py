"""Trainer and egress faults, end to end: real local Slurm cluster, real sshd, real Ray.

Each fault must end with one clear line in the run state, the right exit code, the final
state written before Slurm's SIGKILL, and nothing left running (processes, Ray ports). The
local cluster's KillWait is 10 s (tools/local-cluster.sh), a small one: every scancel here
is a test of the shutdown budget. Tests that stop the login sshd are marked ``faults`` (a
lane of your own: tools/debian13-lane.sh); the others only touch their own jobs.
Measured times go to stderr as ``[faults] ...: X s`` (the README's table).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ot_hpc.runner.exit_codes import EXIT_TRAINER_IDLE
from ot_hpc.runner.shutdown import is_running
from ot_hpc.scheduler import JobState, get_scheduler

from .. import faultkit
from ..conftest import wait_for
from .test_runner_slurm import (SSHD_SCRIPT, JOB_TIMEOUT, assert_clean, experiments,  # noqa: F401
                                http_url, login_sshd, ray_available, submit)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available", "local_network")]

KILL_WAIT = 10  # the local cluster's (scontrol show config); the spec carries it


def report(what: str, seconds: float) -> None:
    print(f"[faults] {what}: {seconds:.1f} s", file=sys.stderr)


def limits(**extra):
    return {"kill_wait_seconds": KILL_WAIT, **extra}


def training(job, words="demo: sleeping"):
    wait_for(lambda: words in job.log(), JOB_TIMEOUT, f"job {job.id} to be training")
    return job.state()


def ended(job, timeout=JOB_TIMEOUT):
    record = job.wait_end(timeout)
    return record, job.state(), job.log()


def assert_failed(job, record, state, text, code: int, *words: str) -> None:
    """The job FAILED with ``code``, its run state says so with every one of ``words``."""
    assert record.state == JobState.FAILED and record.exit_code == code, text[-3000:]
    assert state.phase == "failed" and state.exit_code == code
    for word in words:
        assert word in state.message, state.message
    assert_clean(job)


def final_state_after(job, since: float, timeout: float = 60):
    """The run state once it is final (done/failed), and the seconds from ``since``."""
    state = wait_for(lambda: (s := job.state()) is not None and s.phase in ("done", "failed") and s,
                     timeout, f"job {job.id}'s final run state")
    return state, state.updated_at - since


# ---- the trainer ------------------------------------------------------------------------
def test_trainer_killed_by_sigkill_says_out_of_memory(experiments):
    job = submit(experiments, "sigkill", 2, ["demo.sleep_seconds=300"], spec_extra=limits())
    pid = training(job).details["trainer_pid"]
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer does
    state, seconds = final_state_after(job, killed_at)
    record, state, text = ended(job)
    report("trainer SIGKILLed -> final state", seconds)
    assert record.state == JobState.FAILED and record.exit_code == 137, text[-3000:]
    assert state.phase == "failed" and state.exit_code == 137
    assert state.message.startswith("trainer killed by SIGKILL (signal 9; out of memory? check dmesg/sacct MaxRSS)")
    assert "[training] trainer killed by SIGKILL" in text and "[runner] exit 137;" in text
    assert_clean(job)


def test_trainer_exit_137_is_named_as_a_likely_oom_kill(experiments):
    job = submit(experiments, "exit137", 1, ["demo.exit_code=137"], spec_extra=limits())
    record, state, text = ended(job)
    assert_failed(job, record, state, text, 137, "code 137 (128+9: SIGKILL, likely killed for memory")


def test_trainer_ignoring_sigterm_is_killed_within_killwait_and_the_state_is_final(experiments):
    # SHUTDOWN_GRACE 15 would outlast the cluster's KillWait of 10 s (ot-submit refuses
    # it; this spec is hand-made): the budget cuts the grace so the final state is written
    # before Slurm's SIGKILL.
    job = submit(experiments, "ignoreterm", 2, ["demo.ignore_sigterm=true", "demo.sleep_seconds=300"],
                 grace=15, spec_extra=limits())
    training(job)
    cancelled_at = time.time()
    get_scheduler("cli").cancel(job.id)
    state, seconds = final_state_after(job, cancelled_at)
    record, state, text = ended(job, 60)
    report(f"scancel, trainer ignores SIGTERM, KillWait {KILL_WAIT} s -> final state", seconds)
    assert record.state == JobState.CANCELLED, text[-3000:]
    assert state.phase == "failed" and state.exit_code == 143, text[-3000:]
    assert state.message.startswith("stopped by SIGTERM") and "of SIGTERM: killed" in state.message
    assert "[shutdown] budget KillWait 10 s: trainer 5 s" in text
    assert "[runner] exit 143;" in text
    assert seconds < KILL_WAIT  # written before Slurm's SIGKILL (else the phase stays "shutdown")
    assert_clean(job)


def test_a_trainer_that_prints_nothing_is_stopped_after_the_idle_timeout(experiments):
    job = submit(experiments, "hang", 2, ["demo.hang=true"],
                 spec_extra=limits(trainer_idle_timeout_seconds=5))
    training(job, "demo: hanging")
    hung_at = time.time()
    state, seconds = final_state_after(job, hung_at)
    record, state, text = ended(job)
    report("silent trainer (TRAINER_IDLE_TIMEOUT 5 s) -> final state", seconds)
    assert_failed(job, record, state, text, EXIT_TRAINER_IDLE, "printed nothing for",
                  "(TRAINER_IDLE_TIMEOUT 5 s): hung? stopped it")


# ---- the tunnel -------------------------------------------------------------------------
def kill_tunnel_in_a_loop(job, stop: threading.Event, pause: float = 0.3) -> threading.Thread:
    """Kill the tunnel's current ssh again and again (its watchdog restarts it each time)."""
    def loop():
        while not stop.is_set():
            state = job.state()
            pid = (state.details or {}).get("tunnel_pid") if state else None
            if pid and is_running(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            stop.wait(pause)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_a_flapping_tunnel_does_not_delay_shutdown(experiments, login_sshd):
    job = submit(experiments, "flap", 2, ["demo.sleep_seconds=300"], sshd=login_sshd, spec_extra=limits())
    training(job)
    stop = threading.Event()
    kill_tunnel_in_a_loop(job, stop)
    try:
        wait_for(lambda: (job.state().tunnel_restarts or 0) >= 2, 60, "the tunnel to restart twice")
        cancelled_at = time.time()
        get_scheduler("cli").cancel(job.id)
        state, seconds = final_state_after(job, cancelled_at)
    finally:
        stop.set()
    record, state, text = ended(job, 60)
    report("scancel with the tunnel restarting in a loop -> final state", seconds)
    assert record.state == JobState.CANCELLED, text[-3000:]
    assert state.phase == "failed" and state.exit_code == 143 and "[runner] exit 143;" in text
    assert seconds < KILL_WAIT
    assert_clean(job)


# ---- the login node's sshd stopped (a lane of your own) --------------------------------
def sshd(action: str) -> None:
    done = subprocess.run(["bash", SSHD_SCRIPT, action], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"local-login-sshd.sh {action}: {done.stderr[-300:]}"


def sshd_stopped_and_tunnel_cut(job) -> None:
    """The login node goes away: its sshd stops and the tunnel's connection dies with it."""
    sshd("stop")
    pid = job.state().details["tunnel_pid"]
    os.kill(pid, signal.SIGKILL)


@pytest.mark.faults
def test_login_sshd_down_for_20_s_the_tunnel_comes_back(experiments, login_sshd, http_url, tmp_path):
    faultkit.require_faults()
    go = tmp_path / "go"
    job = submit(experiments, "sshd20", 2, [f"demo.fetch_url={http_url}", f"demo.wait_for_file={go}"],
                 sshd=login_sshd, spec_extra=limits(tunnel_down_limit_seconds=120))
    training(job, "demo: fetch 1 ok")
    try:
        sshd_stopped_and_tunnel_cut(job)
        time.sleep(20)
    finally:
        sshd("start")
    back_at = time.monotonic()
    wait_for(lambda: "[tunnel] tunnel restarted" in job.log(), 60, "the tunnel to come back")
    report("login sshd back -> tunnel restarted", time.monotonic() - back_at)
    go.write_text("go")
    record, state, text = ended(job)
    assert record.state == JobState.COMPLETED, text[-3000:]
    assert "restart #1 failed" in text or "restart #2" in text  # it tried while sshd was down
    assert "demo: fetch 2 ok from the driver" in text  # traffic resumed
    assert_clean(job)


@pytest.mark.faults
def test_login_sshd_down_past_the_limit_fails_the_job_in_one_line(experiments, login_sshd):
    faultkit.require_faults()
    job = submit(experiments, "sshdgone", 2, ["demo.sleep_seconds=300"], sshd=login_sshd,
                 spec_extra=limits(tunnel_down_limit_seconds=8))
    training(job)
    try:
        sshd_stopped_and_tunnel_cut(job)
        cut_at = time.time()
        state, seconds = final_state_after(job, cut_at, timeout=90)
    finally:
        sshd("start")
    record, state, text = ended(job)
    report("login sshd gone (TUNNEL_DOWN_LIMIT 8 s) -> final state", seconds)
    assert_failed(job, record, state, text, 3, "the SSH tunnel to ot-login has been down for",
                  "(TUNNEL_DOWN_LIMIT 8 s)")
