"""The trainer's output -> SkyRL's progress -> the run-state file (for ``ot-status``).

The :class:`~.trainer.Trainer` hands every chunk of the trainer's output to
:meth:`ProgressReport.feed` (after the job log has it) and calls :meth:`flush` while it
waits and at the end. A new step is written at once; anything else (a new rate, a new
ETA) at most once per :data:`MIN_WRITE_INTERVAL` seconds. Nothing is written until some
progress is known, so a trainer that prints none leaves ``progress`` unset. A bug here
is logged once and switches the report off: it never stops the job or its log.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from .progress import ProgressParser, TrainingProgress
from .statefile import StateFile

MIN_WRITE_INTERVAL = 1.0


def is_new_step(before: Optional[TrainingProgress], after: TrainingProgress) -> bool:
    if before is None:
        return True
    return (after.step, after.metrics_step) != (before.step, before.metrics_step)


class ProgressReport:
    def __init__(self, state: StateFile, clock: Callable[[], float] = time.monotonic,
                 interval: float = MIN_WRITE_INTERVAL) -> None:
        self.state = state
        self.clock = clock
        self.interval = interval
        self.parser = ProgressParser()
        self.progress = TrainingProgress()
        self.written: Optional[TrainingProgress] = None
        self.written_at = float("-inf")
        self.broken = False
        self._lock = threading.Lock()

    def feed(self, text) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self._guarded(lambda: self._take(self.parser.feed(text)))

    def flush(self, final: bool = False) -> None:
        """Write what a throttled write held back; ``final``: the stream has ended."""
        self._guarded(lambda: self._take(self.parser.close() if final else [], force=final))

    def _guarded(self, work: Callable[[], None]) -> None:
        if self.broken:
            return
        try:
            with self._lock:
                work()
        except Exception as exc:  # a bug in the parser: no progress, but the job goes on
            self.broken = True
            self.state.log.line("training", f"WARNING: progress reading switched off: "
                                            f"{type(exc).__name__}: {exc}")

    def _take(self, events, force: bool = False) -> None:
        for event in events:
            self.progress = self.progress.apply(event)
        progress = self.progress
        if not progress.known or progress == self.written:
            return
        now = self.clock()
        if not (force or is_new_step(self.written, progress) or now - self.written_at >= self.interval):
            return
        data = progress.to_dict()
        redact = self.state.log.redactor
        data["metric_keys"] = {name: redact(key) for name, key in progress.metric_keys.items()}
        data["updated_at"] = time.time()
        self.state.update(progress=data)
        self.written, self.written_at = progress, now
