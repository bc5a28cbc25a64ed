"""pyslurm 25.11.x objects to and from the scheduler layer's types: pure, no pyslurm import.

:func:`submit_kwargs` (``JobRequest`` -> ``pyslurm.JobSubmitDescription`` keyword
arguments) and :func:`submit_description_lines` (the same, as ``--dry-run`` shows it);
:func:`record_from_job` (``pyslurm.Job``), :func:`record_from_db_job`
(``pyslurm.db.Job``) and :func:`partition_from_pyslurm` (``pyslurm.Partition``). Every
pyslurm name used here was read from the pyslurm 25.11.2 sources; see
``docs/pyslurm-25.11.2-api.md`` for the file and line of each.
"""
from __future__ import annotations

import signal as _signal
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .base import (
    JobRecord,
    JobRequest,
    JobState,
    PartitionInfo,
    SchedulerError,
    call_lines,
    normalize_state,
)
from .output_path import job_output_path

# pyslurm drops an empty environment dict and then exports the submitting process's
# whole environment ("ALL"; submission.pyx _set_defaults). This keeps it a dict.
EMPTY_ENVIRONMENT_MARKER = {"OT_HPC_EXPLICIT_ENVIRONMENT": "1"}
_NO_REASON = ("", "None", "none", "(null)")
_NO_NODES = ("", "None assigned", "(null)", "None")
_MAX_EPOCH = 0xFFFFFFFE  # NO_VAL/INFINITE leaking through as a time


def one_line(text: object) -> str:
    """Any message as a single line (Slurm messages sometimes span several)."""
    return " ".join(str(text).split())


# -- JobRequest -> JobSubmitDescription -----------------------------------------------
def signal_for_pyslurm(request: JobRequest) -> Optional[str]:
    """``--signal`` in the string form pyslurm parses (submission.pyx
    ``_parse_signal_str_to_dict``): ``[B:]SIG<NAME>@<seconds>``.

    pyslurm resolves names with ``signal.Signals[name]``, so ``USR2`` is rejected and
    ``SIGUSR2`` (or the number) is needed; the dict form would skip that lookup.
    """
    if not request.signal_name:
        return None
    name = request.signal_name.strip().upper()
    if not name.isdigit() and not name.startswith("SIG"):
        name = "SIG" + name
    if not name.isdigit() and name not in _signal.Signals.__members__:
        raise SchedulerError(f"unknown signal {request.signal_name!r} for --signal")
    prefix = "B:" if request.signal_batch_only else ""
    return f"{prefix}{name}@{int(request.signal_seconds_before_end)}"


def submit_kwargs(request: JobRequest) -> Dict[str, Any]:
    """Keyword arguments for ``pyslurm.JobSubmitDescription`` (attribute names from
    submission.pxd; types from submission.pyx ``_create_job_submit_desc``)."""
    environment = {str(key): str(value) for key, value in dict(request.environment).items()}
    kwargs: Dict[str, Any] = {
        "name": request.name,
        "script": request.script,
        "nodes": int(request.nodes),
        # nodes alone gives ONE task: srun would run on one node only.
        "ntasks": int(request.ntasks),
        "ntasks_per_node": int(request.ntasks_per_node),
        # An int is minutes; a digit *string* ends in a TypeError inside pyslurm.
        "time_limit": int(request.time_limit_minutes),
        # Always a non-empty dict: a falsy value becomes "ALL" (whole environment) and a
        # string other than "ALL" makes slurmd load the user's login environment.
        "environment": environment or dict(EMPTY_ENVIRONMENT_MARKER),
        "is_requeueable": bool(request.requeue),
        # submission.pyx _set_open_mode: "append" or "truncate" (sbatch --open-mode).
        "log_files_open_mode": "append" if request.append_output else "truncate",
    }
    if request.cpus_per_task:
        kwargs["cpus_per_task"] = int(request.cpus_per_task)
    if request.gpus_per_node:
        kwargs["gres_per_node"] = f"gpu:{int(request.gpus_per_node)}"
    if request.memory_per_node_mb:
        kwargs["memory_per_node"] = int(request.memory_per_node_mb)  # MiB
    if request.partition:
        kwargs["partitions"] = request.partition
    if request.account:
        kwargs["account"] = request.account
    if request.qos:
        kwargs["qos"] = request.qos
    if request.exclude_nodes:
        kwargs["excluded_nodes"] = list(request.exclude_nodes)
    if request.output_path:
        kwargs["standard_output"] = request.output_path  # stderr follows when unset
    if request.working_directory:
        kwargs["working_directory"] = request.working_directory
    signal_value = signal_for_pyslurm(request)
    if signal_value:
        kwargs["signal"] = signal_value
    if request.hold:
        kwargs["priority"] = 0  # u32(priority, zero_is_noval=False): held
    return kwargs


def submit_description_lines(request: JobRequest) -> List[str]:
    """The ``pyslurm.JobSubmitDescription`` :func:`submit_kwargs` builds, one field a line
    (sorted); the script and environment elided (a dry run shows them itself). Pure."""
    return call_lines("pyslurm.JobSubmitDescription", submit_kwargs(request),
                      elided=("script", "environment"))


