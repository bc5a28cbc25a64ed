"""The restart decision (``spec.max_restarts``) and the requeue itself.

Contract with ot-submit: the job is submitted with ``--requeue``; when the trainer
fails, a phase fails (a node lost during training too), USR2 arrives before the time
limit, or a SIGTERM that Slurm reports as a preemption it did not requeue, and
``SLURM_RESTART_COUNT`` (0 on the first run) is below ``max_restarts``, the runner
requeues the same job id through the scheduler layer, as its very last action (Slurm
stops the batch step right away). Never on success, never on scancel, never beyond N, and
never when Slurm requeued the job itself (PreemptMode=REQUEUE, a failed node): see
:mod:`.stopcause`.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from . import stopcause

SUCCESS = "success"
FAILURE = "failure"
TIME_LIMIT = "time-limit"  # USR2 from --signal, shortly before the end (or preemption notice)
CANCELLED = "cancelled"  # SIGTERM/SIGINT/SIGHUP: scancel, or Slurm ending the job
PREEMPTED = "preempted"  # SIGTERM of a preemption Slurm did not requeue: requeued like a failure
REQUEUED_BY_SLURM = "requeued-by-slurm"  # preemption (REQUEUE) or node failure: Slurm did it
UPLOAD_FAILED = "upload-failed"  # the trainer succeeded, the upload did not: never requeued


def outcome(exit_code: int, stop_signal: Optional[int], trainer_exit: Optional[int] = None,
            upload_failed: bool = False, cause: Optional[str] = None) -> str:
    """What happened to this run. Once the trainer has exited 0 the run is a success (or
    an upload failure), whatever signal arrives afterwards: requeueing it would train again.
    ``cause``: why a SIGTERM came (:func:`.stopcause.stop_cause`), None when not asked."""
    import signal

    if trainer_exit == 0:
        return UPLOAD_FAILED if upload_failed else SUCCESS
    if stop_signal == signal.SIGUSR2:
        return TIME_LIMIT
    if stop_signal == signal.SIGTERM and cause == stopcause.REQUEUED_BY_SLURM:
        return REQUEUED_BY_SLURM
    if stop_signal == signal.SIGTERM and cause in (stopcause.PREEMPTED, stopcause.NODE_FAIL):
        return PREEMPTED if cause == stopcause.PREEMPTED else FAILURE
    if stop_signal is not None:
        return CANCELLED
    return SUCCESS if exit_code == 0 else FAILURE


RESTARTABLE = (FAILURE, TIME_LIMIT, PREEMPTED)
# Asking Slurm why a SIGTERM came: at most this long (it runs beside the shutdown; a
# controller that does not answer in time means the user's stop: no requeue).
CAUSE_QUERY_SECONDS = 1.5


def should_requeue(result: str, restart_count: int, max_restarts: int) -> bool:
    return result in RESTARTABLE and max_restarts > 0 and restart_count < max_restarts


def describe(result: str, restart_count: int, max_restarts: int) -> str:
    if should_requeue(result, restart_count, max_restarts):
        return f"requeueing: {result}, restart {restart_count + 1} of {max_restarts} next"
    if result in RESTARTABLE and max_restarts > 0:
        return f"not requeueing: {result}, all {max_restarts} restart(s) used"
    if result == REQUEUED_BY_SLURM:
        return f"not requeueing: Slurm has requeued the job itself (restart {restart_count + 1} next)"
    return f"not requeueing: {result}"


def ask_sigterm_cause(job_id: str, restart_count: int, say: Callable[[str], None]) -> str:
    """Why a SIGTERM came (:mod:`.stopcause`): the controller asked once (scheduler layer,
    at most CAUSE_QUERY_SECONDS); one that does not answer gives the user's stop."""
    from ..scheduler import get_scheduler
    from ..scheduler.deadline import Deadline

    try:
        scheduler = get_scheduler().use_deadline(Deadline(CAUSE_QUERY_SECONDS))
        record = scheduler.get_job(int(str(job_id).split("_")[0]))
    except Exception as exc:  # noqa: BLE001 - any scheduler trouble: never requeue
        say(f"SIGTERM: cannot ask Slurm why ({exc}): treated as scancel")
        return stopcause.USER_STOP
    if record is None:
        say("SIGTERM: Slurm does not know the job: treated as scancel")
        return stopcause.USER_STOP
    report = stopcause.report_from_record(record)
    cause = stopcause.stop_cause(report, restart_count)
    say(f"SIGTERM: {stopcause.describe_cause(cause)} (Slurm: JobState={report.state} "
        f"Restarts={report.restart_count} PreemptTime={report.preempt_time or 'None'})")
    return cause


class SigtermCause:
    """:func:`ask_sigterm_cause` in a thread started the moment the SIGTERM arrives, so the
    answer is there when the shutdown is done and the question never costs KillWait time."""

    def __init__(self, job_id: str, restart_count: int, say: Callable[[str], None],
                 ask: Callable[[str, int, Callable[[str], None]], str] = ask_sigterm_cause):
        self._cause: Optional[str] = None
        self._say = say
        self._thread = threading.Thread(target=self._run, args=(ask, job_id, restart_count),
                                        name="sigterm-cause", daemon=True)
        self._thread.start()

    def _run(self, ask, job_id: str, restart_count: int) -> None:
        self._cause = ask(job_id, restart_count, self._say)

    def cause(self, wait_seconds: float = 0.5) -> str:
        self._thread.join(wait_seconds)
        if self._cause is None:
            self._say("SIGTERM: Slurm did not say why in time: treated as scancel")
            return stopcause.USER_STOP
        return self._cause


def sigterm_cause(stop_signal: Optional[int], trainer_exit: Optional[int],
                  query: Optional[SigtermCause]) -> Optional[str]:
    """The SIGTERM's cause for :func:`outcome`; None for any other end (or a trainer that
    had already succeeded: nothing to requeue)."""
    import signal

    if stop_signal != signal.SIGTERM or trainer_exit == 0:
        return None
    return query.cause() if query is not None else stopcause.USER_STOP


def final_message(message: Optional[str], code: int, decision: bool, result: str) -> Optional[str]:
    """The run-state file's last message: what ended the run, and who requeued it."""
    if message is None and code != 0:
        message = f"trainer exited with code {code}"
    if decision:
        return f"{message}; requeued"
    if result == REQUEUED_BY_SLURM:
        return f"{message}; requeued by Slurm"
    return message


def requeue(job_id: str) -> None:
    """Ask Slurm to requeue this job under the same id (raises SchedulerError)."""
    from ..scheduler import get_scheduler
    from ..scheduler.deadline import Deadline

    get_scheduler().requeue(int(str(job_id).split("_")[0]))
