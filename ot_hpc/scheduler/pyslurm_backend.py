"""The pyslurm backend: Slurm's C API through pyslurm 25.11.x (no subprocess).

Every pyslurm name used here was read from the pyslurm 25.11.2 sources; see
``docs/pyslurm-25.11.2-api.md`` for the file and line of each. pyslurm is imported
lazily (importing this module stays cheap) and only after checking that a Slurm
configuration file exists: ``import pyslurm`` with a wrong ``SLURM_CONF`` hangs for
about a minute and then ends the whole process with status 1.

The mapping between pyslurm's objects and the layer's types is pure and lives in
:mod:`ot_hpc.scheduler.pyslurm_convert` (unit-tested without pyslurm).
"""
from __future__ import annotations

import importlib
import os
import pwd
import time
from datetime import datetime
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

from .base import (
    AccountingUnavailable,
    BackendUnavailable,
    ControllerUnreachable,
    JobRecord,
    JobRequest,
    JobState,
    PartitionInfo,
    Scheduler,
    SchedulerError,
    SubmissionUncertain,
)
from .deadline import Deadline
from .pyslurm_convert import (
    collection_values,
    int_or_none,
    one_line,
    partition_from_pyslurm,
    record_from_db_job,
    record_from_job,
    submit_description_lines,
    submit_kwargs,
)
from .pyslurm_listing import name_lookup, select_jobs, uid_of_user
from .slurmconf import DEFAULT_CONFIG_PATHS

SUPPORTED_PYSLURM_SERIES = "25.11."
# Controller unreachable: pause this long before each retry, then give up.
RETRY_PAUSES_SECONDS: Tuple[float, ...] = (0.2, 0.5, 1.0)
# Slurm error numbers (slurm_errno.h; pyslurm re-exports them at top level through
# ``from pyslurm.deprecated import *``). Used only when the module lacks the name.
_ERRNO_DEFAULTS = {
    "SLURM_COMMUNICATIONS_CONNECTION_ERROR": 1001,
    "SLURM_COMMUNICATIONS_SEND_ERROR": 1002,
    "SLURM_COMMUNICATIONS_RECEIVE_ERROR": 1003,
    "SLURM_COMMUNICATIONS_SHUTDOWN_ERROR": 1004,
    "SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR": 1800,
    "SLURMCTLD_COMMUNICATIONS_SEND_ERROR": 1801,
    "SLURMCTLD_COMMUNICATIONS_RECEIVE_ERROR": 1802,
    "SLURMCTLD_COMMUNICATIONS_SHUTDOWN_ERROR": 1803,
    "SLURMCTLD_COMMUNICATIONS_BACKOFF": 1804,
    "SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT": 5004,
    "ESLURM_INVALID_JOB_ID": 2017,
}
# Nothing was sent: safe to retry even a submission.
_CONNECT_ERRNO_NAMES = (
    "SLURM_COMMUNICATIONS_CONNECTION_ERROR",
    "SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR",
    "SLURMCTLD_COMMUNICATIONS_BACKOFF",
)
# The request may have reached slurmctld: retried for reads and idempotent controls.
_UNREACHABLE_ERRNO_NAMES = _CONNECT_ERRNO_NAMES + (
    "SLURM_COMMUNICATIONS_SEND_ERROR",
    "SLURM_COMMUNICATIONS_RECEIVE_ERROR",
    "SLURM_COMMUNICATIONS_SHUTDOWN_ERROR",
    "SLURMCTLD_COMMUNICATIONS_SEND_ERROR",
    "SLURMCTLD_COMMUNICATIONS_RECEIVE_ERROR",
    "SLURMCTLD_COMMUNICATIONS_SHUTDOWN_ERROR",
    "SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT",
)
_CONNECT_MARKERS = (
    "unable to contact slurm controller (connect failure)",
    "communication connection failure",
    "rate limit exceeded, please retry momentarily",
    "connection refused",
)
_UNREACHABLE_MARKERS = _CONNECT_MARKERS + (
    "unable to contact slurm controller",
    "socket timed out",
    "connection timed out",
    "message send failure",
    "message receive failure",
)
_UNKNOWN_JOB_MARKERS = ("invalid job id specified",)


