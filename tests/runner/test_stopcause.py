"""Why a SIGTERM came, from what Slurm reported (pure): scancel, preemption, node failure.

The rows are what ``scontrol show job -o`` said on the local cluster (Slurm 22.05, the
runner's SIGTERM handler's moment) for each way a job is stopped; see stopcause's docstring.
"""
import signal
import time

import pytest

from ot_hpc.runner import requeue, stopcause
from ot_hpc.runner.stopcause import SlurmReport, report_from_record, stop_cause
from ot_hpc.scheduler.slurm_text import parse_scontrol_fields, record_from_scontrol

SCANCEL = SlurmReport(state="COMPLETING", restart_count=0)
PREEMPT_REQUEUED = SlurmReport(state="COMPLETING", restart_count=1)  # PreemptMode=REQUEUE
PREEMPT_CANCEL = SlurmReport(state="COMPLETING", restart_count=0, preempt_time="2026-12-03T12:42:00")


@pytest.mark.parametrize("report,run_restarts,expected", [
    (SCANCEL, 0, stopcause.USER_STOP),
    (SlurmReport(state="CANCELLED"), 0, stopcause.USER_STOP),
    (SlurmReport(state="RUNNING"), 0, stopcause.USER_STOP),  # scancel --signal=TERM: still the user
    (None, 0, stopcause.USER_STOP),  # the controller did not answer: never requeue
    (PREEMPT_REQUEUED, 0, stopcause.REQUEUED_BY_SLURM),
    (SlurmReport(state="PENDING", restart_count=2, reason="BeginTime"), 1, stopcause.REQUEUED_BY_SLURM),
    (SlurmReport(state="COMPLETING", restart_count=1), 1, stopcause.USER_STOP),  # run 1's own scancel
    (PREEMPT_CANCEL, 0, stopcause.PREEMPTED),
    (SlurmReport(state="PREEMPTED"), 0, stopcause.PREEMPTED),
    (SlurmReport(state="NODE_FAIL"), 0, stopcause.NODE_FAIL),
    (SlurmReport(state="COMPLETING", reason="NodeDown"), 0, stopcause.NODE_FAIL),
    (SlurmReport(state="TIMEOUT"), 0, stopcause.TIME_LIMIT_REACHED),
    (SlurmReport(state="RUNNING+COMPLETING", restart_count=3), 2, stopcause.REQUEUED_BY_SLURM),
])
def test_stop_cause(report, run_restarts, expected):
    assert stop_cause(report, run_restarts) == expected


@pytest.mark.parametrize("cause,max_restarts,restarts,result,requeued", [
    (stopcause.USER_STOP, 3, 0, requeue.CANCELLED, False),        # scancel is never requeued
    (stopcause.PREEMPTED, 1, 0, requeue.PREEMPTED, True),          # the runner requeues it
    (stopcause.PREEMPTED, 1, 1, requeue.PREEMPTED, False),         # ... not beyond N
    (stopcause.REQUEUED_BY_SLURM, 1, 0, requeue.REQUEUED_BY_SLURM, False),  # Slurm did: not twice
    (stopcause.NODE_FAIL, 1, 0, requeue.FAILURE, True),
    (stopcause.TIME_LIMIT_REACHED, 3, 0, requeue.CANCELLED, False),
    (None, 3, 0, requeue.CANCELLED, False),
])
def test_a_sigterm_is_requeued_only_when_slurm_says_preempted(cause, max_restarts, restarts, result, requeued):
    got = requeue.outcome(143, signal.SIGTERM, None, False, cause)
    assert got == result
    assert requeue.should_requeue(got, restarts, max_restarts) is requeued


def test_a_preemption_after_a_successful_trainer_is_still_a_success():
    assert requeue.outcome(0, signal.SIGTERM, 0, False, stopcause.PREEMPTED) == requeue.SUCCESS


def test_describe_and_final_message_say_who_requeued():
    assert "Slurm has requeued the job itself (restart 1 next)" in requeue.describe(requeue.REQUEUED_BY_SLURM, 0, 1)
    assert requeue.final_message("stopped by SIGTERM", 143, False, requeue.REQUEUED_BY_SLURM) == \
        "stopped by SIGTERM; requeued by Slurm"
    assert requeue.final_message("x", 6, True, requeue.FAILURE) == "x; requeued"
    assert requeue.final_message(None, 3, False, requeue.FAILURE) == "trainer exited with code 3"


def test_sigterm_cause_asks_only_after_a_sigterm():
    said = []
    query = requeue.SigtermCause("1", 0, said.append, ask=lambda job_id, restarts, say: stopcause.PREEMPTED)
    assert requeue.sigterm_cause(signal.SIGUSR2, None, query) is None
    assert requeue.sigterm_cause(signal.SIGTERM, 0, query) is None  # trainer done
    assert requeue.sigterm_cause(signal.SIGTERM, None, query) == stopcause.PREEMPTED
    assert requeue.sigterm_cause(signal.SIGTERM, None, None) == stopcause.USER_STOP
    assert said == []


def test_a_controller_that_does_not_answer_in_time_means_the_users_stop():
    said = []
    slow = requeue.SigtermCause("2", 0, said.append,
                                ask=lambda job_id, restarts, say: (time.sleep(1), stopcause.PREEMPTED)[1])
    assert slow.cause(wait_seconds=0.05) == stopcause.USER_STOP
    assert said and "treated as scancel" in said[0]


def test_the_scontrol_fields_reach_the_report():
    line = ("JobId=4 JobName=job.sh UserId=root(0) JobState=COMPLETING Reason=None Requeue=0 "
            "Restarts=0 BatchFlag=1 PreemptEligibleTime=2026-12-03T12:41:58 PreemptTime=2026-12-03T12:42:00")
    record = record_from_scontrol(parse_scontrol_fields(line))
    assert record.extra == {"preempt_time": "2026-12-03T12:42:00"}
    assert report_from_record(record) == PREEMPT_CANCEL
    unset = record_from_scontrol(parse_scontrol_fields(
        line.replace("PreemptTime=2026-12-03T12:42:00", "PreemptTime=None")))
    assert unset.extra == {} and report_from_record(unset) == SCANCEL
