"""One deadline for everything a command asks Slurm (pure; the clock is injected).

A stopped slurmctld makes every Slurm client give up after its own connect loop: libslurm
tries to connect once a second for ``MessageTimeout`` tries (default 10, so ``squeue`` and
``sbatch`` alone give up after about 9 s). Retrying a whole client call after that doubles
the wait each time. Instead each ot-* command gets one :class:`Deadline` (at most 1.5x a
plain client's give-up time, :func:`command_deadline_seconds`) that the backends consult:
retry only while time remains, and give a subprocess only the time that remains. A
controller that comes back inside the deadline is still used (libslurm's own once-a-second
connect loop, then a retry that still fits).

``Deadline(None)`` is unlimited: the backends then keep their fixed retry schedule (what
the runner, inside a job, uses).
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator, Mapping, Optional

from .slurmconf import config_paths

DEFAULT_MESSAGE_TIMEOUT_SECONDS = 10  # Slurm's default MessageTimeout
DEADLINE_ENV_VAR = "OT_HPC_SLURM_DEADLINE"  # seconds; overrides the computed deadline
GIVE_UP_FACTOR = 1.5  # the bound: at most 1.5x the plain client's give-up time
RESERVE_SECONDS = 1.5  # the command's own work inside that bound (start-up, validation)
MIN_ATTEMPT_SECONDS = 1.0  # a retry with less time than this is not worth starting


class Deadline:
    """At most ``seconds`` of waiting on Slurm for one command, whatever it does between
    its Slurm calls (ot-submit validates between asking for a partition's limits and
    submitting: that time is not Slurm's). The backends count their calls with
    :meth:`counting`; ``seconds=None``: unlimited."""

    def __init__(self, seconds: Optional[float], clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.seconds = None if seconds is None else max(0.0, float(seconds))
        self._spent = 0.0
        self._since: Optional[float] = None
        self._depth = 0

    @property
    def unlimited(self) -> bool:
        return self.seconds is None

    @contextlib.contextmanager
    def counting(self) -> Iterator["Deadline"]:
        """Time spent inside counts against the deadline (nested uses count once)."""
        if self._depth == 0:
            self._since = self._clock()
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0 and self._since is not None:
                self._spent += self._clock() - self._since
                self._since = None

    def spent(self) -> float:
        running = self._clock() - self._since if self._since is not None else 0.0
        return self._spent + running

    def remaining(self) -> Optional[float]:
        """Seconds left (never negative), None when unlimited."""
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - self.spent())

    def timeout(self, cap: float) -> float:
        """A subprocess's time-out: ``cap``, or less when less time remains."""
        left = self.remaining()
        return cap if left is None else min(cap, left)

    def retry_pause(self, pause: float, needed: float = MIN_ATTEMPT_SECONDS) -> Optional[float]:
        """How long to pause before one more attempt that needs ``needed`` seconds, or None
        when no such attempt fits before the deadline (the pause is shortened to fit)."""
        left = self.remaining()
        if left is None:
            return pause
        room = left - max(needed, MIN_ATTEMPT_SECONDS)
        if room < 0:
            return None
        return min(pause, room)


def plain_give_up_seconds(message_timeout: float) -> float:
    """How long a plain Slurm client waits for a stopped controller: ``MessageTimeout``
    connect tries, one second apart."""
    return max(1.0, float(message_timeout) - 1.0)


def command_deadline_seconds(message_timeout: float = DEFAULT_MESSAGE_TIMEOUT_SECONDS) -> float:
    """One command's deadline for all its Slurm calls: 1.5x the plain client's give-up
    time, less a reserve for the command's own work (12 s for the default 10 s), but never
    shorter than one plain give-up (so a single client call can always end by itself)."""
    give_up = plain_give_up_seconds(message_timeout)
    return max(give_up, GIVE_UP_FACTOR * give_up - RESERVE_SECONDS)


def parse_message_timeout(text: str) -> Optional[int]:
    """``MessageTimeout`` from slurm.conf's text (last one wins, case-insensitive); None
    when it is not set or not a number."""
    found = None
    for line in text.splitlines():
        key, _, value = line.split("#", 1)[0].partition("=")
        if key.strip().lower() == "messagetimeout":
            try:
                found = int(value.strip())
            except ValueError:
                continue
    return found


def configured_message_timeout(environ: Optional[Mapping[str, str]] = None) -> int:
    """This login node's ``MessageTimeout`` (slurm.conf, a file read), else Slurm's default."""
    for path in config_paths(environ):
        try:
            with open(path) as handle:
                value = parse_message_timeout(handle.read())
        except OSError:
            continue
        return value if value and value > 0 else DEFAULT_MESSAGE_TIMEOUT_SECONDS
    return DEFAULT_MESSAGE_TIMEOUT_SECONDS


def deadline_seconds(environ: Optional[Mapping[str, str]] = None) -> float:
    """``$OT_HPC_SLURM_DEADLINE`` when it is a positive number, else the computed one."""
    environ = os.environ if environ is None else environ
    raw = (environ.get(DEADLINE_ENV_VAR) or "").strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        value = 0.0
    if value > 0:
        return value
    return command_deadline_seconds(configured_message_timeout(environ))


def command_deadline(environ: Optional[Mapping[str, str]] = None,
                     clock: Callable[[], float] = time.monotonic) -> Deadline:
    """A fresh deadline for one command (or one ``--watch`` refresh)."""
    return Deadline(deadline_seconds(environ), clock)
