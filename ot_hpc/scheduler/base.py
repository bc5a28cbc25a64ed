"""The one narrow interface ot-hpc uses to talk to Slurm.

Everything above this layer (ot-submit, the runner, the monitoring commands)
speaks in :class:`JobRequest`, :class:`JobRecord` and :class:`JobState`; only the
backends (``commands.py``: Slurm's commands, ``pyslurm_backend.py``: pyslurm's C-API
bindings) know how Slurm is reached.
"""
from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .deadline import Deadline


class JobState(str, enum.Enum):
    """Normalized Slurm job state. Anything we do not know becomes UNKNOWN."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    BOOT_FAIL = "BOOT_FAIL"
    PREEMPTED = "PREEMPTED"
    DEADLINE = "DEADLINE"
    REQUEUED = "REQUEUED"
    SUSPENDED = "SUSPENDED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_active(self) -> bool:
        """Still in the queue: pending, running, or about to run again."""
        return self in ACTIVE_STATES

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def is_failure(self) -> bool:
        """Finished without success (what ot-sfail lists)."""
        return self in FAILURE_STATES


ACTIVE_STATES = frozenset(
    {JobState.PENDING, JobState.RUNNING, JobState.COMPLETING, JobState.REQUEUED, JobState.SUSPENDED}
)
FAILURE_STATES = frozenset(
    {
        JobState.FAILED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
        JobState.PREEMPTED,
    }
)
FINISHED_STATES = FAILURE_STATES | {JobState.COMPLETED, JobState.CANCELLED}

# Slurm's long names and squeue's short codes; keys are upper case.
_STATE_ALIASES: Dict[str, JobState] = {
    "PD": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,  # nodes allocated, still booting: no user code yet
    "CF": JobState.PENDING,
    "R": JobState.RUNNING,
    "CG": JobState.COMPLETING,
    "CD": JobState.COMPLETED,
    "F": JobState.FAILED,
    "CA": JobState.CANCELLED,
    "TO": JobState.TIMEOUT,
    "OOM": JobState.OUT_OF_MEMORY,
    "OUT_OF_ME": JobState.OUT_OF_MEMORY,  # sacct without -P truncates to OUT_OF_ME+
    "NF": JobState.NODE_FAIL,
    "BF": JobState.BOOT_FAIL,
    "PR": JobState.PREEMPTED,
    "DL": JobState.DEADLINE,
    "RQ": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED,
    "RH": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    "RF": JobState.REQUEUED,
    "S": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    "ST": JobState.SUSPENDED,
    "SPECIAL_EXIT": JobState.REQUEUED,  # requeued and held after a special exit code
    "SE": JobState.REQUEUED,
    "RESV_DEL_HOLD": JobState.PENDING,  # held because its reservation was deleted
    "RD": JobState.PENDING,
    "RESIZING": JobState.RUNNING,
    "RS": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,  # being signalled, still running
    "SI": JobState.RUNNING,
    "STAGE_OUT": JobState.COMPLETING,  # burst buffer stage-out after the job ran
    "SO": JobState.COMPLETING,
}


def normalize_state(raw: Optional[str]) -> JobState:
    """Map any Slurm state spelling to a :class:`JobState`; never raises.

    Handles ``CANCELLED by 0``, truncated ``OUT_OF_ME+``, squeue's short codes,
    lower case, and combined spellings such as ``RUNNING+COMPLETING`` (first wins).
    """
    if not raw:
        return JobState.UNKNOWN
    word = str(raw).strip().split()[0].upper() if str(raw).strip() else ""
    word = word.rstrip("+").split("+")[0].split(",")[0]
    try:
        return JobState(word)
    except ValueError:
        return _STATE_ALIASES.get(word, JobState.UNKNOWN)


@dataclass(frozen=True)
class JobRequest:
    """Everything ot-hpc ever asks Slurm for when it submits a batch job."""

    script: str
    name: str
    nodes: int
    time_limit_minutes: int
    environment: Mapping[str, str]
    ntasks_per_node: int = 1
    cpus_per_task: Optional[int] = None
    gpus_per_node: int = 0
    memory_per_node_mb: Optional[int] = None
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    exclude_nodes: Tuple[str, ...] = ()
    output_path: Optional[str] = None  # stdout and stderr together
    working_directory: Optional[str] = None
    signal_name: Optional[str] = None  # e.g. "USR2": sent before the time limit
    signal_seconds_before_end: int = 0
    signal_batch_only: bool = True  # deliver to the batch script only ("B:" in Slurm)
    requeue: bool = False
    # Append to the output file instead of truncating it: a requeued job keeps the log of
    # its earlier runs (Slurm truncates by default when the job starts again).
    append_output: bool = False
    hold: bool = False  # submit held (priority 0): stays PENDING until released

    def __post_init__(self) -> None:
        if not self.script.startswith("#!"):
            raise ValueError("JobRequest.script must start with '#!'")
        if self.nodes < 1:
            raise ValueError("JobRequest.nodes must be >= 1")
        if self.time_limit_minutes < 1:
            raise ValueError("JobRequest.time_limit_minutes must be >= 1")

    @property
    def ntasks(self) -> int:
        return self.nodes * self.ntasks_per_node

    @property
    def signal_spec(self) -> Optional[str]:
        """Slurm's ``--signal`` value, e.g. ``B:USR2@300``; None without a signal."""
        if not self.signal_name:
            return None
        prefix = "B:" if self.signal_batch_only else ""
        return f"{prefix}{self.signal_name}@{self.signal_seconds_before_end}"


