"""How a :class:`JobRecord`'s fields are shown in the monitoring tables (pure)."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from ..durations import format_duration, format_minutes
from ..scheduler.base import JobRecord, JobState

# Order of active states in ot-status: what runs first, then what waits.
_ACTIVE_ORDER = {
    JobState.RUNNING: 0,
    JobState.COMPLETING: 1,
    JobState.SUSPENDED: 2,
    JobState.REQUEUED: 3,
    JobState.PENDING: 4,
}


def status_sort_key(record: JobRecord):
    return (_ACTIVE_ORDER.get(record.state, 5), record.job_id)


def newest_first_key(record: JobRecord):
    """For finished jobs: latest end first (unknown ends last), then the higher id."""
    end = record.end_time.timestamp() if record.end_time is not None else float("-inf")
    return (-end, -record.job_id)


def format_nodes(record: JobRecord) -> str:
    """``2 n[1-2]`` when nodes are allocated, else the count alone."""
    count = str(record.node_count) if record.node_count else "-"
    nodes = record.node_list if record.node_list not in ("None assigned", "(null)") else ""
    return f"{count} {nodes}" if nodes else count


def format_elapsed(record: JobRecord) -> str:
    if record.state is JobState.PENDING:
        return "-"
    return format_duration(record.elapsed_seconds)


def format_left(record: JobRecord) -> str:
    """Time left for running jobs; the whole limit for jobs that have not started."""
    if record.state is JobState.PENDING:
        return format_minutes(record.time_limit_minutes)
    if record.time_left_seconds is not None:
        return format_duration(record.time_left_seconds)
    return "UNLIMITED" if record.time_limit_minutes is None else "-"


def signal_name(number: int) -> str:
    import signal  # lazily, and only when a signal is shown

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def format_exit(record: JobRecord) -> str:
    """``3`` for an exit code, ``SIGKILL`` for a signal, ``-`` when unknown."""
    if record.exit_signal:
        return signal_name(record.exit_signal)
    return "-" if record.exit_code is None else str(record.exit_code)


def format_moment(moment: Optional[datetime]) -> str:
    """Local ``MM-DD HH:MM``; ``-`` when unknown."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%m-%d %H:%M")


def state_text(record: JobRecord) -> str:
    return record.state.value if record.state is not JobState.UNKNOWN else (record.raw_state or "UNKNOWN")
