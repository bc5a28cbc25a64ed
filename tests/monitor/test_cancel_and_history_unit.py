"""ot-scancelall selection/confirmation and the history fallback (pure / in-process)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ot_hpc.cli import history as history_cli
from ot_hpc.monitor import history
from ot_hpc.monitor.cancel import ASK, PROCEED, REFUSE, CancelFilter, confirmation, is_yes, select
from ot_hpc.monitor.window import make_window
from ot_hpc.scheduler.base import AccountingUnavailable, JobState

from .helpers import T0, record


def _queue():
    return [
        record(1, "exp-a", JobState.RUNNING),
        record(2, "exp-b", JobState.PENDING, partition="debug"),
        record(3, "other", JobState.PENDING),
        record(4, "exp-c", JobState.RUNNING, user="bob"),
        record(5, "exp-d", JobState.COMPLETED),
        record(6, "exp-e", JobState.REQUEUED),
    ]


def test_only_my_active_jobs_are_selected():
    chosen = select(_queue(), CancelFilter("alice"))
    assert [r.job_id for r in chosen] == [1, 2, 3, 6]


@pytest.mark.parametrize("selection, ids", [
    (CancelFilter("alice", name="exp-*"), [1, 2, 6]),
    (CancelFilter("alice", name="exp-?"), [1, 2, 6]),
    (CancelFilter("alice", name="EXP-*"), []),
    (CancelFilter("alice", state="pending"), [2, 3, 6]),
    (CancelFilter("alice", state="running"), [1]),
    (CancelFilter("alice", partition="debug"), [2]),
    (CancelFilter("alice", name="exp-*", state="pending", partition="gpu"), [6]),
    (CancelFilter("bob"), [4]),
])
def test_filters(selection, ids):
    assert [r.job_id for r in select(_queue(), selection)] == ids


def test_multi_partition_pending_job_matches_each_partition():
    job = record(8, "x", JobState.PENDING, partition="debug,gpu")
    assert select([job], CancelFilter("alice", partition="gpu")) == [job]


def test_confirmation_rule():
    assert confirmation(yes=True, interactive=False) == PROCEED
    assert confirmation(yes=False, interactive=True) == ASK
    assert confirmation(yes=False, interactive=False) == REFUSE
    assert is_yes("y\n") and is_yes(" YES ") and not is_yes("") and not is_yes("no") and not is_yes(None)


class NoAccounting:
    """Stands in for a cluster without slurmdbd: accounting refuses, the controller remembers."""

    name = "fake"

    def __init__(self, remembered):
        self.remembered = remembered
        self.calls = []

    def list_finished_jobs(self, user, start, end, states=None):
        self.calls.append("sacct")
        raise AccountingUnavailable("job accounting is not available: slurmdbd is not running")

    def list_jobs(self, user=None, account=None, include_finished=False):
        self.calls.append(("squeue", user, include_finished))
        return [r for r in self.remembered if r.user == user]


def _finished(job_id, state, minutes_ago, **changes):
    end = T0 - timedelta(minutes=minutes_ago)
    return record(job_id, f"job{job_id}", state, end_time=end, **changes)


def test_fallback_to_the_controller_filters_and_sorts():
    fake = NoAccounting([
        _finished(1, JobState.FAILED, 3, exit_code=3),
        _finished(2, JobState.TIMEOUT, 1),
        _finished(3, JobState.COMPLETED, 2),
        _finished(4, JobState.FAILED, 60 * 30),  # outside the window
        record(5, "live", JobState.RUNNING),
        _finished(6, JobState.FAILED, 2, user="bob"),
    ])
    window = make_window(T0, hours=24)
    found = history.fetch(fake, "alice", window, history.SFAIL.states)
    assert found.source == "controller" and "not available" in found.note and "\n" not in found.note
    assert [r.job_id for r in found.records] == [2, 1]
    assert fake.calls == ["sacct", ("squeue", "alice", True)]


def test_history_command_prints_one_note_line_and_the_jobs(monkeypatch, capsys):
    fake = NoAccounting([_finished(1, JobState.FAILED, 3, exit_code=3),
                         _finished(2, JobState.TIMEOUT, 1, exit_code=0, exit_signal=15)])
    monkeypatch.setattr(history_cli, "scheduler_from_args", lambda args: fake)
    monkeypatch.setattr(history_cli.options, "current_user", lambda: "alice")
    assert history_cli.run(history.SFAIL, ["--hours", str(24 * 365 * 20)]) == 0
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and err.startswith("note: job accounting is not available")
    lines = out.splitlines()
    assert lines[0].startswith("2 failed jobs of alice in the last") and "(from controller)" in lines[0]
    assert lines[2].split()[:4] == ["2", "job2", "TIMEOUT", "SIGTERM"]
    assert lines[3].split()[:4] == ["1", "job1", "FAILED", "3"]
    assert history_cli.run(history.SFAIL, ["--json", "--hours", str(24 * 365 * 20)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "controller" and [j["job_id"] for j in doc["jobs"]] == [2, 1]


def test_history_without_jobs_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(history_cli, "scheduler_from_args", lambda args: NoAccounting([]))
    monkeypatch.setattr(history_cli.options, "current_user", lambda: "alice")
    assert history_cli.run(history.SCOMPLETED, []) == 0
    assert capsys.readouterr().out == "No completed jobs of alice in the last 24 h.\n"