# -- pyslurm objects -> JobRecord -----------------------------------------------------
def epoch_to_datetime(value: Any) -> Optional[datetime]:
    """A pyslurm unix timestamp as an aware local datetime; 0/None/NO_VAL -> None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    if seconds <= 0 or seconds >= _MAX_EPOCH:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).astimezone()


def int_or_none(value: Any) -> Optional[int]:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _minutes_or_none(value: Any) -> Optional[int]:
    """Time limit in minutes; pyslurm gives None for unlimited (and db.Job gives the
    string "PartitionLimit" when the job used the partition's limit)."""
    minutes = int_or_none(value)
    if minutes is None or minutes <= 0 or minutes >= _MAX_EPOCH:
        return None
    return minutes


def _reason(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = one_line(value)
    return None if text in _NO_REASON else text


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _nodes(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text in _NO_NODES else text


def _exit_parts(job: Any, state: JobState) -> Tuple[Optional[int], Optional[int]]:
    """pyslurm already splits the wait status (helpers.pyx ``_get_exit_code``):
    ``exit_code`` is the exit status, ``exit_code_signal`` the terminating signal."""
    if not state.is_finished:
        return None, None
    return int_or_none(job.exit_code), int_or_none(job.exit_code_signal)


def _record(job: Any, raw_state: str, state: JobState, node_list: Any, time_limit: Any,
            elapsed_seconds: Optional[int], time_left_seconds: Optional[int], source: str,
            user: Optional[str]) -> JobRecord:
    """What ``pyslurm.Job`` and ``pyslurm.db.Job`` share (the same attribute names).
    ``user``: the owner's name when the caller knows it (``user_name`` is then not read:
    it asks the passwd database on every read)."""
    exit_code, exit_signal = _exit_parts(job, state)
    job_id, name, nodes = int(job.id), str(job.name or ""), _nodes(node_list)
    user = str(job.user_name or "") if user is None else user
    return JobRecord(
        job_id=job_id,
        name=name,
        user=user,
        state=state,
        raw_state=raw_state,
        reason=_reason(job.state_reason),
        partition=_text(job.partition),
        account=_text(job.account),
        node_count=int_or_none(job.num_nodes) or 0,
        node_list=nodes,
        time_limit_minutes=_minutes_or_none(time_limit),
        elapsed_seconds=elapsed_seconds,
        time_left_seconds=time_left_seconds,
        submit_time=epoch_to_datetime(job.submit_time),
        # Pending jobs carry the scheduler's expected start, running ones the expected end.
        start_time=None if state is JobState.PENDING else epoch_to_datetime(job.start_time),
        end_time=epoch_to_datetime(job.end_time) if state.is_finished else None,
        exit_code=exit_code,
        exit_signal=exit_signal,
        stdout_path=job_output_path(_text(job.standard_output), job_id, name, user, nodes,
                                    _text(job.working_directory)),
        restart_count=int_or_none(job.requeue_count) or 0,
        extra=_extra(job, source),
    )


def _extra(job: Any, source: str) -> Dict[str, Any]:
    """The source, and ``preempt_time`` (ISO 8601) once a preemption of the job began."""
    extra: Dict[str, Any] = {"source": source}
    when = epoch_to_datetime(getattr(job, "preempt_time", None))
    if when is not None:
        extra["preempt_time"] = when.isoformat()
    return extra


def remaining_seconds(state: JobState, time_limit: Any, run_time: Optional[int]) -> Optional[int]:
    """``Job.run_time_remaining`` (job.pyx:1343: ``time_limit * 60 - run_time``) from the
    values already read, instead of reading it: it reads ``time_limit`` twice and computes
    ``run_time`` again. Only while active (it keeps counting after the end), never < 0."""
    minutes = _minutes_or_none(time_limit)
    if not state.is_active or minutes is None or run_time is None:
        return None
    return max(0, minutes * 60 - run_time)


def record_from_job(job: Any, user: Optional[str] = None) -> JobRecord:
    """A live ``pyslurm.Job`` (core/job/job.pyx) as a JobRecord; each attribute read at
    most once (``run_time`` is computed on every read, ``user_name`` looked up). ``user``:
    the owner's name if known (see :mod:`.pyslurm_listing`), else ``user_name`` is read."""
    raw_state = str(job.state or "")
    state = normalize_state(raw_state)
    elapsed = int_or_none(job.run_time)
    elapsed = max(0, elapsed) if elapsed is not None else None
    time_limit = job.time_limit
    return _record(job, raw_state, state, job.allocated_nodes, time_limit, elapsed,
                   remaining_seconds(state, time_limit, elapsed), "controller", user)


def record_from_db_job(job: Any, user: Optional[str] = None) -> JobRecord:
    """An accounting ``pyslurm.db.Job`` (db/job.pyx) as a JobRecord (``user`` as above)."""
    raw_state = str(job.state or "")
    elapsed = int_or_none(job.elapsed_time)  # None means 0 s (_raw_time)
    return _record(job, raw_state, normalize_state(raw_state), job.nodelist, job.time_limit,
                   max(0, elapsed) if elapsed is not None else 0, None, "accounting", user)


def partition_from_pyslurm(part: Any) -> PartitionInfo:
    """A ``pyslurm.Partition`` (core/partition.pyx) as a :class:`PartitionInfo`.
    ``max_nodes`` is u32_parse'd (int, "UNLIMITED" or None), ``max_time`` is
    _raw_time'd minutes (int, "UNLIMITED" or None): anything but an int is no limit."""
    max_nodes = part.max_nodes
    max_time = part.max_time
    return PartitionInfo(
        name=str(part.name),
        total_nodes=int_or_none(part.total_nodes) or 0,
        max_nodes_per_job=max_nodes if isinstance(max_nodes, int) and max_nodes > 0 else None,
        max_time_minutes=max_time if isinstance(max_time, int) and max_time > 0 else None,
        state=str(part.state or "UNKNOWN").upper(),
    )


def collection_values(collection: Any) -> Iterable[Any]:
    """Jobs of a pyslurm ``MultiClusterMap`` (xcollections.pyx ``values()``)."""
    return list(collection.values()) if collection is not None else []

