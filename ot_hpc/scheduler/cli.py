"""The command-line backend: Slurm's own commands, with explicit, stable formats.

Used where pyslurm cannot be imported (most clusters until users build pyslurm against
their site's Slurm). Robust on Slurm 22.05 through 25.11: never ``--json`` (slow, and its
schema changes between releases); always an explicit field list with a delimiter that
cannot occur in Slurm's values; ``sacct -X`` (allocations only) with ``-P``.

Parsing is pure (``parse_*`` functions over text); only :class:`CliScheduler` runs
processes, through :func:`_run`.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..hostlist import expand_hostlist
from ..durations import parse_duration_seconds, parse_slurm_timestamp, parse_time_limit_minutes
from .base import (
    FINISHED_STATES,
    AccountingUnavailable,
    ControllerUnreachable,
    JobRecord,
    JobRequest,
    JobState,
    PartitionInfo,
    Scheduler,
    SchedulerError,
    normalize_state,
)

# ASCII unit separator: no job name, path or reason contains it.
DELIMITER = "\x1f"
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
_ALREADY_GONE_MARKERS = (
    "invalid job id specified",
    "job/step already completing or completed",
    "already completing or completed",
)

# squeue --Format fields: (our name, squeue -O field). Each is written "Field:0<DELIM>",
# i.e. no padding and our delimiter as the suffix; the same names on 22.05 .. 25.11.
SQUEUE_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("job_id", "JobID"),
    ("name", "Name"),
    ("user", "UserName"),
    ("state", "State"),
    ("reason", "Reason"),
    ("partition", "Partition"),
    ("account", "Account"),
    ("node_count", "NumNodes"),
    ("node_list", "NodeList"),
    ("time_limit", "TimeLimit"),
    ("elapsed", "TimeUsed"),
    ("time_left", "TimeLeft"),
    ("submit_time", "SubmitTime"),
    ("start_time", "StartTime"),
    ("end_time", "EndTime"),
    ("stdout", "STDOUT"),  # the pattern as given (%j unexpanded before 23.02)
    ("restart_count", "RestartCnt"),
    ("exit_status", "exit_code"),  # a raw wait status: 768 = exit 3, 15 = signal 15
)

# sacct -o fields (same on 22.05 .. 25.11).
SACCT_FIELDS: Tuple[str, ...] = (
    "JobIDRaw",
    "JobName",
    "User",
    "State",
    "Reason",
    "Partition",
    "Account",
    "NNodes",
    "NodeList",
    "TimelimitRaw",
    "ElapsedRaw",
    "Submit",
    "Start",
    "End",
    "ExitCode",
)


def _squeue_format() -> str:
    return ",".join(f"{field}:0{DELIMITER}" for _, field in SQUEUE_FIELDS)


def decode_wait_status(text: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """A raw wait status (squeue's ``exit_code``) as (exit code, signal)."""
    status = _int_or_none(text)
    if status is None:
        return None, None
    return (status >> 8) & 0xFF, status & 0x7F


def expand_output_pattern(pattern: Optional[str], job_id: int, name: str, user: str,
                          node_list: str) -> Optional[str]:
    """Slurm's filename pattern (``%j``, ``%x``, ``%u``, ``%N``, ``%%``) for a batch job."""
    if not pattern:
        return None
    first_node = expand_hostlist(node_list)[0] if node_list else ""
    table = {"j": str(job_id), "J": str(job_id), "A": str(job_id), "x": name, "u": user,
             "N": first_node, "n": "0", "t": "0", "s": "batch", "%": "%"}
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%" and i + 1 < len(pattern):
            j = i + 1
            while j < len(pattern) and pattern[j].isdigit():  # %10j: zero-padded width
                j += 1
            if j < len(pattern) and pattern[j] in table:
                value = table[pattern[j]]
                width = pattern[i + 1:j]
                out.append(value.zfill(int(width)) if width and value.isdigit() else value)
                i = j + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _optional(text: str) -> Optional[str]:
    value = text.strip()
    return None if value in ("", "(null)", "None", "N/A", "(None)") else value


def _int_or_none(text: Optional[str]) -> Optional[int]:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _safe_duration(text: Optional[str]) -> Optional[int]:
    try:
        return parse_duration_seconds(text)
    except ValueError:
        return None


def _safe_minutes(text: Optional[str]) -> Optional[int]:
    try:
        return parse_time_limit_minutes(text)
    except ValueError:
        return None


def parse_exit_code(text: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """Slurm's ``EXIT:SIGNAL`` (``3:0``, ``0:15``) as (exit code, signal)."""
    if not text or ":" not in text:
        return _int_or_none(text), None
    code, _, sig = text.strip().partition(":")
    return _int_or_none(code), _int_or_none(sig)


def _job_id(text: str) -> Optional[int]:
    """Our jobs are plain batch jobs; array/het ids (``12_3``, ``12+1``) are skipped."""
    return _int_or_none(text)


def parse_squeue(output: str) -> List[JobRecord]:
    """Records from ``squeue -h -O <_squeue_format()>`` output."""
    names = [name for name, _ in SQUEUE_FIELDS]
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        values = dict(zip(names, line.split(DELIMITER)))
        job_id = _job_id(values.get("job_id", ""))
        if job_id is None:
            continue
        state = normalize_state(values.get("state"))
        name, user = values.get("name", ""), values.get("user", "")
        node_list = _optional(values.get("node_list", "")) or ""
        exit_code, exit_signal = decode_wait_status(values.get("exit_status")) if state.is_finished else (None, None)
        records.append(
            JobRecord(
                job_id=job_id,
                name=name,
                user=user,
                state=state,
                raw_state=values.get("state", "").strip(),
                reason=_optional(values.get("reason", "")),
                partition=_optional(values.get("partition", "")),
                account=_optional(values.get("account", "")),
                node_count=_int_or_none(values.get("node_count")) or 0,
                node_list=node_list,
                time_limit_minutes=_safe_minutes(values.get("time_limit")),
                elapsed_seconds=_safe_duration(values.get("elapsed")),
                time_left_seconds=_safe_duration(values.get("time_left")) if state.is_active else None,
                submit_time=parse_slurm_timestamp(values.get("submit_time")),
                start_time=parse_slurm_timestamp(values.get("start_time")) if state != JobState.PENDING else None,
                end_time=parse_slurm_timestamp(values.get("end_time")) if state.is_finished else None,
                exit_code=exit_code,
                exit_signal=exit_signal,
                stdout_path=expand_output_pattern(values.get("stdout"), job_id, name, user, node_list),
                restart_count=_int_or_none(values.get("restart_count")) or 0,
            )
        )
    return records


_SCONTROL_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9/:_]*=")


def parse_scontrol_fields(line: str) -> Dict[str, str]:
    """``Key=Value Key=Value ...`` from ``scontrol show job -o`` into a dict.

    Values may contain spaces (job names, paths): a token that does not start with
    ``Key=`` continues the previous value.
    """
    fields: Dict[str, str] = {}
    last_key = None
    for token in line.strip().split(" "):
        if _SCONTROL_KEY.match(token):
            key, _, value = token.partition("=")
            fields[key] = value
            last_key = key
        elif last_key is not None:
            fields[last_key] += " " + token
    return fields


def partition_from_scontrol(fields: Mapping[str, str]) -> Optional[PartitionInfo]:
    """One ``scontrol show partition -o`` line (parsed by :func:`parse_scontrol_fields`)
    as a :class:`PartitionInfo`; None without a PartitionName. ``UNLIMITED`` -> None."""
    name = (fields.get("PartitionName") or "").strip()
    if not name:
        return None
    max_nodes_text = (fields.get("MaxNodes") or "").strip()
    max_nodes = None if max_nodes_text.upper() == "UNLIMITED" else _int_or_none(max_nodes_text)
    return PartitionInfo(
        name=name,
        total_nodes=_int_or_none(fields.get("TotalNodes")) or 0,
        max_nodes_per_job=max_nodes,
        max_time_minutes=_safe_minutes(fields.get("MaxTime")),
        state=(fields.get("State") or "UNKNOWN").strip().upper(),
    )


def record_from_scontrol(fields: Mapping[str, str]) -> Optional[JobRecord]:
    job_id = _job_id(fields.get("JobId", ""))
    if job_id is None:
        return None
    state = normalize_state(fields.get("JobState"))
    exit_code, exit_signal = parse_exit_code(fields.get("ExitCode"))
    user = fields.get("UserId", "").split("(")[0]
    elapsed = _safe_duration(fields.get("RunTime"))
    limit_minutes = _safe_minutes(fields.get("TimeLimit"))
    time_left = None
    if state.is_active and limit_minutes is not None and elapsed is not None:
        time_left = max(0, limit_minutes * 60 - elapsed)
    return JobRecord(
        job_id=job_id,
        name=fields.get("JobName", ""),
        user=user,
        state=state,
        raw_state=fields.get("JobState", ""),
        reason=_optional(fields.get("Reason", "")),
        partition=_optional(fields.get("Partition", "")),
        account=_optional(fields.get("Account", "")),
        node_count=_int_or_none(fields.get("NumNodes", "").split("-")[0]) or 0,
        node_list=_optional(fields.get("NodeList", "")) or "",
        time_limit_minutes=limit_minutes,
        elapsed_seconds=elapsed,
        time_left_seconds=time_left,
        submit_time=parse_slurm_timestamp(fields.get("SubmitTime")),
        start_time=parse_slurm_timestamp(fields.get("StartTime")) if state != JobState.PENDING else None,
        end_time=parse_slurm_timestamp(fields.get("EndTime")) if state.is_finished else None,
        exit_code=exit_code,
        exit_signal=exit_signal,
        stdout_path=expand_output_pattern(_optional(fields.get("StdOut", "")), job_id,
                                          fields.get("JobName", ""), user,
                                          _optional(fields.get("NodeList", "")) or ""),
        restart_count=_int_or_none(fields.get("Restarts")) or 0,
    )


def parse_sacct(output: str) -> List[JobRecord]:
    """Records from ``sacct -X -n -P --delimiter=<DELIMITER> -o <SACCT_FIELDS>``."""
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        values = dict(zip(SACCT_FIELDS, line.split(DELIMITER)))
        job_id = _job_id(values.get("JobIDRaw", ""))
        if job_id is None:
            continue
        state = normalize_state(values.get("State"))
        exit_code, exit_signal = parse_exit_code(values.get("ExitCode"))
        limit = _int_or_none(values.get("TimelimitRaw"))
        records.append(
            JobRecord(
                job_id=job_id,
                name=values.get("JobName", ""),
                user=values.get("User", ""),
                state=state,
                raw_state=values.get("State", "").strip(),
                reason=_optional(values.get("Reason", "")),
                partition=_optional(values.get("Partition", "")),
                account=_optional(values.get("Account", "")),
                node_count=_int_or_none(values.get("NNodes")) or 0,
                node_list=_optional(values.get("NodeList", "")) or "",
                time_limit_minutes=limit,
                elapsed_seconds=_int_or_none(values.get("ElapsedRaw")),
                time_left_seconds=None,
                submit_time=parse_slurm_timestamp(values.get("Submit")),
                start_time=parse_slurm_timestamp(values.get("Start")),
                end_time=parse_slurm_timestamp(values.get("End")),
                exit_code=exit_code,
                exit_signal=exit_signal,
            )
        )
    return records


def sbatch_arguments(request: JobRequest) -> List[str]:
    """The sbatch options for a request (pure; also what ``--dry-run`` shows)."""
    args = [
        f"--job-name={request.name}",
        f"--nodes={request.nodes}",
        f"--ntasks-per-node={request.ntasks_per_node}",
        f"--ntasks={request.ntasks}",
        f"--time={request.time_limit_minutes}",
    ]
    if request.cpus_per_task:
        args.append(f"--cpus-per-task={request.cpus_per_task}")
    if request.gpus_per_node:
        args.append(f"--gres=gpu:{request.gpus_per_node}")
    if request.memory_per_node_mb:
        args.append(f"--mem={request.memory_per_node_mb}M")
    if request.partition:
        args.append(f"--partition={request.partition}")
    if request.account:
        args.append(f"--account={request.account}")
    if request.qos:
        args.append(f"--qos={request.qos}")
    if request.exclude_nodes:
        args.append(f"--exclude={','.join(request.exclude_nodes)}")
    if request.output_path:
        args.append(f"--output={request.output_path}")
    if request.working_directory:
        args.append(f"--chdir={request.working_directory}")
    if request.signal_spec:
        args.append(f"--signal={request.signal_spec}")
    args.append("--requeue" if request.requeue else "--no-requeue")
    if request.append_output:
        args.append("--open-mode=append")
    if request.hold:
        args.append("--hold")
    return args


def clean_slurm_message(stderr: str) -> str:
    """Slurm's error text as one line, without the ``sbatch: error:`` prefixes."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip()
        for prefix in ("sbatch: error: ", "squeue: error: ", "sacct: error: ", "scancel: error: ",
                       "scontrol: error: ", "slurm_load_jobs error: ", "error: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines) or "no message from Slurm"


def _matches(message: str, markers: Sequence[str]) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in markers)


Runner = Callable[[Sequence[str], Optional[str], Optional[Mapping[str, str]]], "subprocess.CompletedProcess[str]"]


def _run_process(argv: Sequence[str], stdin: Optional[str], env: Optional[Mapping[str, str]]):
    return subprocess.run(
        list(argv),
        input=stdin,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )


class CliScheduler(Scheduler):
    name = "cli"

    def __init__(self, run: Optional[Runner] = None, sleep: Callable[[float], None] = time.sleep):
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
             retry_timeouts: bool = True) -> "subprocess.CompletedProcess[str]":
        """Run a Slurm command; retry briefly while the controller is unreachable.

        ``retry_markers`` says which errors are retried: sbatch only retries a connect
        failure and never a time-out (the job may exist already); sacct retries nothing
        (it talks to slurmdbd, whose absence means "no accounting").
        """
        argv = [self._command(argv[0])] + argv[1:]
        for pause in (*RETRY_PAUSES_SECONDS, None):
            try:
                result = self._run_process(argv, stdin, env)
            except subprocess.TimeoutExpired:
                message = f"{os.path.basename(argv[0])} did not answer within {COMMAND_TIMEOUT_SECONDS} s"
                if pause is None or not retry_timeouts:
                    raise ControllerUnreachable(message)
                self._sleep(pause)
                continue
            if result.returncode == 0 or not _matches(result.stderr, retry_markers):
                return result
            if pause is None:
                raise ControllerUnreachable(
                    f"Slurm controller unreachable: {clean_slurm_message(result.stderr)}"
                )
            self._sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

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
                                       retry_markers=_CONNECT_MARKERS, retry_timeouts=False))
        first = output.strip().splitlines()[-1] if output.strip() else ""
        job_id = _int_or_none(first.split(";")[0])
        if job_id is None:
            raise SchedulerError(f"sbatch printed no job id: {output.strip()!r}")
        return job_id

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
        argv = ["squeue", "-h", "-O", _squeue_format()]
        if user:
            argv += ["-u", user]
        if account:
            argv += ["-A", account]
        if include_finished:
            argv += ["-t", "all"]
        records = parse_squeue(self._check(self._run(argv)))
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
        records = self._sacct([*who, *window])
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
