"""Choose and build a scheduler backend.

``OT_HPC_BACKEND`` (or ``--backend``) is ``auto`` (default), ``pyslurm`` or ``cli``.
``auto`` uses pyslurm wherever it imports, else Slurm's command-line tools.
"""
from __future__ import annotations

import os
from typing import Optional

from .base import (  # noqa: F401  (re-exported: the layer's public names)
    AccountingUnavailable,
    BackendUnavailable,
    ControllerUnreachable,
    JobRecord,
    JobRequest,
    JobState,
    PartitionInfo,
    PartitionLimits,
    Scheduler,
    SchedulerError,
    SubmissionUncertain,
    normalize_state,
)

BACKEND_NAMES = ("auto", "pyslurm", "cli")
BACKEND_ENV_VAR = "OT_HPC_BACKEND"


def requested_backend(name: Optional[str] = None) -> str:
    """The backend the user asked for: the argument, else $OT_HPC_BACKEND, else auto."""
    chosen = (name or os.environ.get(BACKEND_ENV_VAR) or "auto").strip().lower()
    if chosen not in BACKEND_NAMES:
        raise BackendUnavailable(
            f"backend {chosen!r} is unknown: set --backend or {BACKEND_ENV_VAR} to one of "
            + ", ".join(BACKEND_NAMES)
        )
    return chosen


def get_scheduler(name: Optional[str] = None) -> Scheduler:
    """Build the requested backend; raises BackendUnavailable with a one-line reason."""
    chosen = requested_backend(name)
    if chosen in ("auto", "pyslurm"):
        from . import pyslurm_backend

        try:
            return pyslurm_backend.PyslurmScheduler()
        except BackendUnavailable:
            if chosen == "pyslurm":
                raise
    from .commands import CommandScheduler

    return CommandScheduler()
