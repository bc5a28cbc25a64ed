"""The runner's shutdown, within Slurm's KillWait: trainer, Ray, tunnel, sweep, in that order.

The run-state file gets the exit code and the reason *first* (phase ``shutdown``), so a
SIGKILL from Slurm in the middle still leaves ot-status the answer; the runner writes the
final phase after. Each step gets its share of the deadline (:mod:`ot_hpc.shutdown_budget`):
``KillWait`` from the spec, counted from the stop signal's arrival.
"""
from __future__ import annotations

import os
import time
from typing import Any, List, Optional

from ..shutdown_budget import ShutdownClock, plan
from . import shutdown
from .private import remove_private_dir


def shut_down(runner: Any, code: int, message: Optional[str]) -> List[str]:
    """Stop everything ``runner`` (:class:`.main.Runner`) started; return notes for the
    final message (e.g. the trainer needed SIGKILL)."""
    spec, log = runner.spec, runner.log
    runner.state.update(phase="shutdown", exit_code=code, message=message)
    budget = plan(spec.kill_wait_seconds, float(spec.shutdown_grace_seconds))
    clock = ShutdownClock(budget, runner.stop_at if runner.stop_at is not None else time.monotonic())
    notes: List[str] = []
    log.line("shutdown", f"budget {budget.describe()}"
             + ("" if spec.kill_wait_seconds else " (KillWait unknown: Slurm's default)"))
    trainer = runner.trainer
    if trainer is not None and trainer.running():
        grace = clock.share("trainer")
        log.line("shutdown", f"stopping the trainer (SIGTERM, SIGKILL after {grace:.3g} s)")
        note = trainer.stop(grace, budget.trainer_kill)
        if note:
            log.line("shutdown", note)
            notes.append(note)
    if runner.ray is not None:
        share = clock.share("ray")
        killed = runner.ray.stop(share)
        log.line("shutdown", "Ray head and workers stopped"
                 + (f" (killed after {share:.3g} s: {', '.join(killed)})" if killed else ""))
    tunnel = runner.tunnel
    if tunnel is not None:
        tunnel.stop(clock.share("tunnel"))
        log.line("shutdown", f"tunnel closed ({tunnel.restarts} restart(s) of ssh, "
                             f"{tunnel.relay_restarts} of the relay during the job)")
    share = clock.share("sweep")
    left = shutdown.sweep(runner.marker, grace=share / 2, kill_wait=share / 2)
    if left:
        log.line("shutdown", f"killed {len(left)} leftover process(es) of this job on {runner.job.batch_node}")
    if runner.security is not None and os.environ.get("OT_HPC_KEEP_RAY_TEMP") != "1":
        remove_private_dir(runner.security.private_dir)  # the agents remove theirs; the backstop
    if runner.port_lock is not None:
        runner.port_lock.release()
    return notes