# -- loading pyslurm ------------------------------------------------------------------
def slurm_config_problem(environ: Optional[Mapping[str, str]] = None,
                         exists: Callable[[str], bool] = os.path.isfile) -> Optional[str]:
    """Why ``import pyslurm`` would hang and kill the process, or None if it would not.

    libslurm reads ``$SLURM_CONF`` (else its compiled-in default) when pyslurm is
    imported; a missing file is not an exception but a ~60 s hang and ``exit(1)``.
    """
    environ = os.environ if environ is None else environ
    configured = environ.get("SLURM_CONF")
    if configured:
        if not exists(configured):
            return (f"SLURM_CONF={configured} does not exist (importing pyslurm would hang "
                    f"and exit the process): point SLURM_CONF at your cluster's slurm.conf")
        return None
    if any(exists(path) for path in DEFAULT_CONFIG_PATHS):
        return None
    return ("no Slurm configuration found: SLURM_CONF is unset and none of "
            + ", ".join(DEFAULT_CONFIG_PATHS)
            + " exists; set SLURM_CONF to your cluster's slurm.conf")


def import_pyslurm(environ: Optional[Mapping[str, str]] = None,
                   exists: Callable[[str], bool] = os.path.isfile,
                   importer: Callable[[str], Any] = importlib.import_module) -> Any:
    """Import the real pyslurm, or raise BackendUnavailable with a one-line reason."""
    problem = slurm_config_problem(environ, exists)
    if problem:
        raise BackendUnavailable(f"pyslurm backend unavailable: {problem}")
    try:
        module = importer("pyslurm")
    except Exception as exc:  # ImportError, OSError (libslurm ABI), RuntimeError, ...
        raise BackendUnavailable(
            f"pyslurm cannot be imported: {type(exc).__name__}: {one_line(exc)}"
        ) from None
    return module


def check_pyslurm_module(module: Any) -> None:
    """The backend is written against pyslurm 25.11.x; refuse anything else clearly."""
    version = str(getattr(module, "__version__", ""))
    if not version.startswith(SUPPORTED_PYSLURM_SERIES):
        raise BackendUnavailable(
            f"pyslurm {version or '(unknown version)'} found, but this backend is written "
            f"against pyslurm {SUPPORTED_PYSLURM_SERIES}x (Slurm 25.11)"
        )
    missing = [name for name in ("Job", "Jobs", "JobSubmitDescription", "RPCError", "db")
               if not hasattr(module, name)]
    if missing:
        raise BackendUnavailable(f"pyslurm module lacks {', '.join(missing)}: not pyslurm 25.11?")


