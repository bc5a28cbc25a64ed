"""Slurm's text, parsed: squeue, sacct and ``scontrol show`` output, and error messages.

Pure functions over text (no process is run here): the command-line backend
(:mod:`ot_hpc.scheduler.commands`) asks for exactly these fields and formats, always with
an explicit field list and a delimiter that cannot occur in Slurm's values.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..durations import parse_duration_seconds, parse_slurm_timestamp, parse_time_limit_minutes
from .base import JobRecord, JobState, PartitionInfo, normalize_state
from .output_path import job_output_path

# ASCII unit separator: no job name, path or reason contains it.
DELIMITER = "\x1f"

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
    ("exit_status", "exit_code"),  # 22.05: a raw wait status (768); 23.02 on: "3:0"
    ("work_dir", "WorkDir"),  # relative STDOUT patterns are relative to it
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


def squeue_format() -> str:
    return ",".join(f"{field}:0{DELIMITER}" for _, field in SQUEUE_FIELDS)


def decode_wait_status(text: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """A raw wait status (22.05's squeue ``exit_code``: 768) as (exit code, signal)."""
    status = int_or_none(text)
    if status is None:
        return None, None
    return (status >> 8) & 0xFF, status & 0x7F


def decode_squeue_exit(text: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """squeue's ``exit_code`` on any Slurm: ``3:0``/``0:9`` (23.02 on) or a raw wait
    status (22.05: ``768``), as (exit code, signal)."""
    if text and ":" in text:
        return parse_exit_code(text)
    return decode_wait_status(text)


def _optional(text: str) -> Optional[str]:
    value = text.strip()
    return None if value in ("", "(null)", "None", "N/A", "(None)") else value


def int_or_none(text: Optional[str]) -> Optional[int]:
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
        return int_or_none(text), None
    code, _, sig = text.strip().partition(":")
    return int_or_none(code), int_or_none(sig)


def _job_id(text: str) -> Optional[int]:
    """Our jobs are plain batch jobs; array/het ids (``12_3``, ``12+1``) are skipped."""
    return int_or_none(text)


# Where each source keeps the fields every record has: name, state, reason, partition,
# account, node list (squeue: our names for its -O fields).
_SQUEUE_COLUMNS = ("name", "state", "reason", "partition", "account", "node_list")
_SCONTROL_COLUMNS = ("JobName", "JobState", "Reason", "Partition", "Account", "NodeList")
_SACCT_COLUMNS = ("JobName", "State", "Reason", "Partition", "Account", "NodeList")


def _common_fields(values: Mapping[str, str], columns: Tuple[str, ...]) -> Dict[str, Any]:
    """JobRecord's name, state, raw_state, reason, partition, account and node_list."""
    name, state, reason, partition, account, node_list = (values.get(c, "") for c in columns)
    return {"name": name, "state": normalize_state(state), "raw_state": state.strip(),
            "reason": _optional(reason), "partition": _optional(partition),
            "account": _optional(account), "node_list": _optional(node_list) or ""}


def _controller_times(values: Mapping[str, str], columns: Tuple[str, str, str],
                      state: JobState) -> Dict[str, Optional[datetime]]:
    """Submit, start and end time as the controller shows them: a pending job's start is
    only an estimate and an unfinished job's end the time limit, so both are left out."""
    submit, start, end = (parse_slurm_timestamp(values.get(c)) for c in columns)
    return {"submit_time": submit, "start_time": None if state is JobState.PENDING else start,
            "end_time": end if state.is_finished else None}


def _rows(output: str, names: Sequence[str]) -> Iterator[Dict[str, str]]:
    """Each non-empty line of DELIMITER-separated output as {name: value}."""
    for line in output.splitlines():
        if line.strip():
            yield dict(zip(names, line.split(DELIMITER)))


def _squeue_record(values: Mapping[str, str]) -> Optional[JobRecord]:
    job_id = _job_id(values.get("job_id", ""))
    if job_id is None:
        return None
    common = _common_fields(values, _SQUEUE_COLUMNS)
    state, user = common["state"], values.get("user", "")
    exit_code, exit_signal = decode_squeue_exit(values.get("exit_status")) if state.is_finished else (None, None)
    return JobRecord(
        job_id=job_id, user=user, **common,
        node_count=int_or_none(values.get("node_count")) or 0,
        time_limit_minutes=_safe_minutes(values.get("time_limit")),
        elapsed_seconds=_safe_duration(values.get("elapsed")),
        time_left_seconds=_safe_duration(values.get("time_left")) if state.is_active else None,
        **_controller_times(values, ("submit_time", "start_time", "end_time"), state),
        exit_code=exit_code, exit_signal=exit_signal,
        stdout_path=job_output_path(values.get("stdout"), job_id, common["name"], user,
                                    common["node_list"], _optional(values.get("work_dir", ""))),
        restart_count=int_or_none(values.get("restart_count")) or 0,
    )


def parse_squeue(output: str) -> List[JobRecord]:
    """Records from ``squeue -h -O <squeue_format()>`` output."""
    rows = _rows(output, [name for name, _ in SQUEUE_FIELDS])
    return [record for record in map(_squeue_record, rows) if record is not None]


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
    max_nodes = None if max_nodes_text.upper() == "UNLIMITED" else int_or_none(max_nodes_text)
    return PartitionInfo(
        name=name,
        total_nodes=int_or_none(fields.get("TotalNodes")) or 0,
        max_nodes_per_job=max_nodes,
        max_time_minutes=_safe_minutes(fields.get("MaxTime")),
        state=(fields.get("State") or "UNKNOWN").strip().upper(),
    )


def record_from_scontrol(fields: Mapping[str, str]) -> Optional[JobRecord]:
    """One ``scontrol show job -o`` line (parsed by :func:`parse_scontrol_fields`)."""
    job_id = _job_id(fields.get("JobId", ""))
    if job_id is None:
        return None
    common = _common_fields(fields, _SCONTROL_COLUMNS)
    state, user = common["state"], fields.get("UserId", "").split("(")[0]
    elapsed = _safe_duration(fields.get("RunTime"))
    limit_minutes = _safe_minutes(fields.get("TimeLimit"))
    time_left = None
    if state.is_active and limit_minutes is not None and elapsed is not None:
        time_left = max(0, limit_minutes * 60 - elapsed)
    exit_code, exit_signal = parse_exit_code(fields.get("ExitCode"))
    return JobRecord(
        job_id=job_id, user=user, **common,
        node_count=int_or_none(fields.get("NumNodes", "").split("-")[0]) or 0,
        time_limit_minutes=limit_minutes, elapsed_seconds=elapsed, time_left_seconds=time_left,
        **_controller_times(fields, ("SubmitTime", "StartTime", "EndTime"), state),
        exit_code=exit_code, exit_signal=exit_signal,
        stdout_path=job_output_path(_optional(fields.get("StdOut", "")), job_id, common["name"],
                                    user, common["node_list"], _optional(fields.get("WorkDir", ""))),
        restart_count=int_or_none(fields.get("Restarts")) or 0,
        extra=_preempt_extra(fields.get("PreemptTime")),
    )


def _preempt_extra(value: Optional[str]) -> Dict[str, str]:
    """``{"preempt_time": ...}`` when Slurm has set the job's PreemptTime (a preemption
    began: the runner's :mod:`ot_hpc.runner.stopcause` reads it), else nothing."""
    value = (value or "").strip()
    return {"preempt_time": value} if value and value not in ("None", "Unknown", "N/A") else {}


def _sacct_record(values: Mapping[str, str]) -> Optional[JobRecord]:
    job_id = _job_id(values.get("JobIDRaw", ""))
    if job_id is None:
        return None
    exit_code, exit_signal = parse_exit_code(values.get("ExitCode"))
    return JobRecord(
        job_id=job_id, user=values.get("User", ""), **_common_fields(values, _SACCT_COLUMNS),
        node_count=int_or_none(values.get("NNodes")) or 0,
        time_limit_minutes=int_or_none(values.get("TimelimitRaw")),
        elapsed_seconds=int_or_none(values.get("ElapsedRaw")), time_left_seconds=None,
        submit_time=parse_slurm_timestamp(values.get("Submit")),
        start_time=parse_slurm_timestamp(values.get("Start")),
        end_time=parse_slurm_timestamp(values.get("End")),
        exit_code=exit_code, exit_signal=exit_signal,
    )


def parse_sacct(output: str) -> List[JobRecord]:
    """Records from ``sacct -X -n -P --delimiter=<DELIMITER> -o <SACCT_FIELDS>``."""
    return [record for record in map(_sacct_record, _rows(output, SACCT_FIELDS)) if record is not None]


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


def kill_wait_from_config(text: str) -> Optional[int]:
    """KillWait in seconds from ``scontrol show config`` (``KillWait = 30 sec``), or None."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "KillWait":
            number = value.strip().split(" ", 1)[0]
            return int(number) if number.isdigit() else None
    return None
