"""The runner's handle on the run-state file (:mod:`ot_hpc.runstate`) next to the log."""
from __future__ import annotations

import dataclasses
import threading
import time

from ..runstate import RunState, write_state
from .joblog import JobLog


class StateFile:
    """The run-state file; a write that fails is logged once, never fatal."""

    def __init__(self, path: str, state: RunState, log: JobLog) -> None:
        self.path = path
        self.state = state
        self.log = log
        self._lock = threading.Lock()
        self._warned = False

    def update(self, **changes) -> None:
        if changes.get("message"):
            # ot-status --json prints it; a PhaseError may quote a child's stderr.
            changes["message"] = self.log.redactor(str(changes["message"]))
        with self._lock:
            now = time.time()
            if "phase" in changes and changes["phase"] != self.state.phase:
                changes.setdefault("phase_started_at", now)
            if "details" in changes:
                merged = dict(self.state.details)
                merged.update(changes["details"])
                changes["details"] = merged
            self.state = dataclasses.replace(self.state, updated_at=now, **changes)
            try:
                write_state(self.path, self.state)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    self.log.line("runner", f"WARNING: cannot write the run-state file {self.path}: {exc.strerror}")