# -- the backend ----------------------------------------------------------------------
class PyslurmScheduler(Scheduler):
    name = "pyslurm"

    def __init__(self, pyslurm_module: Any = None, *,
                 retry_pauses: Sequence[float] = RETRY_PAUSES_SECONDS,
                 sleep: Callable[[float], None] = time.sleep, passwd: Any = pwd) -> None:
        module = pyslurm_module if pyslurm_module is not None else import_pyslurm()
        check_pyslurm_module(module)
        self._pyslurm = module
        self._passwd = passwd  # getpwnam/getpwuid: the user filter and owners' names
        self._retry_pauses = tuple(retry_pauses)
        self._sleep = sleep
        error_module = getattr(module, "error", None)
        base = getattr(module, "PyslurmError", None) or getattr(error_module, "PyslurmError", None)
        self._errors: Tuple[type, ...] = tuple(
            cls for cls in (module.RPCError, base) if isinstance(cls, type)
        )

    # -- error handling ---------------------------------------------------------------
    def _errno(self, name: str) -> int:
        value = getattr(self._pyslurm, name, None)
        return value if isinstance(value, int) else _ERRNO_DEFAULTS.get(name, -12345)

    def _matches(self, exc: BaseException, names: Sequence[str], markers: Sequence[str]) -> bool:
        errno = getattr(exc, "errno", None)
        if isinstance(errno, int) and errno in {self._errno(name) for name in names}:
            return True
        text = str(exc).lower()
        return any(marker in text for marker in markers)

    def _unreachable(self, exc: BaseException, connect_only: bool) -> bool:
        if connect_only:
            return self._matches(exc, _CONNECT_ERRNO_NAMES, _CONNECT_MARKERS)
        return self._matches(exc, _UNREACHABLE_ERRNO_NAMES, _UNREACHABLE_MARKERS)

    def _is_unknown_job(self, exc: BaseException) -> bool:
        return self._matches(exc, ("ESLURM_INVALID_JOB_ID",), _UNKNOWN_JOB_MARKERS)

    def _call(self, what: str, func: Callable[[], Any], connect_only: bool = False) -> Any:
        """Run a pyslurm call; retry while slurmctld is unreachable and the command's
        deadline leaves room for one more whole call (a call into libslurm cannot be cut
        short), then raise ControllerUnreachable; any other pyslurm error is re-raised
        unchanged."""
        deadline = self.current_deadline()
        with deadline.counting():
            return self._tries(what, func, connect_only, deadline)

    def _tries(self, what: str, func: Callable[[], Any], connect_only: bool,
               deadline: Deadline) -> Any:
        pauses = iter(self._retry_pauses)
        steady = (self._retry_pauses or RETRY_PAUSES_SECONDS)[-1]
        while True:
            started = deadline.spent()
            try:
                return func()
            except self._errors as exc:
                if not self._unreachable(exc, connect_only):
                    raise
                failure = one_line(exc) or type(exc).__name__
            pause = next(pauses, None if deadline.unlimited else steady)
            if pause is not None:
                pause = deadline.retry_pause(pause, deadline.spent() - started)
            if pause is None:
                raise ControllerUnreachable(f"Slurm controller unreachable ({what}): {failure}")
            self._sleep(pause)

    def _failure(self, what: str, exc: BaseException) -> SchedulerError:
        return SchedulerError(f"{what}: {one_line(exc) or type(exc).__name__}")

    # -- the interface ----------------------------------------------------------------
    def submit(self, request: JobRequest) -> int:
        kwargs = submit_kwargs(request)
        try:
            description = self._pyslurm.JobSubmitDescription(**kwargs)
        except ValueError as exc:
            raise self._failure("pyslurm rejected the job description", exc) from None
        try:
            job_id = self._call("submit", description.submit, connect_only=True)
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            if self._unreachable(exc, connect_only=False):  # sent, no answer: may exist
                raise SubmissionUncertain(f"submit: {one_line(exc) or type(exc).__name__}") from None
            raise self._failure("Batch job submission failed", exc) from None
        except ValueError as exc:  # pyslurm's own validation (script, signal, memory)
            raise self._failure("pyslurm rejected the job description", exc) from None
        return int(job_id)

    def describe_submission(self, request: JobRequest) -> List[str]:
        return submit_description_lines(request)

    def _load_live(self, job_id: int) -> Optional[JobRecord]:
        try:
            job = self._call(f"job {job_id}", lambda: self._pyslurm.Job.load(int(job_id)))
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            if self._is_unknown_job(exc):
                return None
            raise self._failure(f"cannot read job {job_id}", exc) from None
        return record_from_job(job) if job is not None else None

    def _load_accounting(self, db_filter: Any, what: str) -> List[Any]:
        db = self._pyslurm.db
        try:
            jobs = db.Jobs.load(db_filter)
        except self._errors as exc:
            raise AccountingUnavailable(f"job accounting unavailable ({what}): {one_line(exc)}") from None
        except ValueError as exc:  # "Database connection is not open" (connection.pyx)
            raise AccountingUnavailable(f"job accounting unavailable ({what}): {one_line(exc)}") from None
        return list(collection_values(jobs))

    def get_job(self, job_id: int) -> Optional[JobRecord]:
        job_id = int(job_id)
        record = self._load_live(job_id)
        if record is not None:
            return record
        try:
            jobs = self._load_accounting(self._pyslurm.db.JobFilter(ids=[job_id]), f"job {job_id}")
        except AccountingUnavailable:
            return None
        matches = [record_from_db_job(job) for job in jobs if int_or_none(job.id) == job_id]
        return matches[-1] if matches else None

    def list_jobs(self, user: Optional[str] = None, account: Optional[str] = None,
                  include_finished: bool = False) -> List[JobRecord]:
        # Jobs.load() returns every user's jobs: compare uids (resolved once), convert only
        # the jobs kept, and ask passwd once per owner (pyslurm_listing).
        uid = uid_of_user(user, self._passwd.getpwnam) if user else None
        if user and uid is None:
            return []  # no such user: squeue -u lists nothing either
        try:
            jobs = self._call("list jobs", self._pyslurm.Jobs.load)
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            raise self._failure("cannot list jobs", exc) from None
        name_of = name_lookup(self._passwd.getpwuid)
        records = [record_from_job(job, user=str(user) if uid is not None else name_of(job.user_id))
                   for job in select_jobs(collection_values(jobs), uid, account or None)]
        if not include_finished:
            records = [record for record in records if record.state.is_active]
        records.sort(key=lambda r: r.job_id)
        return records

    def list_finished_jobs(self, user: Optional[str], start: datetime, end: datetime,
                           states: Optional[Iterable[JobState]] = None) -> List[JobRecord]:
        wanted = frozenset(states) if states is not None else None
        start_aware = start if start.tzinfo else start.astimezone()
        end_aware = end if end.tzinfo else end.astimezone()
        # No state filter exists, and users=[...] silently drops uid 0 (root would see
        # everybody): query the window only, filter states and users here.
        db_filter = self._pyslurm.db.JobFilter(
            start_time=int(start_aware.timestamp()),
            end_time=int(end_aware.timestamp()) + 1,
        )
        rows = self._load_accounting(db_filter, "finished jobs")
        uid = uid_of_user(user, self._passwd.getpwnam) if user is not None else None
        if uid is not None:  # compare uids, as list_jobs does
            rows = select_jobs(rows, uid)
        elif user is not None:  # a name passwd does not know: pyslurm's str(uid) names
            rows = [job for job in rows if str(job.user_name or "") == user]
        name_of = name_lookup(self._passwd.getpwuid)
        records = []
        for job in rows:
            record = record_from_db_job(job, user=str(user) if uid is not None else name_of(job.user_id))
            if not record.state.is_finished or record.end_time is None:
                continue
            if wanted is not None and record.state not in wanted:
                continue
            if not (start_aware <= record.end_time <= end_aware):
                continue
            records.append(record)
        records.sort(key=lambda r: (r.end_time, r.job_id), reverse=True)
        return records

    def _control(self, what: str, job_id: int, action: Callable[[Any], Any]) -> None:
        try:
            self._call(what, lambda: action(self._pyslurm.Job(int(job_id))))
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            raise self._failure(f"cannot {what} job {job_id}", exc) from None

    def cancel(self, job_id: int) -> None:
        # Job.cancel() == send_signal(9), which ignores unknown and finished jobs.
        self._control("cancel", job_id, lambda job: job.cancel())

    def requeue(self, job_id: int) -> None:
        self._control("requeue", job_id, lambda job: job.requeue(hold=False))

    def release(self, job_id: int) -> None:
        self._control("release", job_id, lambda job: job.release())

    def get_partition(self, name: str) -> Optional[PartitionInfo]:
        try:
            part = self._call(f"partition {name}", lambda: self._pyslurm.Partition.load(str(name)))
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            if "doesn't exist" in str(exc).lower():  # partition.pyx:244
                return None
            raise self._failure(f"cannot read partition {name}", exc) from None
        return partition_from_pyslurm(part) if part is not None else None

    def kill_wait_seconds(self) -> Optional[int]:
        """``pyslurm.slurmctld.Config.load().kill_wait`` (pyslurm 25.11: slurmctld/config.pyx,
        seconds); slurm.conf's when this pyslurm has no slurmctld config API."""
        config_api = getattr(getattr(self._pyslurm, "slurmctld", None), "Config", None)
        if config_api is None:
            return super().kill_wait_seconds()
        try:
            config = self._call("read the controller's configuration", config_api.load)
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            raise self._failure("cannot read the controller's configuration", exc) from None
        value = getattr(config, "kill_wait", None)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    def list_partition_names(self) -> Optional[List[str]]:
        try:
            parts = self._call("list partitions", self._pyslurm.Partitions.load)
        except ControllerUnreachable:
            raise
        except self._errors as exc:
            raise self._failure("cannot list partitions", exc) from None
        return [str(part.name) for part in collection_values(parts)]
