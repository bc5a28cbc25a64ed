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
