"""The parsers over real Slurm 25.11.7 output (tests/data/slurm-25.11.7-outputs.txt, captured
on a 3-node cluster; '|' there stands for the unit separator the backend asks for)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest

from ot_hpc.scheduler.base import JobState
from ot_hpc.scheduler.commands import _UNKNOWN_USER_MARKERS, _matches
from ot_hpc.scheduler.slurm_text import (
    DELIMITER,
    SACCT_FIELDS,
    SQUEUE_FIELDS,
    clean_slurm_message,
    parse_sacct,
    parse_scontrol_fields,
    parse_squeue,
    partition_from_scontrol,
    record_from_scontrol,
)

CAPTURE = Path(__file__).resolve().parent / "data" / "slurm-25.11.7-outputs.txt"
WORK_DIR = "/home/user/work"  # the captured jobs' working directory


def sections() -> Dict[str, List[str]]:
    """``## heading`` -> the lines under it (commands, output and all)."""
    found: Dict[str, List[str]] = {}
    current = None
    for line in CAPTURE.read_text().splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), [])
        elif current is not None and line.strip():
            current.append(line)
    return found


def section(prefix: str) -> List[str]:
    (name,) = [n for n in sections() if n.startswith(prefix)]
    return sections()[name]


def as_squeue(lines: List[str]) -> str:
    """The captured squeue rows as the backend reads them: 18 fields of 25.11's squeue,
    plus the WorkDir field the backend also asks for (all these jobs ran in WORK_DIR)."""
    rows = []
    for line in lines:
        values = line.split("|")[:-1]  # every field ends with the delimiter
        assert len(values) == len(SQUEUE_FIELDS) - 1
        rows.append(DELIMITER.join(values + [WORK_DIR, ""]))
    return "\n".join(rows)


@pytest.fixture(scope="module")
def squeue_records():
    lines = [l for l in section("squeue -t all") if not l.startswith("$")]
    return {r.job_id: r for r in parse_squeue(as_squeue(lines))}


def test_squeue_exit_codes_are_exit_colon_signal(squeue_records):
    assert (squeue_records[16].exit_code, squeue_records[16].exit_signal) == (3, 0)
    assert (squeue_records[17].exit_code, squeue_records[17].exit_signal) == (0, 9)
    assert (squeue_records[15].exit_code, squeue_records[15].exit_signal) == (0, 0)
    assert squeue_records[13].exit_code is None  # running: no exit code yet
    assert squeue_records[17].state is JobState.FAILED and "Killed" in squeue_records[17].reason


def test_squeue_stdout_patterns_are_expanded_and_absolute(squeue_records):
    assert squeue_records[16].stdout_path == "/home/user/work/cap-fail_16.log"
    assert squeue_records[13].stdout_path == "/home/user/work/cap-cap-running_13.log"
    assert squeue_records[15].stdout_path == "/home/user/work/slurm-15.out"  # relative pattern
    assert squeue_records[14].stdout_path == "/home/user/work/slurm-14.out"


def test_squeue_states_reasons_and_times(squeue_records):
    held = squeue_records[14]
    assert held.state is JobState.PENDING and held.reason == "JobHeldUser"
    assert held.start_time is None and held.end_time is None and held.node_list == ""
    running = squeue_records[13]
    assert running.state is JobState.RUNNING and running.node_count == 2
    assert running.node_list == "n[1-2]" and running.time_left_seconds == 295
    assert squeue_records[15].node_count == 3 and squeue_records[15].end_time is not None


def test_sacct_rows():
    lines = [l for l in section("sacct -X -n -P") if not l.startswith("$")]
    assert all(len(l.split("|")) == len(SACCT_FIELDS) for l in lines)
    records = {r.job_id: r for r in parse_sacct("\n".join(l.replace("|", DELIMITER) for l in lines))}
    assert (records[16].state, records[16].exit_code, records[16].exit_signal) == (JobState.FAILED, 3, 0)
    assert (records[17].exit_code, records[17].exit_signal) == (0, 9)
    assert records[13].state is JobState.RUNNING and records[13].end_time is None
    assert records[13].time_limit_minutes == 5 and records[13].elapsed_seconds == 8


def test_scontrol_show_job_finished_with_exit_3():
    lines = section("scontrol show job 16")
    record = record_from_scontrol(parse_scontrol_fields(" ".join(l.strip() for l in lines)))
    assert record.job_id == 16 and record.user == "root" and record.state is JobState.FAILED
    assert (record.exit_code, record.exit_signal) == (3, 0)
    assert record.stdout_path == "/home/user/work/cap-fail_16.log"
    assert record.reason == "NonZeroExitCode" and record.node_list == "n3"


def test_scontrol_sigkill_exit_code():
    lines = section("scontrol show job 17")
    fields = parse_scontrol_fields(" ".join(l.strip() for l in lines))
    assert fields["ExitCode"] == "0:9" and fields["Reason"] == "RaisedSignal:9(Killed)"


def test_scontrol_show_partition():
    lines = section("scontrol show partition debug")
    info = partition_from_scontrol(parse_scontrol_fields(" ".join(l.strip() for l in lines)))
    assert (info.name, info.total_nodes, info.max_nodes_per_job, info.max_time_minutes, info.state) \
        == ("debug", 3, None, 1440, "UP")


@pytest.mark.parametrize("command, words", [
    ("sbatch -p no-such-partition", "Invalid partition name specified"),
    ("sbatch -N 50", "More processors requested than permitted"),
    ("sbatch -t 3-00:00:00", "Requested time limit is invalid"),
    ("sbatch -A no-such-account", "Invalid account or account/partition combination"),
    ("sbatch --gres=gpu:9", "Requested node configuration is not available"),
])
def test_refusals_become_one_line_with_slurms_words(command, words):
    lines = section("refused submissions")
    start = lines.index(next(l for l in lines if l.startswith(f"$ {command} ")))
    stderr = []
    for line in lines[start + 1:]:
        if line.startswith(("$", "exit status")):
            break
        stderr.append(line)
    message = clean_slurm_message("\n".join(stderr))
    assert words in message and "\n" not in message and "sbatch: error" not in message


def test_sacct_for_a_user_slurm_does_not_know_is_recognised():
    lines = section("sacct for a user Slurm does not know")
    errors = [l for l in lines if l.startswith("sacct: error")]
    assert len(errors) == 2
    for line in errors:
        assert _matches(clean_slurm_message(line), _UNKNOWN_USER_MARKERS)


def test_unknown_job_id_messages():
    lines = section("squeue for a job id that does not exist")
    errors = [l for l in lines if "error" in l]
    assert errors and all("invalid job id" in clean_slurm_message(l).lower() for l in errors)


def test_field_names_25_11_refuses_are_not_asked_for():
    refused = {l.split()[-1] for l in section("squeue -O field names refused") if "Invalid" in l}
    assert refused == {"ExitCode", "exitcode"}
    assert not refused & {field for _name, field in SQUEUE_FIELDS}
