"""ot-sfail, ot-scompleted and ot-scancelled: finished jobs of a window (their command
line is :mod:`ot_hpc.cli.history`).

One accounting query (``Scheduler.list_finished_jobs``: allocations only, no steps);
where the cluster has no accounting, one line on stderr says so and the controller's
memory of recently finished jobs (``list_jobs(include_finished=True)``, MinJobAge) is
used instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from ..scheduler.base import FAILURE_STATES, AccountingUnavailable, JobRecord, JobState, Scheduler
from .logs import LogIndex, find_log, tail_lines
from .records import (format_elapsed, format_exit, format_moment, format_nodes, newest_first_key,
                      state_text)
from .table import Column, fit, render_table, state_colour
from .window import Window

SOURCE_ACCOUNTING = "accounting"
SOURCE_CONTROLLER = "controller"
TAIL_INDENT = "    | "


@dataclass(frozen=True)
class HistoryCommand:
    prog: str
    adjective: str  # "failed", "completed", "cancelled"
    states: FrozenSet[JobState]
    description: str


SFAIL = HistoryCommand(
    "ot-sfail", "failed", FAILURE_STATES,
    "Your jobs that failed (FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL, DEADLINE, "
    "PREEMPTED) in a time window, newest first, with exit code or signal and elapsed time.",
)
SCOMPLETED = HistoryCommand(
    "ot-scompleted", "completed", frozenset({JobState.COMPLETED}),
    "Your jobs that completed successfully in a time window, newest first.",
)
SCANCELLED = HistoryCommand(
    "ot-scancelled", "cancelled", frozenset({JobState.CANCELLED}),
    "Your jobs that were cancelled in a time window, newest first.",
)

COLUMNS = (
    Column("JOBID"),
    Column("NAME", min_width=12),
    Column("STATE"),
    Column("EXIT"),
    Column("ELAPSED", align_right=True),
    Column("ENDED"),
    Column("NODES", min_width=6),
    Column("PARTITION", min_width=6),
)


@dataclass(frozen=True)
class History:
    """What a history command found (the input of both renderings)."""

    records: Tuple[JobRecord, ...]
    source: str  # SOURCE_ACCOUNTING or SOURCE_CONTROLLER
    note: Optional[str]  # the one line explaining a fallback, else None


def select(records: Sequence[JobRecord], states: FrozenSet[JobState], window: Window) -> List[JobRecord]:
    """Records in ``states`` that ended inside the window, newest first (pure)."""
    chosen = [r for r in records if r.state in states and (r.end_time is None or window.contains(r.end_time))]
    chosen.sort(key=newest_first_key)
    return chosen


def fetch(scheduler: Scheduler, user: str, window: Window, states: FrozenSet[JobState]) -> History:
    try:
        records = scheduler.list_finished_jobs(user, window.start, window.end, states)
        return History(tuple(select(records, states, window)), SOURCE_ACCOUNTING, None)
    except AccountingUnavailable as exc:
        note = (f"note: job accounting is not available ({exc}); showing only the finished "
                "jobs the controller still remembers (those that ended in the last minutes)")
        remembered = [r for r in scheduler.list_jobs(user=user, include_finished=True) if r.state.is_finished]
        return History(tuple(select(remembered, states, window)), SOURCE_CONTROLLER, note.replace("\n", " "))


def table_lines(records: Sequence[JobRecord], width: int, colour: bool,
                tails: Optional[Dict[int, List[str]]] = None) -> List[str]:
    rows = [
        (str(r.job_id), r.name, (state_text(r), state_colour(r.state.value)), format_exit(r),
         format_elapsed(r), format_moment(r.end_time), format_nodes(r), r.partition or "-")
        for r in records
    ]
    lines = render_table(COLUMNS, rows, width=width, colour=colour)
    if not tails:
        return lines
    out = [lines[0]]
    room = width - len(TAIL_INDENT)
    for record, line in zip(records, lines[1:]):
        out.append(line)
        out.extend(TAIL_INDENT + fit(text, room) for text in tails.get(record.job_id, []))
    return out


@dataclass(frozen=True)
class LogTail:
    path: Optional[str]  # the log found, None when there is none
    lines: Tuple[str, ...] = ()
    problem: Optional[str] = None  # one line when the log is missing or unreadable

    def text_lines(self) -> List[str]:
        head = [f"==> {self.path} <=="] if self.path else []
        return head + ([f"({self.problem})"] if self.problem else list(self.lines))


def collect_tails(records: Sequence[JobRecord], count: int, index: LogIndex) -> Dict[int, LogTail]:
    """job id -> the last ``count`` lines of its log (or why there are none)."""
    found: Dict[int, LogTail] = {}
    for record in records:
        path = find_log(record.job_id, record.stdout_path, index)
        if path is None:
            found[record.job_id] = LogTail(None, problem=f"no log found for job {record.job_id}")
            continue
        try:
            found[record.job_id] = LogTail(path, tuple(tail_lines(path, count)))
        except OSError as exc:
            found[record.job_id] = LogTail(path, problem=f"cannot read the log: {exc.strerror or exc}")
    return found


def json_document(command: HistoryCommand, user: str, window: Window, history: History,
                  tails: Optional[Dict[int, LogTail]]) -> Dict[str, Any]:
    jobs = []
    for record in history.records:
        item = record.to_dict()
        if tails is not None:
            tail = tails.get(record.job_id, LogTail(None))
            item["log_path"] = tail.path
            item["tail"] = list(tail.lines)
        jobs.append(item)
    return {
        "command": command.prog,
        "user": user,
        "states": sorted(s.value for s in command.states),
        "window": window.to_dict(),
        "source": history.source,
        "note": history.note,
        "jobs": jobs,
    }
