"""ot-status: my jobs now. One ``list_jobs`` (one squeue) per refresh (``job_records``).

``gather`` reads what the queue alone does not say (run-state files, log tails);
``render_lines`` and ``json_document`` are pure.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import IO, AbstractSet, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..scheduler.base import JobRecord, JobState, Scheduler
from .logs import LogIndex, find_log, state_path_for, tail_lines
from .pending import PendingReason, explain_pending
from .progress import progress_line, read_progress
from .records import format_elapsed, format_left, format_nodes, state_text, status_sort_key
from .table import Column, fit, render_table, state_colour

DETAIL_INDENT = "    "
TAIL_INDENT = "    | "
MIN_WATCH_SECONDS = 1.0

_RUNNING_LIKE = frozenset({JobState.RUNNING, JobState.COMPLETING, JobState.SUSPENDED})


@dataclass(frozen=True)
class JobView:
    """One job as ot-status shows it."""

    record: JobRecord
    pending: Optional[PendingReason] = None  # pending jobs only
    phase: Optional[str] = None  # the runner's phase (describe_phase), running jobs only
    run_state: Optional[Dict[str, Any]] = None  # the whole run-state file, for --json
    progress: Optional[Dict[str, Any]] = None  # SkyRL's training progress (read_progress)
    log_path: Optional[str] = None
    tail: Tuple[str, ...] = ()
    tail_problem: Optional[str] = None


def _read_run_state(log_path: str, record: JobRecord):
    from ..runstate import read_state  # lazily: only when a job runs

    state = read_state(state_path_for(log_path, record.name, record.job_id))
    if state is None or str(state.job_id) not in ("", str(record.job_id)):
        return None
    return state


def job_records(scheduler: Scheduler, user: Optional[str], account: Optional[str],
                wanted: AbstractSet[int] = frozenset()) -> Callable[[], List[JobRecord]]:
    """What one refresh shows: one ``list_jobs`` (one squeue, or one ``Jobs.load``). With
    ``wanted`` ids, only those; one the queue no longer lists is looked up (controller,
    then accounting) until it is found finished, then remembered: a finished job stays
    finished, so ``--watch`` asks about it once, not on every refresh."""
    finished: Dict[int, JobRecord] = {}

    def records() -> List[JobRecord]:
        found = scheduler.list_jobs(user=user, account=account)
        if not wanted:
            return found
        found = [r for r in found if r.job_id in wanted]
        for job_id in sorted(wanted - {r.job_id for r in found}):
            record = finished.get(job_id) or scheduler.get_job(job_id)
            if record is not None:
                if record.state.is_finished:
                    finished[job_id] = record
                found.append(record)
        return found

    return records


def gather(records: Sequence[JobRecord], tail: Optional[int], index: Optional[LogIndex]) -> List[JobView]:
    """Views sorted running first, then pending (by job id)."""
    views = []
    for record in sorted(records, key=status_sort_key):
        if record.state in (JobState.PENDING, JobState.REQUEUED):
            views.append(JobView(record, pending=explain_pending(record.reason)))
            continue
        log_path = find_log(record.job_id, record.stdout_path, index) or record.stdout_path
        phase = run_state = progress = None
        if log_path and record.state in _RUNNING_LIKE:
            state = _read_run_state(log_path, record)
            if state is not None:
                from ..runstate import describe_phase

                phase, run_state = describe_phase(state), state.to_dict()
                progress = read_progress(state.progress)
        lines: Tuple[str, ...] = ()
        problem = None
        if tail and log_path:
            try:
                lines = tuple(tail_lines(log_path, tail))
            except OSError as exc:
                problem = f"cannot read the log: {exc.strerror or exc}"
        views.append(JobView(record, phase=phase, run_state=run_state, progress=progress,
                             log_path=log_path, tail=lines, tail_problem=problem))
    return views


def _columns(show_user: bool) -> Tuple[Column, ...]:
    columns = [Column("JOBID")]
    if show_user:
        columns.append(Column("USER", min_width=6))
    columns += [
        Column("NAME", min_width=12),
        Column("STATE"),
        Column("ELAPSED", align_right=True),
        Column("LEFT", align_right=True),
        Column("NODES", min_width=6),
        Column("PARTITION", min_width=6),
    ]
    return tuple(columns)


def detail_lines(view: JobView, width: int, unicode: bool = True) -> List[str]:
    """The indented lines under a job: why it waits, or what it does, where it logs and how
    far training is (with a sparkline of the rewards when the output takes ``unicode``)."""
    room = width - len(DETAIL_INDENT)
    lines = []
    if view.pending is not None:
        lines.append(DETAIL_INDENT + fit(f"waiting: {view.pending.text()}", room))
        return lines
    phase = f"phase: {view.phase}" if view.phase else ""
    log = f"log: {view.log_path}" if view.log_path else ""
    joined = "   ".join(part for part in (phase, log) if part)
    if joined and len(joined) <= room:
        lines.append(DETAIL_INDENT + joined)
    elif joined:
        if phase:
            lines.append(DETAIL_INDENT + fit(phase, room))
        if log:  # a path keeps its end: the file name is what tells logs apart
            lines.append(DETAIL_INDENT + "log: " + fit(view.log_path or "", room - 5, cut_left=True))
    if view.progress:
        lines.append(DETAIL_INDENT + progress_line(view.progress, room, with_sparkline=unicode))
    if view.tail_problem:
        lines.append(TAIL_INDENT + fit(f"({view.tail_problem})", width - len(TAIL_INDENT)))
    lines.extend(TAIL_INDENT + fit(text, width - len(TAIL_INDENT)) for text in view.tail)
    return lines


def summary(views: Sequence[JobView], who: str) -> str:
    counts: Dict[str, int] = {}
    for view in views:
        key = view.record.state.value.lower()
        counts[key] = counts.get(key, 0) + 1
    order = ("running", "completing", "suspended", "requeued", "pending")
    parts = [f"{counts[k]} {k}" for k in order if k in counts]
    parts += [f"{n} {k}" for k, n in sorted(counts.items()) if k not in order]
    total = len(views)
    return f"{total} job{'s' if total != 1 else ''} of {who}: " + ", ".join(parts)


def render_lines(views: Sequence[JobView], who: str, width: int, colour: bool,
                 show_user: bool = False, unicode: bool = True) -> List[str]:
    if not views:
        return [f"No jobs of {who} in the queue."]
    rows = []
    for view in views:
        record = view.record
        row = [str(record.job_id)]
        if show_user:
            row.append(record.user)
        row += [record.name, (state_text(record), state_colour(record.state.value)),
                format_elapsed(record), format_left(record), format_nodes(record),
                record.partition or "-"]
        rows.append(row)
    table = render_table(_columns(show_user), rows, width=width, colour=colour)
    lines = [fit(summary(views, who), width), table[0]]
    for view, line in zip(views, table[1:]):
        lines.append(line)
        lines.extend(detail_lines(view, width, unicode))
    return lines


def json_document(views: Sequence[JobView], user: Optional[str], account: Optional[str],
                  with_tail: bool) -> Dict[str, Any]:
    jobs = []
    for view in views:
        item = view.record.to_dict()
        item["pending_reason"] = view.pending.to_dict() if view.pending else None
        item["phase"] = view.phase
        item["run_state"] = view.run_state
        item["progress"] = view.progress
        item["log_path"] = view.log_path
        if with_tail:
            item["tail"] = list(view.tail)
        jobs.append(item)
    return {"user": user, "account": account, "jobs": jobs}


# -- watching ---------------------------------------------------------------------------

HOME = "\x1b[H"
CLEAR_LINE = "\x1b[K"
CLEAR_BELOW = "\x1b[J"


def frame_text(lines: Sequence[str], in_place: bool, height: Optional[int] = None) -> str:
    """One refresh: on a terminal, drawn over the previous one (and cut to its height)."""
    shown = list(lines)
    if in_place and height and len(shown) > height - 1:
        hidden = len(shown) - (height - 2)
        shown = shown[: height - 2] + [f"... {hidden} more lines (make the window taller)"]
    if not in_place:
        return "\n".join(shown) + "\n\n"
    return HOME + "".join(line + CLEAR_LINE + "\n" for line in shown) + CLEAR_BELOW


def watch(interval: float, make_lines: Callable[[], List[str]], stream: IO[str], in_place: bool,
          height: Optional[int] = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Redraw every ``interval`` seconds until Ctrl-C, which ends it cleanly (exit 0)."""
    try:
        while True:
            stamp = datetime.now().strftime("%H:%M:%S")
            lines = [f"every {interval:g} s, {stamp} (Ctrl-C to stop)"] + make_lines()
            stream.write(frame_text(lines, in_place, height))
            stream.flush()
            sleep(interval)
    except KeyboardInterrupt:
        if in_place:
            stream.write("\n")
        stream.flush()
        return 0
    except BrokenPipeError:
        return 0


def height_of(stream: IO[str]) -> Optional[int]:
    import shutil

    try:
        return shutil.get_terminal_size((100, 24)).lines if stream.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None
