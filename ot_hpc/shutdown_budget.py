"""The job's shutdown budget: every step of the runner's shutdown ends before Slurm's SIGKILL.

When a job is cancelled (or reaches its time limit), Slurm sends SIGTERM to every process
of the job and SIGKILL ``KillWait`` seconds later. In between the runner stops the trainer
(SIGTERM, SIGKILL after ``SHUTDOWN_GRACE``), this job's Ray processes, the tunnel, sweeps
what is left and writes the final run state. :func:`plan` splits ``KillWait`` into those
steps (pure arithmetic); :class:`ShutdownClock` hands each step its share of what is left
of the deadline, never eating into the minimum of the steps after it.

ot-submit checks ``SHUTDOWN_GRACE`` (:func:`grace_problem`) and ``SIGNAL_SECONDS``
(:func:`signal_problem`) against the cluster's KillWait; the runner gets KillWait from the
spec (``kill_wait_seconds``; unknown: Slurm's default, 30 s).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

SLURM_DEFAULT_KILL_WAIT = 30  # slurm.conf's default KillWait (seconds)
MARGIN = 1.0  # the signal noticed, the final state written, the interpreter's exit
# What each step needs at least, and what it may use at most (seconds).
TRAINER_KILL = 0.5  # after SIGKILL: until the trainer's group is gone
RAY_MIN, RAY_MAX = 1.5, 4.0
TUNNEL_MIN, TUNNEL_MAX = 1.0, 3.0
SWEEP_MIN, SWEEP_MAX = 1.0, 3.0
STEPS = ("trainer", "ray", "tunnel", "sweep")
# Everything but the trainer's grace, at the least: the most grace a KillWait allows is
# KillWait - OVERHEAD.
OVERHEAD = MARGIN + TRAINER_KILL + RAY_MIN + TUNNEL_MIN + SWEEP_MIN


@dataclass(frozen=True)
class ShutdownBudget:
    """Seconds for each shutdown step; their sum plus ``margin`` is at most KillWait."""

    kill_wait: float
    trainer_grace: float  # SIGTERM -> SIGKILL
    trainer_kill: float  # SIGKILL -> gone
    ray: float
    tunnel: float
    sweep: float
    margin: float = MARGIN

    @property
    def total(self) -> float:
        return self.trainer_grace + self.trainer_kill + self.ray + self.tunnel + self.sweep + self.margin

    def minimum_after(self, step: str) -> float:
        """The least the steps after ``step`` need (what ``step`` must leave them)."""
        later = STEPS[STEPS.index(step) + 1:]
        return sum({"ray": RAY_MIN, "tunnel": TUNNEL_MIN, "sweep": SWEEP_MIN}[s] for s in later)

    def describe(self) -> str:
        return (f"KillWait {self.kill_wait:g} s: trainer {self.trainer_grace:g} s + "
                f"{self.trainer_kill:g} s, Ray {self.ray:g} s, tunnel {self.tunnel:g} s, "
                f"sweep {self.sweep:g} s, {self.margin:g} s to write the final state")


def effective_kill_wait(kill_wait: Optional[int]) -> int:
    """KillWait as known (the spec's), else Slurm's default."""
    return SLURM_DEFAULT_KILL_WAIT if kill_wait is None or kill_wait <= 0 else int(kill_wait)


def max_grace(kill_wait: Optional[int]) -> int:
    """The longest SHUTDOWN_GRACE (whole seconds) that fits in ``kill_wait``."""
    return max(0, int(effective_kill_wait(kill_wait) - OVERHEAD))


def plan(kill_wait: Optional[int], grace: float) -> ShutdownBudget:
    """Split KillWait: the trainer gets ``grace`` (less when it does not fit), each later
    step its minimum, and what is left goes to Ray, the tunnel and the sweep up to their
    maximum, in that order. A KillWait below :data:`OVERHEAD` gives the steps what it has."""
    wait = float(effective_kill_wait(kill_wait))
    available = max(0.0, wait - MARGIN)
    grace = max(0.0, min(float(grace), available - (OVERHEAD - MARGIN)))
    left = available - grace
    shares = []
    for minimum in (TRAINER_KILL, RAY_MIN, TUNNEL_MIN, SWEEP_MIN):
        take = min(minimum, left)
        shares.append(take)
        left -= take
    for index, maximum in ((1, RAY_MAX), (2, TUNNEL_MAX), (3, SWEEP_MAX)):
        extra = min(maximum - shares[index], left)
        shares[index] += extra
        left -= extra
    return ShutdownBudget(wait, grace, *shares)


class ShutdownClock:
    """The deadline of one shutdown: Slurm's SIGKILL (``started + KillWait``) less the
    margin. :meth:`share` is a step's time: its planned share, cut so that the later
    steps keep their minimum. ``started``: when the stop signal arrived (monotonic)."""

    def __init__(self, budget: ShutdownBudget, started: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.deadline = started + budget.kill_wait - budget.margin
        self.clock = clock

    def left(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def share(self, step: str) -> float:
        planned = {"trainer": self.budget.trainer_grace, "ray": self.budget.ray,
                   "tunnel": self.budget.tunnel, "sweep": self.budget.sweep}[step]
        if step == "trainer":
            reserve = self.budget.trainer_kill + self.budget.minimum_after(step)
        else:
            reserve = self.budget.minimum_after(step)
        return max(0.0, min(planned, self.left() - reserve))


def grace_problem(grace: int, kill_wait: Optional[int]) -> Optional[Tuple[str, str]]:
    """Why ``grace`` (SHUTDOWN_GRACE) does not fit in the cluster's KillWait, and the fix;
    None when it fits or KillWait is unknown."""
    if kill_wait is None:
        return None
    most = max_grace(kill_wait)
    if grace <= most:
        return None
    return (f"{grace} s does not fit in this cluster's KillWait of {kill_wait} s (Slurm "
            f"SIGKILLs the job then; Ray, the tunnel, the sweep and the final state need "
            f"{OVERHEAD:g} s of it)", f"set SHUTDOWN_GRACE to at most {most}")


def signal_problem(signal_seconds: int, grace: int, kill_wait: Optional[int],
                   max_restarts: int) -> Optional[Tuple[str, str]]:
    """Why USR2 ``signal_seconds`` before the time limit leaves too little time to stop,
    and the fix, or None. Only a job that can be requeued acts on USR2 (it stops, then requeues):
    the whole shutdown must fit before the time limit's own SIGTERM."""
    if max_restarts <= 0 or signal_seconds <= 0:
        return None
    need = int(plan(kill_wait, grace).total + 0.999)
    if signal_seconds >= need:
        return None
    return (f"{signal_seconds} s is shorter than the shutdown it must make room for "
            f"({need} s: SHUTDOWN_GRACE {grace} s plus Ray, the tunnel, the sweep and the "
            f"final state)", f"set SIGNAL_SECONDS to at least {need} (or a longer TIME_LIMIT)")