@dataclass(frozen=True)
class JobRecord:
    """One job as the controller or accounting knows it."""

    job_id: int
    name: str
    user: str
    state: JobState
    raw_state: str = ""
    reason: Optional[str] = None  # pending/state reason code, None when there is none
    partition: Optional[str] = None
    account: Optional[str] = None
    node_count: int = 0
    node_list: str = ""  # compressed, e.g. "n[1-2]"; "" when no nodes allocated
    time_limit_minutes: Optional[int] = None  # None: unlimited or unknown
    elapsed_seconds: Optional[int] = None
    time_left_seconds: Optional[int] = None
    submit_time: Optional[datetime] = None
    start_time: Optional[datetime] = None
    end_time: Optional[datetime] = None
    exit_code: Optional[int] = None
    exit_signal: Optional[int] = None
    stdout_path: Optional[str] = None
    restart_count: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict (states by name, times as ISO 8601). Built field by field:
        ``dataclasses.asdict`` deep-copies and costs ~30 us a record (ot-status --json)."""
        out = {name: getattr(self, name) for name in _RECORD_FIELDS}
        out["state"] = self.state.value
        for key in ("submit_time", "start_time", "end_time"):
            value = out[key]
            out[key] = value.isoformat() if value else None
        out["extra"] = dict(self.extra)
        return out


_RECORD_FIELDS = tuple(f.name for f in fields(JobRecord))


@dataclass(frozen=True)
class PartitionInfo:
    """One partition's limits as the controller reports them.

    ``max_nodes_per_job`` and ``max_time_minutes`` are None when unlimited."""

    name: str
    total_nodes: int
    max_nodes_per_job: Optional[int]
    max_time_minutes: Optional[int]
    state: str

    @property
    def node_limit(self) -> int:
        """The most nodes one job can get here: the partition's size, or less."""
        if self.max_nodes_per_job is None:
            return self.total_nodes
        return min(self.total_nodes, self.max_nodes_per_job)


@dataclass(frozen=True)
class PartitionLimits:
    """A partition's limits as the scheduler reports them (plain data: validation never
    talks to Slurm). ``exists=False``: the scheduler has no partition ``name``;
    ``available`` then lists the ones it has. None limits are unlimited."""

    name: str
    max_nodes: Optional[int] = None  # the most nodes one job can get (size, or per-job max)
    max_time_minutes: Optional[int] = None
    exists: bool = True
    available: Tuple[str, ...] = ()
    # The cluster's KillWait (seconds between Slurm's SIGTERM and SIGKILL when a job ends),
    # which every job's shutdown there must fit in; None when unknown.
    kill_wait_seconds: Optional[int] = None


def call_lines(callee: str, arguments: Mapping[str, Any], elided: Iterable[str] = ()) -> List[str]:
    """A call as comment lines: ``# callee(``, one ``#     name=value,`` line per argument
    (sorted by name, values as ``repr``; the ``elided`` ones as ``name=...``), ``# )``."""
    hidden = frozenset(elided)
    body = [f"#     {key}={'...' if key in hidden else repr(arguments[key])},"
            for key in sorted(arguments)]
    return [f"# {callee}(", *body, "# )"]


class SchedulerError(Exception):
    """Slurm refused or failed; ``str()`` is one line carrying Slurm's own message."""


class ControllerUnreachable(SchedulerError):
    """slurmctld did not answer (after retries)."""


