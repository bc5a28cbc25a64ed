"""The job log: one timestamped line per event, secrets redacted, phases timed.

Every line the runner writes (its own messages, the trainer's output, ssh's and Ray's
stderr) goes through :meth:`JobLog.line`, so a secret value can never reach the log::

    2025-11-28 21:30:01.123 [ray] begin
    2025-11-28 21:30:05.642 [ray] Ray ready on all 3 nodes (6 CPUs, 12 GPUs)
    2025-11-28 21:30:05.643 [ray] done in 4.52 s
    2025-11-28 21:30:05.700 [trainer] step 1 ...
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, Iterator, List, Optional, TextIO, Tuple

REDACTION = "[redacted {key}]"
MIN_SECRET_LENGTH = 4  # shorter values would blank out ordinary text; no real secret is that short


class Redactor:
    """Replaces every known secret value in a line by ``[redacted KEY]``."""

    def __init__(self, secrets: Optional[Dict[str, str]] = None) -> None:
        self._pairs: List[Tuple[str, str]] = []
        for key, value in (secrets or {}).items():
            self.add(key, value)

    def add(self, key: str, value: Optional[str]) -> None:
        if value is None or len(value) < MIN_SECRET_LENGTH:
            return
        self._pairs.append((value, REDACTION.format(key=key)))
        # Longest first, so a secret that contains another is replaced whole.
        self._pairs.sort(key=lambda pair: len(pair[0]), reverse=True)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def __call__(self, text: str) -> str:
        for value, replacement in self._pairs:
            if value in text:
                text = text.replace(value, replacement)
        return text


def format_timestamp(epoch: float) -> str:
    """``2025-11-28 21:30:01.123`` in local time."""
    whole = int(epoch)
    millis = int(round((epoch - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)) + f".{millis:03d}"


def format_line(epoch: float, tag: str, message: str) -> str:
    """One log line: ``<timestamp> [<tag>] <message>`` (no newline; message made one line)."""
    flat = message.replace("\r", "").rstrip("\n").replace("\n", " | ")
    return f"{format_timestamp(epoch)} [{tag}] {flat}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s"


class PhaseError(Exception):
    """A phase failed; ``str()`` is the one line that says why. ``exit_code`` is the job's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class JobLog:
    """Thread-safe, redacting, timestamped line writer with phase timing."""

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        redactor: Optional[Redactor] = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.redactor = redactor if redactor is not None else Redactor()
        self.clock = clock
        self.monotonic = monotonic
        self.timings: Dict[str, float] = {}
        self._lock = threading.RLock()  # re-entrant: a signal handler may log mid-line

    def line(self, tag: str, message: str) -> None:
        text = format_line(self.clock(), tag, self.redactor(str(message)))
        with self._lock:
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the log went away (file system gone): keep running, never crash on it

    def lines(self, tag: str, messages: Iterable[str]) -> None:
        for message in messages:
            self.line(tag, message)

    def sink(self, tag: str) -> Callable[[str], None]:
        """A callback for process output (one call per line, as ``sh`` delivers it)."""

        def write(chunk: str) -> None:
            for piece in str(chunk).splitlines():
                if piece.strip():
                    self.line(tag, piece)

        return write

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Log ``begin`` and ``done in X s`` (or ``failed after X s: why``); record the time."""
        start = self.monotonic()
        self.line(name, "begin")
        try:
            yield
        except BaseException as exc:
            elapsed = self.monotonic() - start
            self.timings[name] = round(elapsed, 3)
            why = str(exc) or type(exc).__name__
            self.line(name, f"failed after {format_seconds(elapsed)}: {why}")
            raise
        elapsed = self.monotonic() - start
        self.timings[name] = round(elapsed, 3)
        self.line(name, f"done in {format_seconds(elapsed)}")

    def summary(self) -> str:
        return ", ".join(f"{name} {format_seconds(seconds)}" for name, seconds in self.timings.items())
