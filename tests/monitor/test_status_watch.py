"""``ot-status --watch``: exactly one listing RPC per refresh, counted, with no sleeping.

The watch loop's sleep is injected (it ends the loop with Ctrl-C after N refreshes), so
these tests take no wall-clock time. The last test counts the Slurm commands the cli
backend really runs against the local cluster, through its process runner.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from typing import List

import pytest

from ot_hpc.cli import status as status_cli
from ot_hpc.scheduler.base import JobState, Scheduler
from ot_hpc.scheduler.commands import CommandScheduler, _run_process

from .helpers import record

REFRESHES = 5


class CountingScheduler(Scheduler):
    """Answers from fixed records and counts every call."""

    name = "counting"

    def __init__(self, listed=(), known=()):
        self.listed = list(listed)
        self.known = {r.job_id: r for r in known}
        self.calls: Counter = Counter()
        self.asked: List[int] = []

    def list_jobs(self, user=None, account=None, include_finished=False):
        self.calls["list_jobs"] += 1
        return list(self.listed)

    def get_job(self, job_id):
        self.calls["get_job"] += 1
        self.asked.append(job_id)
        return self.known.get(job_id)

    def _unexpected(self, *args, **kwargs):
        raise AssertionError("ot-status only reads")

    submit = list_finished_jobs = cancel = requeue = release = _unexpected


class Refreshes:
    """The watch loop's sleep: records the pauses, then Ctrl-C after ``count`` refreshes."""

    def __init__(self, count):
        self.count = count
        self.pauses: List[float] = []

    def __call__(self, seconds):
        self.pauses.append(seconds)
        if len(self.pauses) >= self.count:
            raise KeyboardInterrupt


def watch(tmp_path, scheduler, *extra, count=REFRESHES):
    out, sleep = io.StringIO(), Refreshes(count)
    argv = ["--watch", "2", "--experiments-dir", str(tmp_path), *extra]
    assert status_cli.body(argv, scheduler=scheduler, sleep=sleep, stream=out) == 0
    assert sleep.pauses == [2.0] * count
    return out.getvalue()


def test_each_refresh_is_one_listing_and_nothing_else(tmp_path):
    scheduler = CountingScheduler(listed=[record(101), record(102, state=JobState.PENDING)])
    output = watch(tmp_path, scheduler, "--user", "alice")
    assert scheduler.calls == Counter(list_jobs=REFRESHES)
    assert output.count("every 2 s, ") == REFRESHES and output.count("2 jobs of alice") == REFRESHES


def test_asked_for_jobs_that_finished_are_looked_up_once(tmp_path):
    finished = record(202, state=JobState.COMPLETED, end_time=record().start_time)
    scheduler = CountingScheduler(listed=[record(201), record(999)], known=[finished])
    output = watch(tmp_path, scheduler, "201", "202", "203")
    assert scheduler.calls["list_jobs"] == REFRESHES
    # 202 finished: asked once, then remembered; 203 is unknown: asked each refresh.
    assert scheduler.asked.count(202) == 1 and scheduler.asked.count(203) == REFRESHES
    assert "999" not in output and output.count("202") >= REFRESHES


def test_a_scheduler_error_is_one_line_and_the_next_refresh_tries_again(tmp_path):
    from ot_hpc.scheduler import SchedulerError

    class Flaky(CountingScheduler):
        def list_jobs(self, user=None, account=None, include_finished=False):
            super().list_jobs(user, account, include_finished)
            if self.calls["list_jobs"] == 2:
                raise SchedulerError("Socket timed out on send/recv operation")
            return []

    scheduler = Flaky()
    output = watch(tmp_path, scheduler, "--user", "alice", count=3)
    assert scheduler.calls == Counter(list_jobs=3)
    assert output.count("error: Socket timed out") == 1


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_on_the_cluster_each_refresh_runs_exactly_one_squeue(tmp_path):
    commands: List[str] = []

    def counting_runner(argv, stdin, env, timeout=None):
        commands.append(os.path.basename(argv[0]))
        return _run_process(argv, stdin, env, timeout)

    scheduler = CommandScheduler(run=counting_runner)
    watch(tmp_path, scheduler, count=REFRESHES)
    assert commands == ["squeue"] * REFRESHES
