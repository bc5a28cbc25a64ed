"""Following one job to its end (ot-submit --wait) and saying what became of it."""
from __future__ import annotations

import time
from typing import Callable, Optional

from ..scheduler.base import JobRecord, JobState, Scheduler, SchedulerError


def exit_code_for(record: JobRecord) -> int:
    """0 on COMPLETED, else the job's non-zero exit code, else 1."""
    if record.state is JobState.COMPLETED:
        return 0
    if record.exit_code:
        return int(record.exit_code)
    return 1


def wait_for_job(
    scheduler: Scheduler,
    job_id: int,
    requeue: bool = False,
    on_change: Optional[Callable[[JobRecord], None]] = None,
    first_delay: float = 2.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    timeout_seconds: Optional[float] = None,
    clock: Callable[[], float] = time.monotonic,
) -> JobRecord:
    """Poll ``get_job`` with exponential backoff (2 s, x1.5, at most 60 s) until the job
    has finished; return its last record. With ``requeue``, PREEMPTED/NODE_FAIL are not
    final while the job may come back (polled three more times)."""
    delay = first_delay
    last_state: Optional[JobState] = None
    unknown_polls = 0
    not_final_polls = 0
    started = clock()
    while True:
        record = scheduler.get_job(job_id)
        if record is None:
            unknown_polls += 1
            if unknown_polls >= 5:
                raise SchedulerError(f"job {job_id} is unknown to the controller and accounting")
        else:
            unknown_polls = 0
            if record.state != last_state:
                last_state = record.state
                if on_change is not None:
                    on_change(record)
                delay = first_delay  # something moved: look again soon
            if record.state.is_finished:
                comes_back = requeue and record.state in (JobState.PREEMPTED, JobState.NODE_FAIL)
                if not comes_back or not_final_polls >= 3:
                    return record
                not_final_polls += 1
        if timeout_seconds is not None and clock() - started > timeout_seconds:
            raise SchedulerError(f"gave up waiting for job {job_id} after {timeout_seconds:.0f} s")
        sleep(delay)
        delay = min(max_delay, delay * 1.5)


def describe_record(record: JobRecord) -> str:
    """One line: ``job 12: RUNNING on n[1-2]``, ``job 12: FAILED exit code 3``."""
    parts = [f"job {record.job_id}: {record.state.value}"]
    if record.reason and record.state is JobState.PENDING:
        parts.append(f"({record.reason})")
    if record.node_list:
        parts.append(f"on {record.node_list}")
    if record.state.is_finished and record.exit_code is not None:
        parts.append(f"exit code {record.exit_code}")
    return " ".join(parts)
