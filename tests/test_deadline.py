"""One deadline per command (ot_hpc.scheduler.deadline) and how both backends and
ot-submit's schedule use it: pure logic, fake clock, fake Slurm."""
from __future__ import annotations

import subprocess

import pytest

from ot_hpc.scheduler import ControllerUnreachable, SchedulerError
from ot_hpc.scheduler.base import SubmissionUncertain
from ot_hpc.scheduler.commands import CommandScheduler
from ot_hpc.scheduler.deadline import (Deadline, command_deadline_seconds, deadline_seconds,
                                       parse_message_timeout, plain_give_up_seconds)

from .test_scheduler_unit import _FakeProcess, _request

CONNECT = "squeue: error: Unable to contact slurm controller (connect failure)"
SLURM_GIVE_UP = 9.0  # a plain client's connect loop against a stopped controller


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds


# -- the pure part ----------------------------------------------------------------------
def test_a_deadline_counts_only_time_spent_counting():
    clock = Clock()
    deadline = Deadline(10, clock)
    with deadline.counting():
        clock.sleep(4)
        with deadline.counting():  # nested: counted once
            clock.sleep(1)
    clock.sleep(100)  # validation between two Slurm calls: not Slurm's time
    assert deadline.remaining() == pytest.approx(5)
    with deadline.counting():
        clock.sleep(7)
        assert deadline.remaining() == 0
        assert deadline.timeout(60) == 0


def test_timeouts_and_retry_pauses_fit_inside_what_remains():
    clock = Clock()
    deadline = Deadline(12, clock)
    with deadline.counting():
        assert deadline.timeout(60) == 12
        clock.sleep(9)
        assert deadline.timeout(60) == pytest.approx(3)
        assert deadline.retry_pause(0.5) == 0.5  # 3 s left: a 1 s try still fits
        assert deadline.retry_pause(2.5) == pytest.approx(2.0)  # shortened to fit
        assert deadline.retry_pause(0.5, needed=9) is None  # a whole 9 s try does not
        clock.sleep(2.5)
        assert deadline.retry_pause(0.5) is None


def test_unlimited_deadline_changes_nothing():
    deadline = Deadline(None)
    assert deadline.unlimited and deadline.remaining() is None
    assert deadline.timeout(60) == 60 and deadline.retry_pause(2.0, needed=1000) == 2.0


@pytest.mark.parametrize("message_timeout, give_up, budget", [(10, 9, 12), (30, 29, 42), (2, 1, 1)])
def test_the_budget_is_within_one_and_a_half_plain_give_ups(message_timeout, give_up, budget):
    assert plain_give_up_seconds(message_timeout) == give_up
    assert command_deadline_seconds(message_timeout) == budget
    assert give_up <= budget <= 1.5 * give_up


def test_message_timeout_from_slurm_conf_and_the_override(tmp_path):
    assert parse_message_timeout("ClusterName=x\nmessagetimeout = 30 # site\n") == 30
    assert parse_message_timeout("# MessageTimeout=5\n") is None
    conf = tmp_path / "slurm.conf"
    conf.write_text("MessageTimeout=20\n")
    assert deadline_seconds({"SLURM_CONF": str(conf)}) == 27.0
    assert deadline_seconds({"SLURM_CONF": str(tmp_path / "none")}) == 12.0
    assert deadline_seconds({"SLURM_CONF": str(conf), "OT_HPC_SLURM_DEADLINE": "5"}) == 5.0
    assert deadline_seconds({"SLURM_CONF": str(conf), "OT_HPC_SLURM_DEADLINE": "junk"}) == 27.0


# -- the command-line backend -------------------------------------------------------------
def _cli(monkeypatch, clock, answer):
    """A CommandScheduler whose Slurm is ``answer(argv, timeout)`` on the fake clock."""
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    calls = []

    def run(argv, stdin, env, timeout=None):
        calls.append(timeout)
        return answer(argv, timeout)

    scheduler = CommandScheduler(run=run, sleep=clock.sleep)
    scheduler.use_deadline(Deadline(12, clock))
    return scheduler, calls


def test_cli_a_stopped_controller_costs_one_deadline_not_four_time_outs(monkeypatch):
    clock = Clock()

    def down(argv, timeout):
        spent = min(timeout, SLURM_GIVE_UP)
        clock.sleep(spent)
        if spent < SLURM_GIVE_UP:
            raise subprocess.TimeoutExpired(argv, timeout)
        return _FakeProcess(1, stderr=CONNECT)

    scheduler, calls = _cli(monkeypatch, clock, down)
    started = clock.now
    with pytest.raises(ControllerUnreachable, match="controller unreachable"):
        scheduler.list_jobs(user="alice")
    assert clock.now - started == pytest.approx(12)
    assert calls[0] == 12 and calls[1] == pytest.approx(2.5)  # the retry gets what is left


