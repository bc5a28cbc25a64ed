"""Why a SIGTERM arrived, from what Slurm reports about the job at that moment (pure).

A user's ``scancel``, a preemption and a node failure all reach the batch script as
SIGTERM, and ``scontrol show job`` says ``JobState=COMPLETING`` in each case (Slurm 22.05,
24.11, 25.11). What tells them apart (measured on the local cluster, see the README's
"A bad day on a supercomputer"):

- ``PreemptMode=REQUEUE``: Slurm has requeued the job already, so the controller's
  ``Restarts`` is one more than this run's ``SLURM_RESTART_COUNT`` (then ``JobState=PENDING``,
  ``Reason=BeginTime``; accounting keeps ``PREEMPTED`` for the run). The runner must not
  requeue it again.
- ``PreemptMode=CANCEL`` (or a job without ``--requeue``): ``PreemptTime`` is set, Restarts
  unchanged, later ``JobState=PREEMPTED``. The runner requeues it while restarts are left
  (``scontrol requeue`` works on a completing job).
- a node failure: ``JobState=NODE_FAIL``, or requeued by Slurm as above.
- the time limit itself: ``JobState=TIMEOUT`` (the USR2 warning came earlier, or not at all).
- anything else, ``scancel`` included (``PreemptTime`` unset, Restarts unchanged): the user's
  stop, never requeued. Nothing known (the controller did not answer) counts as that too:
  an unknown SIGTERM never trains again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

USER_STOP = "user-stop"  # scancel (or anything not known to be Slurm's own doing)
PREEMPTED = "preempted"  # preempted and not requeued by Slurm: the runner may requeue
REQUEUED_BY_SLURM = "requeued-by-slurm"  # preemption (REQUEUE) or node failure: Slurm did it
NODE_FAIL = "node-fail"  # a node of the job failed, the job was not requeued
TIME_LIMIT_REACHED = "time-limit-reached"


@dataclass(frozen=True)
class SlurmReport:
    """The few things the controller says about the job that matter here."""

    state: str = ""  # JobState as Slurm spells it (COMPLETING, PENDING, PREEMPTED, NODE_FAIL...)
    restart_count: int = 0  # the controller's Restarts
    preempt_time: Optional[str] = None  # PreemptTime, None when unset ("None"/"Unknown")
    reason: str = ""


def report_from_record(record) -> SlurmReport:
    """A :class:`SlurmReport` from the scheduler layer's ``JobRecord`` (either backend:
    ``extra["preempt_time"]`` is set only once a preemption began)."""
    reason = record.reason or ""
    return SlurmReport(state=(record.raw_state or record.state.value).upper(),
                       restart_count=record.restart_count,
                       preempt_time=(record.extra or {}).get("preempt_time"),
                       reason="" if reason == "None" else reason)


def stop_cause(report: Optional[SlurmReport], run_restart_count: int) -> str:
    """One of the constants above for a SIGTERM during run ``run_restart_count``."""
    if report is None:
        return USER_STOP
    state = report.state.split("+")[0]
    if report.restart_count > run_restart_count or state in ("PENDING", "REQUEUED", "REQUEUE_HOLD"):
        return REQUEUED_BY_SLURM
    if state == "NODE_FAIL" or report.reason.startswith("NodeDown"):
        return NODE_FAIL
    if state == "PREEMPTED" or report.preempt_time is not None:
        return PREEMPTED
    if state in ("TIMEOUT", "DEADLINE"):
        return TIME_LIMIT_REACHED
    return USER_STOP


def describe_cause(cause: str) -> str:
    return {
        USER_STOP: "stopped by the user (scancel) or the system: never requeued",
        PREEMPTED: "preempted by a higher-priority job",
        REQUEUED_BY_SLURM: "Slurm has requeued the job itself (preemption or a failed node)",
        NODE_FAIL: "a node of the job failed (NODE_FAIL)",
        TIME_LIMIT_REACHED: "the time limit was reached",
    }.get(cause, cause)