class SubmissionUncertain(ControllerUnreachable):
    """A submission timed out after it may have reached slurmctld: the job may exist.
    Never retried (a retry could submit it twice); ot-submit keeps the job's spec."""


class AccountingUnavailable(SchedulerError):
    """The cluster has no job accounting (no slurmdbd), so history cannot be read."""


class BackendUnavailable(Exception):
    """A backend was asked for but cannot be used here (e.g. pyslurm does not import)."""


class Scheduler(abc.ABC):
    """The narrow interface. Backends implement every method."""

    name: str = "abstract"
    # How long this command may wait on Slurm in all (ot_hpc.scheduler.deadline); None:
    # no deadline, each call keeps its backend's fixed retry schedule.
    deadline: Optional[Deadline] = None

    def use_deadline(self, deadline: Optional[Deadline]) -> "Scheduler":
        """Bind the deadline every following call counts against (None: none)."""
        self.deadline = deadline
        return self

    def current_deadline(self) -> Deadline:
        """The bound deadline, else an unlimited one."""
        return self.deadline if self.deadline is not None else Deadline(None)

    @abc.abstractmethod
    def submit(self, request: JobRequest) -> int:
        """Submit a batch job; return its id. Raises SchedulerError with Slurm's message."""

    def describe_submission(self, request: JobRequest) -> List[str]:
        """What :meth:`submit` would hand Slurm for ``request``, as comment lines without
        the script and environment (a dry run shows those itself). Pure: no Slurm contact.
        Backends show their own form; this default shows the request's fields."""
        values = {f.name: getattr(request, f.name) for f in fields(JobRequest)}
        return call_lines("JobRequest", values, elided=("script", "environment"))

    @abc.abstractmethod
    def get_job(self, job_id: int) -> Optional[JobRecord]:
        """One job from the controller, else from accounting; None if neither knows it."""

    @abc.abstractmethod
    def list_jobs(
        self,
        user: Optional[str] = None,
        account: Optional[str] = None,
        include_finished: bool = False,
    ) -> List[JobRecord]:
        """Jobs the controller knows (pending/running; with include_finished also the
        finished ones it still remembers, for MinJobAge). Filtered by user/account."""

    @abc.abstractmethod
    def list_finished_jobs(
        self,
        user: Optional[str],
        start: datetime,
        end: datetime,
        states: Optional[Iterable[JobState]] = None,
    ) -> List[JobRecord]:
        """Allocations (no steps) from accounting that ended within [start, end] in one of
        ``states`` (default: every finished state), newest first. ``user=None`` means
        every user. Raises AccountingUnavailable."""

    @abc.abstractmethod
    def cancel(self, job_id: int) -> None:
        """Cancel a job; a job that is unknown or already finished is not an error."""

    def cancel_many(self, job_ids: Iterable[int]) -> None:
        """Cancel several jobs (backends may do it in one request)."""
        for job_id in job_ids:
            self.cancel(job_id)

    @abc.abstractmethod
    def requeue(self, job_id: int) -> None:
        """Requeue a running (or finished, requeueable) batch job under the same id."""

    @abc.abstractmethod
    def release(self, job_id: int) -> None:
        """Release a held job."""

    def get_partition(self, name: str) -> Optional[PartitionInfo]:
        """A partition's limits; None when the partition does not exist (or, for a
        backend that cannot tell, is unknown). Read-only."""
        return None

    def list_partition_names(self) -> Optional[List[str]]:
        """Every partition's name, or None when the backend cannot list them. Read-only."""
        return None

    def partition_limits(self, name: str) -> Optional[PartitionLimits]:
        """Partition ``name``'s limits; when it does not exist, ``exists=False`` and the
        partitions there are; None when the backend cannot tell. Read-only. Raises
        SchedulerError (and its subclasses) like :meth:`get_partition`."""
        info = self.get_partition(name)
        kill_wait = self.kill_wait_seconds()
        if info is not None:
            return PartitionLimits(name, info.node_limit, info.max_time_minutes,
                                   kill_wait_seconds=kill_wait)
        names = self.list_partition_names()
        if not names:
            return None
        return PartitionLimits(name, exists=False, available=tuple(names), kill_wait_seconds=kill_wait)

    def kill_wait_seconds(self) -> Optional[int]:
        """The controller's KillWait in seconds; None when it cannot be told. Read-only.
        This default reads the slurm.conf this login node's Slurm reads (a file read); the
        backends ask the controller."""
        from .slurmconf import configured_kill_wait

        return configured_kill_wait()
