"""The restart decision (``spec.max_restarts``) and the requeue itself.

Contract with ot-submit: the job is submitted with ``--requeue``; when the trainer
fails, a phase fails, or USR2 arrives before the time limit (or preemption), and
``SLURM_RESTART_COUNT`` (0 on the first run) is below ``max_restarts``, the runner
requeues the same job id through the scheduler layer, as its very last action (Slurm
stops the batch step right away). Never on success, never on scancel, never beyond N.
"""
from __future__ import annotations

from typing import Optional

SUCCESS = "success"
FAILURE = "failure"
TIME_LIMIT = "time-limit"  # USR2 from --signal, shortly before the end (or preemption notice)
CANCELLED = "cancelled"  # SIGTERM/SIGINT/SIGHUP: scancel, or Slurm ending the job
UPLOAD_FAILED = "upload-failed"  # the trainer succeeded, the upload did not: never requeued


def outcome(exit_code: int, stop_signal: Optional[int], trainer_exit: Optional[int] = None,
            upload_failed: bool = False) -> str:
    """What happened to this run. Once the trainer has exited 0 the run is a success (or
    an upload failure), whatever signal arrives afterwards: requeueing it would train again."""
    import signal

    if trainer_exit == 0:
        return UPLOAD_FAILED if upload_failed else SUCCESS
    if stop_signal == signal.SIGUSR2:
        return TIME_LIMIT
    if stop_signal is not None:
        return CANCELLED
    return SUCCESS if exit_code == 0 else FAILURE


def should_requeue(result: str, restart_count: int, max_restarts: int) -> bool:
    return result in (FAILURE, TIME_LIMIT) and max_restarts > 0 and restart_count < max_restarts


def describe(result: str, restart_count: int, max_restarts: int) -> str:
    if should_requeue(result, restart_count, max_restarts):
        return f"requeueing: {result}, restart {restart_count + 1} of {max_restarts} next"
    if result in (FAILURE, TIME_LIMIT) and max_restarts > 0:
        return f"not requeueing: {result}, all {max_restarts} restart(s) used"
    return f"not requeueing: {result}"


def requeue(job_id: str) -> None:
    """Ask Slurm to requeue this job under the same id (raises SchedulerError)."""
    from ..scheduler import get_scheduler

    get_scheduler().requeue(int(str(job_id).split("_")[0]))
