"""ot-scancelall: which of my jobs to cancel (pure), and the confirmation rule.

Only the caller's own active jobs are ever candidates: the query is filtered to the
user and every record is checked again here (``record.user == user``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import List, Optional, Sequence

from ..scheduler.base import JobRecord, JobState

STATE_CHOICES = ("pending", "running")
_STATE_GROUPS = {
    "pending": frozenset({JobState.PENDING, JobState.REQUEUED}),
    "running": frozenset({JobState.RUNNING, JobState.COMPLETING, JobState.SUSPENDED}),
}


@dataclass(frozen=True)
class CancelFilter:
    user: str
    name: Optional[str] = None  # shell-style glob on the job name (case-sensitive)
    state: Optional[str] = None  # "pending" | "running" | None (both)
    partition: Optional[str] = None

    def describe(self) -> str:
        parts = []
        if self.name:
            parts.append(f"named {self.name!r}")
        if self.state:
            parts.append(self.state)
        if self.partition:
            parts.append(f"in partition {self.partition}")
        return " ".join(parts)

    def matches(self, record: JobRecord) -> bool:
        if record.user != self.user or record.state.is_finished:
            return False
        if self.state and record.state not in _STATE_GROUPS[self.state]:
            return False
        if self.partition and self.partition not in (record.partition or "").split(","):
            return False
        return not self.name or fnmatchcase(record.name, self.name)


def select(records: Sequence[JobRecord], selection: CancelFilter) -> List[JobRecord]:
    """The jobs to cancel, by job id."""
    return sorted((r for r in records if selection.matches(r)), key=lambda r: r.job_id)


# What to do about confirmation.
PROCEED = "proceed"
ASK = "ask"
REFUSE = "refuse"


def confirmation(yes: bool, interactive: bool) -> str:
    """--yes proceeds; otherwise ask on a terminal and refuse without one."""
    if yes:
        return PROCEED
    return ASK if interactive else REFUSE


def is_yes(answer: Optional[str]) -> bool:
    return (answer or "").strip().lower() in ("y", "yes")
