"""The shutdown budget (pure), the trainer's exit reasons and the submit-time checks."""
from __future__ import annotations

import pytest

from ot_hpc.runner.exit_codes import trainer_exit_reason
from ot_hpc.shutdown_budget import (OVERHEAD, ShutdownClock, grace_problem, max_grace, plan,
                                    signal_problem)


@pytest.mark.parametrize("kill_wait, grace", [(10, 3), (10, 5), (10, 15), (30, 15), (30, 25),
                                              (60, 15), (5, 3), (2, 1), (None, 15), (120, 100)])
def test_every_step_fits_before_slurms_sigkill(kill_wait, grace):
    budget = plan(kill_wait, grace)
    wait = kill_wait or 30
    assert budget.total <= wait + 1e-9
    assert budget.trainer_grace <= grace
    assert min(budget.trainer_grace, budget.ray, budget.tunnel, budget.sweep) >= 0


def test_the_trainer_gets_its_grace_when_it_fits_and_the_rest_goes_to_the_later_steps():
    budget = plan(10, 3)
    assert budget.trainer_grace == 3
    # 10 - 1 (margin) - 3 - 0.5 (SIGKILL) = 5.5: the minimums (1.5, 1, 1), the rest to Ray
    assert (budget.ray, budget.tunnel, budget.sweep) == (3.5, 1.0, 1.0)
    assert plan(30, 15).ray == 4.0 and plan(30, 15).tunnel == 3.0 and plan(30, 15).sweep == 3.0
    cut = plan(10, 15)  # too long a grace: cut so the later steps keep their minimum
    assert cut.trainer_grace == 10 - OVERHEAD and cut.ray == 1.5 and cut.sweep == 1.0


def test_max_grace_and_the_grace_check():
    assert max_grace(10) == 5 and max_grace(30) == 25 and max_grace(None) == 25 and max_grace(3) == 0
    assert grace_problem(5, 10) is None and grace_problem(15, None) is None
    message, fix = grace_problem(15, 10)
    assert "KillWait of 10 s" in message and fix == "set SHUTDOWN_GRACE to at most 5"


def test_signal_seconds_must_leave_room_for_the_whole_shutdown_of_a_requeued_job():
    assert signal_problem(300, 15, 30, max_restarts=1) is None
    assert signal_problem(5, 15, 30, max_restarts=0) is None  # USR2 is not acted on then
    assert signal_problem(0, 15, 30, max_restarts=1) is None  # no USR2 at all
    message, fix = signal_problem(10, 15, 30, max_restarts=1)
    assert "27 s" in message and fix.startswith("set SIGNAL_SECONDS to at least 27")  # 26.5


def test_the_clock_cuts_a_late_step_so_the_later_ones_keep_their_minimum():
    now = [100.0]
    clock = ShutdownClock(plan(10, 3), started=100.0, clock=lambda: now[0])
    assert clock.share("trainer") == 3
    now[0] = 108.0  # the trainer and Ray took long: 1 s left before the margin
    assert clock.share("tunnel") == 0.0  # that second is the sweep's minimum
    assert clock.share("sweep") == pytest.approx(1.0)
    now[0] = 109.5
    assert clock.share("sweep") == 0.0


@pytest.mark.parametrize("raw, words", [
    (-9, "trainer killed by SIGKILL (signal 9; out of memory? check dmesg/sacct MaxRSS)"),
    (137, "trainer exited with code 137 (128+9: SIGKILL, likely killed for memory"),
    (-11, "trainer killed by SIGSEGV (signal 11)"),
    (134, "trainer exited with code 134 (128+6: SIGABRT)"),
    (3, "trainer exited with code 3"),
])
def test_trainer_exit_reasons(raw, words):
    assert trainer_exit_reason(raw).startswith(words)