def test_cli_a_controller_back_inside_the_deadline_is_used(monkeypatch):
    clock = Clock()
    back_at = clock.now + 10.5  # after the first try gave up, before the deadline

    def comes_back(argv, timeout):  # a client connects once a second, as libslurm does
        tries_until = clock.now + min(timeout, SLURM_GIVE_UP)
        if back_at <= tries_until:
            clock.now = max(clock.now, back_at)
            return _FakeProcess(0, stdout="")
        clock.now = tries_until
        if timeout < SLURM_GIVE_UP:
            raise subprocess.TimeoutExpired(argv, timeout)
        return _FakeProcess(1, stderr=CONNECT)

    scheduler, calls = _cli(monkeypatch, clock, comes_back)
    assert scheduler.list_jobs(user="alice") == []
    assert len(calls) == 2 and clock.now == back_at


def test_cli_sbatch_is_retried_only_when_a_whole_try_fits_and_a_time_out_is_uncertain(monkeypatch):
    clock = Clock()

    def down(argv, timeout):
        clock.sleep(SLURM_GIVE_UP)
        return _FakeProcess(1, stderr="sbatch: error: Unable to contact slurm controller (connect failure)")

    scheduler, calls = _cli(monkeypatch, clock, down)
    with pytest.raises(ControllerUnreachable) as caught:
        scheduler.submit(_request())
    assert not isinstance(caught.value, SubmissionUncertain)  # nothing reached slurmctld
    assert len(calls) == 1  # 3 s left after a 9 s try: no second sbatch to be killed midway

    def frozen(argv, timeout):
        clock.sleep(timeout)
        raise subprocess.TimeoutExpired(argv, timeout)

    scheduler, calls = _cli(monkeypatch, clock, frozen)
    with pytest.raises(SubmissionUncertain):
        scheduler.submit(_request())
    assert len(calls) == 1

    scheduler, calls = _cli(monkeypatch, clock, lambda argv, timeout: _FakeProcess(
        1, stderr="sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"))
    with pytest.raises(SubmissionUncertain, match="Socket timed out"):
        scheduler.submit(_request())


# -- the pyslurm backend ----------------------------------------------------------------
def test_pyslurm_retries_only_when_a_whole_call_fits(monkeypatch):
    from ot_hpc.scheduler import pyslurm_backend as pb

    from .test_pyslurm_backend_unit import fake_module

    clock = Clock()
    module = fake_module()
    calls = []

    def load():
        calls.append(clock.now)
        clock.sleep(SLURM_GIVE_UP)
        raise module.RPCError(errno=1800, msg="Unable to contact slurm controller (connect failure)")

    scheduler = pb.PyslurmScheduler(pyslurm_module=module, sleep=clock.sleep)
    scheduler.use_deadline(Deadline(12, clock))
    monkeypatch.setattr(module.Jobs, "load", load)
    with pytest.raises(ControllerUnreachable, match="controller unreachable"):
        scheduler.list_jobs()
    assert len(calls) == 1  # libslurm cannot be cut short: no second 9 s call in 3 s

    fast = []

    def refused():
        fast.append(clock.now)
        clock.sleep(0.1)
        raise module.RPCError(errno=1800, msg="Unable to contact slurm controller (connect failure)")

    monkeypatch.setattr(module.Jobs, "load", refused)
    scheduler.use_deadline(Deadline(12, clock))
    started = clock.now
    with pytest.raises(ControllerUnreachable):
        scheduler.list_jobs()
    assert len(fast) > 4 and clock.now - started <= 12  # quick failures: retried until the end


def test_pyslurm_submit_sent_without_answer_is_uncertain(monkeypatch):
    from ot_hpc.scheduler import pyslurm_backend as pb

    from .test_pyslurm_backend_unit import fake_module

    from types import SimpleNamespace

    from .test_pyslurm_backend_unit import FakeRPCError

    def timed_out():
        raise FakeRPCError(errno=5004, msg="Socket timed out on send/recv operation")

    module = fake_module(JobSubmitDescription=lambda **kw: SimpleNamespace(submit=timed_out))
    scheduler = pb.PyslurmScheduler(pyslurm_module=module, sleep=lambda s: None)
    with pytest.raises(SubmissionUncertain, match="Socket timed out"):
        scheduler.submit(_request())


# -- ot-submit's schedule -----------------------------------------------------------------
class _Refusing:
    def __init__(self, error):
        self.error = error

    def submit(self, request):
        raise self.error


@pytest.mark.parametrize("error, kept", [
    (SubmissionUncertain("sbatch did not answer within 12 s"), True),
    (KeyboardInterrupt(), True),
    (ControllerUnreachable("Slurm controller unreachable: connect failure"), False),
    (SchedulerError("Batch job submission failed: Invalid partition"), False),
])
def test_schedule_keeps_the_spec_exactly_when_the_job_may_exist(tmp_path, error, kept):
    from ot_hpc import submission

    from .test_faults_slurm import _request as faults_request

    request = faults_request(tmp_path, "deadline-unit")
    expected = SubmissionUncertain if kept else type(error)
    with pytest.raises(expected) as caught:
        submission.schedule(request, _Refusing(error))
    assert (tmp_path / "exp" / "specs").exists()
    assert bool(list((tmp_path / "exp" / "specs").iterdir())) is kept
    if kept:
        assert "ot-status" in str(caught.value) and request.spec_path in str(caught.value)
