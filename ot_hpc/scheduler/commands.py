"""The command-line backend: Slurm's own commands, with explicit, stable formats.

Used where pyslurm cannot be imported (most clusters until users build pyslurm against
their site's Slurm). Robust on Slurm 22.05 through 25.11: never ``--json`` (slow, and its
schema changes between releases); always an explicit field list with a delimiter that
cannot occur in Slurm's values; ``sacct -X`` (allocations only) with ``-P``.

Parsing is pure (:mod:`ot_hpc.scheduler.slurm_text`); so are :func:`sbatch_arguments`
and :func:`sbatch_lines` (what ``--dry-run`` shows); only :class:`CommandScheduler` runs
processes, through :meth:`CommandScheduler._run`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import datetime
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from .base import (FINISHED_STATES, AccountingUnavailable, ControllerUnreachable, JobRecord,
                   JobRequest, JobState, PartitionInfo, Scheduler, SchedulerError,
                   SubmissionUncertain)
from .deadline import MIN_ATTEMPT_SECONDS, Deadline
from .slurm_text import (
    DELIMITER,
    SACCT_FIELDS,
    clean_slurm_message,
    int_or_none,
    kill_wait_from_config,
    parse_sacct,
    parse_scontrol_fields,
    parse_squeue,
    partition_from_scontrol,
    record_from_scontrol,
    squeue_format,
)

COMMAND_TIMEOUT_SECONDS = 60
# Controller unreachable: retry after these pauses, then give up.
RETRY_PAUSES_SECONDS = (0.5, 1.0, 2.0)

# Nothing reached slurmctld: safe to retry anything, a submission included.
_CONNECT_MARKERS = (
    "unable to contact slurm controller (connect failure)",
    "connection refused",
)
# The request may have reached slurmctld: retried for queries and controls only, never
# for sbatch (a retry could submit the job twice).
_UNREACHABLE_MARKERS = _CONNECT_MARKERS + (
    "unable to contact slurm controller",
    "slurm_load_jobs error: unable to contact",
    "socket timed out",
    "zero bytes were transmitted or received",
)
# sacct talks to slurmdbd, not slurmctld: any of these means "no history here".
_NO_ACCOUNTING_MARKERS = (
    "slurmdbd: no accounting storage",
    "accounting storage is disabled",
    "jobacct_storage_p_get_jobs",
    "problem talking to the database",
    "slurmdbd is not running",
    "persistent connection",
    "connection refused",
)
# sacct's state codes (-s) for our finished states.
SACCT_STATE_CODES = {
    JobState.COMPLETED: "CD",
    JobState.FAILED: "F",
    JobState.CANCELLED: "CA",
    JobState.TIMEOUT: "TO",
    JobState.OUT_OF_MEMORY: "OOM",
    JobState.NODE_FAIL: "NF",
    JobState.BOOT_FAIL: "BF",
    JobState.DEADLINE: "DL",
    JobState.PREEMPTED: "PR",
}
# A user Slurm has no association for: 25.11's sacct exits 1 ("Invalid user id: nobody"),
# 22.05 and 24.11 return nothing for a passwd user and fail only for a name passwd lacks;
# squeue says "Invalid user: x" and (22.05) still exits 0. Every one of them: no jobs.
_UNKNOWN_USER_MARKERS = ("invalid user id", "invalid user:")
_ALREADY_GONE_MARKERS = (
    "invalid job id specified",
    "job/step already completing or completed",
    "already completing or completed",
)


def sbatch_arguments(request: JobRequest) -> List[str]:
    """The sbatch options for a request (pure; also what ``--dry-run`` shows)."""
    r = request
    # Given only when set, in this order.
    optional = (
        ("--cpus-per-task", r.cpus_per_task),
        ("--gres", r.gpus_per_node and f"gpu:{r.gpus_per_node}"),
        ("--mem", r.memory_per_node_mb and f"{r.memory_per_node_mb}M"),
        ("--partition", r.partition),
        ("--account", r.account),
        ("--qos", r.qos),
        ("--exclude", ",".join(r.exclude_nodes)),
        ("--output", r.output_path),
        ("--chdir", r.working_directory),
        ("--signal", r.signal_spec),
    )
    args = [f"--job-name={r.name}", f"--nodes={r.nodes}", f"--ntasks-per-node={r.ntasks_per_node}",
            f"--ntasks={r.ntasks}", f"--time={r.time_limit_minutes}"]
    args += [f"{option}={value}" for option, value in optional if value]
    args.append("--requeue" if r.requeue else "--no-requeue")
    if r.append_output:
        args.append("--open-mode=append")
    if r.hold:
        args.append("--hold")
    return args


def sbatch_lines(request: JobRequest) -> List[str]:
    """The job description as ``#SBATCH`` lines: what this backend gives sbatch (pure)."""
    return [f"#SBATCH {argument}" for argument in sbatch_arguments(request)]


def _matches(message: str, markers: Sequence[str]) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in markers)


ProcessRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def _run_process(argv: Sequence[str], stdin: Optional[str], env: Optional[Mapping[str, str]],
                 timeout: float = COMMAND_TIMEOUT_SECONDS):
    return subprocess.run(
        list(argv),
        input=stdin,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class CommandScheduler(Scheduler):
    name = "cli"

    def __init__(self, run: Optional[ProcessRunner] = None, sleep: Callable[[float], None] = time.sleep):
        """``run(argv, stdin, env, timeout)`` runs one Slurm command (tests inject one)."""
        self._run_process = run or _run_process
        self._sleep = sleep

    # -- plumbing ---------------------------------------------------------------------
    @staticmethod
    def _command(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise SchedulerError(f"Slurm command {name!r} not found on PATH: is this a Slurm login node?")
        return path

    def _run(self, argv: List[str], stdin: Optional[str] = None,
             env: Optional[Mapping[str, str]] = None,
             retry_markers: Sequence[str] = _UNREACHABLE_MARKERS,
             submits: bool = False) -> "subprocess.CompletedProcess[str]":
        """Run a Slurm command; retry while the controller is unreachable and the
        command's deadline (``Scheduler.deadline``) leaves time, each try getting only
        the time that remains.

        ``retry_markers`` says which errors are retried; sacct retries nothing (it talks
        to slurmdbd, whose absence means "no accounting"). ``submits`` (sbatch): only a
        connect failure is retried, and only when a whole try still fits (a try is never
        cut short: a killed sbatch may have submitted); a time-out raises
        SubmissionUncertain.
        """
        argv = [self._command(argv[0])] + argv[1:]
        deadline = self.current_deadline()
        with deadline.counting():
            return self._tries(argv, stdin, env, deadline, retry_markers, submits)

    def _tries(self, argv: List[str], stdin: Optional[str], env: Optional[Mapping[str, str]],
               deadline: Deadline, retry_markers: Sequence[str],
               submits: bool) -> "subprocess.CompletedProcess[str]":
        name = os.path.basename(argv[0])
        pauses = iter(RETRY_PAUSES_SECONDS)
        while True:
            timeout = deadline.timeout(COMMAND_TIMEOUT_SECONDS)
            started = deadline.spent()
            try:
                result = self._run_process(argv, stdin, env, timeout)
            except subprocess.TimeoutExpired:
                failure = f"{name} did not answer within {timeout:.0f} s"
                if submits:
                    raise SubmissionUncertain(failure) from None
            else:
                if result.returncode == 0 or not _matches(result.stderr, retry_markers):
                    if submits and result.returncode != 0 and _matches(result.stderr, _UNREACHABLE_MARKERS):
                        raise SubmissionUncertain(clean_slurm_message(result.stderr))
                    return result
                failure = clean_slurm_message(result.stderr)
            pause = next(pauses, None if deadline.unlimited else RETRY_PAUSES_SECONDS[-1])
            needed = deadline.spent() - started if submits else MIN_ATTEMPT_SECONDS
            if pause is not None:
                pause = deadline.retry_pause(pause, needed)
            if pause is None:
                raise ControllerUnreachable(f"Slurm controller unreachable: {failure}")
            self._sleep(pause)

    def _check(self, result: "subprocess.CompletedProcess[str]") -> str:
        if result.returncode != 0:
            raise SchedulerError(clean_slurm_message(result.stderr or result.stdout))
        return result.stdout

    # -- the interface ----------------------------------------------------------------
    def submit(self, request: JobRequest) -> int:
        # sbatch exports exactly the environment it runs with (--export=ALL), so run it
        # with the request's environment and nothing else: the login environment never
        # leaks into the job. SLURM_CONF is kept so sbatch finds the cluster.
        env: Dict[str, str] = dict(request.environment)
        if "SLURM_CONF" in os.environ and "SLURM_CONF" not in env:
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        argv = ["sbatch", "--parsable", "--export=ALL", *sbatch_arguments(request)]
        output = self._check(self._run(argv, stdin=request.script, env=env,
                                       retry_markers=_CONNECT_MARKERS, submits=True))
        first = output.strip().splitlines()[-1] if output.strip() else ""
        job_id = int_or_none(first.split(";")[0])
        if job_id is None:
            raise SchedulerError(f"sbatch printed no job id: {output.strip()!r}")
        return job_id

    def describe_submission(self, request: JobRequest) -> List[str]:
        return sbatch_lines(request)

    def get_job(self, job_id: int) -> Optional[JobRecord]:
        result = self._run(["scontrol", "show", "job", "-o", str(int(job_id))])
        if result.returncode == 0:
            for line in result.stdout.splitlines():
                record = record_from_scontrol(parse_scontrol_fields(line))
                if record is not None and record.job_id == job_id:
                    return record
        elif "invalid job id" not in result.stderr.lower():
            raise SchedulerError(clean_slurm_message(result.stderr))
        try:
            history = self._sacct(["-j", str(int(job_id))])
        except AccountingUnavailable:
            return None
        matches = [record for record in history if record.job_id == job_id]
        return matches[-1] if matches else None

    def list_jobs(self, user: Optional[str] = None, account: Optional[str] = None,
                  include_finished: bool = False) -> List[JobRecord]:
        argv = ["squeue", "-h", "-O", squeue_format()]
        if user:
            argv += ["-u", user]
        if account:
            argv += ["-A", account]
        if include_finished:
            argv += ["-t", "all"]
        result = self._run(argv)
        if user and result.returncode != 0 and _matches(result.stderr, _UNKNOWN_USER_MARKERS):
            return []  # a user Slurm does not know has no jobs
        records = parse_squeue(self._check(result))
        if user:
            records = [r for r in records if r.user == user]
        if account:
            records = [r for r in records if r.account == account]
        return records

    def _sacct(self, selection: List[str]) -> List[JobRecord]:
        argv = ["sacct", "-X", "-n", "-P", f"--delimiter={DELIMITER}",
                "-o", ",".join(SACCT_FIELDS), *selection]
        result = self._run(argv, retry_markers=())
        if result.returncode != 0:
            message = clean_slurm_message(result.stderr)
            if any(marker in message.lower() for marker in _NO_ACCOUNTING_MARKERS):
                raise AccountingUnavailable(f"job accounting is not available: {message}")
            raise SchedulerError(message)
        return parse_sacct(result.stdout)

    def list_finished_jobs(self, user: Optional[str], start: datetime, end: datetime,
                           states: Optional[Iterable[JobState]] = None) -> List[JobRecord]:
        wanted = frozenset(states) if states is not None else FINISHED_STATES
        codes = sorted(SACCT_STATE_CODES[s] for s in wanted if s in SACCT_STATE_CODES)
        if not codes:
            return []
        # With -s, sacct selects jobs that were in those states during [-S, -E] (it needs
        # -E). Without it, sacct selects by eligibility and misses jobs cancelled while
        # held: they never were eligible.
        window = ["-S", start.astimezone().strftime("%Y-%m-%dT%H:%M:%S"),
                  "-E", end.astimezone().strftime("%Y-%m-%dT%H:%M:%S"),
                  "-s", ",".join(codes)]
        who = ["-u", user] if user else ["-a"]
        try:
            records = self._sacct([*who, *window])
        except AccountingUnavailable:
            raise
        except SchedulerError as exc:
            if user and _matches(str(exc), _UNKNOWN_USER_MARKERS):
                return []  # a user Slurm does not know has no history
            raise
        finished = [
            r for r in records
            if r.state in wanted and r.end_time is not None and start <= r.end_time <= end
            and (user is None or r.user == user)
        ]
        finished.sort(key=lambda r: (r.end_time, r.job_id), reverse=True)
        return finished

    def _control(self, argv: List[str]) -> None:
        result = self._run(argv)
        if result.returncode != 0:
            message = clean_slurm_message(result.stderr)
            if any(marker in message.lower() for marker in _ALREADY_GONE_MARKERS):
                return
            raise SchedulerError(message)

    def cancel(self, job_id: int) -> None:
        self._control(["scancel", str(int(job_id))])

    def cancel_many(self, job_ids: Iterable[int]) -> None:
        """One scancel for up to 500 ids at a time (not one process per job)."""
        ids = [str(int(job_id)) for job_id in job_ids]
        for first in range(0, len(ids), 500):
            self._control(["scancel", *ids[first:first + 500]])

    def requeue(self, job_id: int) -> None:
        result = self._run(["scontrol", "requeue", str(int(job_id))])
        self._check(result)

    def release(self, job_id: int) -> None:
        self._check(self._run(["scontrol", "release", str(int(job_id))]))

    def _show_partitions(self, name: Optional[str] = None) -> Optional[List[PartitionInfo]]:
        argv = ["scontrol", "show", "partition", "-o"] + ([name] if name else [])
        result = self._run(argv)
        if result.returncode != 0:
            if name and "not found" in ((result.stderr or "") + (result.stdout or "")).lower():
                return None  # "Partition <name> not found"
            raise SchedulerError(clean_slurm_message(result.stderr or result.stdout))
        parts = (partition_from_scontrol(parse_scontrol_fields(line))
                 for line in result.stdout.splitlines() if line.strip())
        return [p for p in parts if p is not None]

    def get_partition(self, name: str) -> Optional[PartitionInfo]:
        found = self._show_partitions(str(name))
        matches = [p for p in (found or []) if p.name == name]
        return matches[0] if matches else None

    def list_partition_names(self) -> Optional[List[str]]:
        return [p.name for p in self._show_partitions() or []]

    def kill_wait_seconds(self) -> Optional[int]:
        """KillWait from ``scontrol show config`` (the controller's), else slurm.conf's."""
        result = self._run(["scontrol", "show", "config"])
        if result.returncode == 0:
            found = kill_wait_from_config(result.stdout)
            if found is not None:
                return found
        return super().kill_wait_seconds()
