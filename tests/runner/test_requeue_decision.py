"""The restart decision: on failure or time limit, below max_restarts; never on success."""
import signal

import pytest

from ot_hpc.runner import requeue


@pytest.mark.parametrize("code,sig,expected", [
    (0, None, requeue.SUCCESS),
    (3, None, requeue.FAILURE),
    (140, signal.SIGUSR2, requeue.TIME_LIMIT),
    (143, signal.SIGTERM, requeue.CANCELLED),
])
def test_outcome(code, sig, expected):
    assert requeue.outcome(code, sig) == expected


@pytest.mark.parametrize("result,count,maximum,expected", [
    (requeue.FAILURE, 0, 1, True),
    (requeue.FAILURE, 1, 1, False),   # not beyond N
    (requeue.TIME_LIMIT, 0, 2, True),
    (requeue.SUCCESS, 0, 3, False),   # never on success
    (requeue.CANCELLED, 0, 3, False),  # scancel means stop
    (requeue.FAILURE, 0, 0, False),
])
def test_should_requeue(result, count, maximum, expected):
    assert requeue.should_requeue(result, count, maximum) is expected


def test_describe():
    assert "restart 1 of 1" in requeue.describe(requeue.FAILURE, 0, 1)
    assert "all 1 restart(s) used" in requeue.describe(requeue.FAILURE, 1, 1)


@pytest.mark.parametrize("code,sig,upload_failed,expected", [
    (0, signal.SIGUSR2, False, requeue.SUCCESS),      # USR2 after the trainer finished
    (0, signal.SIGTERM, False, requeue.SUCCESS),
    (143, signal.SIGTERM, True, requeue.UPLOAD_FAILED),  # scancel during the upload
    (140, signal.SIGUSR2, True, requeue.UPLOAD_FAILED),  # USR2 during the upload
    (5, None, True, requeue.UPLOAD_FAILED),
])
def test_a_trainer_that_exited_0_is_never_requeued(code, sig, upload_failed, expected):
    result = requeue.outcome(code, sig, trainer_exit=0, upload_failed=upload_failed)
    assert result == expected
    assert requeue.should_requeue(result, 0, 3) is False


def test_a_signal_before_the_trainer_finished_still_requeues():
    assert requeue.outcome(140, signal.SIGUSR2, trainer_exit=None) == requeue.TIME_LIMIT
    assert requeue.outcome(1, None, trainer_exit=1) == requeue.FAILURE
