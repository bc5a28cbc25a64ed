"""The progress report between the trainer's output and the run-state file: a new step
is written at once, anything else at most once a second, nothing when there is no
progress, and a bug never reaches the job. Also the :class:`Trainer`'s hook, with a
real child process (no cluster)."""
from __future__ import annotations

import io
import json
import sys
import threading

import pytest

from ot_hpc import demo_progress
from ot_hpc.runner.joblog import JobLog, Redactor
from ot_hpc.runner.progress_report import ProgressReport
from ot_hpc.runner.statefile import StateFile
from ot_hpc.runner.trainer import Trainer
from ot_hpc.runstate import RunState, read_state

tqdm = pytest.importorskip("tqdm").tqdm


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class CountingState(StateFile):
    def __init__(self, path, log):
        super().__init__(path, RunState(job_id="7", phase="training"), log)
        self.writes = []

    def update(self, **changes):
        if "progress" in changes:
            self.writes.append(changes["progress"])
        super().update(**changes)


def bar(n, total, elapsed):
    return "\r" + tqdm.format_meter(n, total, elapsed, prefix="Training Batches Processed")


@pytest.fixture
def report(tmp_path):
    out = io.StringIO()
    state = CountingState(str(tmp_path / "job_7.state.json"), JobLog(out))
    clock = Clock()
    return ProgressReport(state, clock=clock), state, clock, out


def test_a_new_step_is_written_at_once_a_new_rate_once_a_second(report):
    progress, state, clock, _ = report
    progress.feed(bar(0, 10, 0) + "\n")
    progress.feed(bar(1, 10, 40) + "\n")
    assert [w["step"] for w in state.writes] == [0, 1]
    clock.now += 0.3
    progress.feed(bar(1, 10, 41) + "\n")  # the same step redrawn: held back
    progress.flush()
    assert len(state.writes) == 2
    clock.now += 0.8
    progress.flush()  # a second has passed: written now
    assert len(state.writes) == 3 and state.writes[-1]["elapsed_seconds"] == 41.0
    progress.flush()
    assert len(state.writes) == 3  # nothing new


def test_the_end_of_the_stream_writes_what_was_held_back(report):
    progress, state, clock, _ = report
    progress.feed(bar(2, 4, 20) + "\n")
    progress.feed(bar(2, 4, 21))  # a redraw without a newline, then the trainer exits
    progress.flush(final=True)
    assert state.writes[-1]["elapsed_seconds"] == 21.0
    saved = read_state(state.path).progress
    assert saved["step"] == 2 and saved["total"] == 4 and saved["updated_at"] > 0


def test_the_state_file_gets_the_headline_metrics_and_rewards(report):
    progress, state, _, _ = report
    stream = io.StringIO()
    demo_progress.run("skyrl-train", 3, 5, 0.0, out=stream, err=stream)
    for start in range(0, len(stream.getvalue()), 100):
        progress.feed(stream.getvalue()[start:start + 100])
    progress.flush(final=True)
    saved = json.load(open(state.path))["progress"]
    assert saved["step"] == 3 and saved["total"] == 5 and saved["metrics_step"] == 3
    assert saved["metrics"] == {"reward": demo_progress.reward_at(3, 5), "loss": demo_progress.loss_at(3)}
    assert saved["metric_keys"]["reward"] == "reward/avg_raw_reward"
    assert [s for s, _ in saved["rewards"]] == [1, 2, 3]


def test_no_progress_output_writes_nothing(report):
    progress, state, _, _ = report
    progress.feed("demo: connected to Ray\nStep 1: not a dict\nLoading: 100%|##| 2/2 [00:01<00:00, 1.0it/s]\n")
    progress.flush(final=True)
    assert state.writes == [] and read_state(state.path) is None


def test_metric_key_names_are_redacted(report):
    progress, state, _, _ = report
    state.log.redactor = Redactor({"HF_TOKEN": "hf_secretvalue"})
    progress.feed("Step 1: {'reward/hf_secretvalue/avg_raw_reward': '0.5000'}\n")
    progress.flush(final=True)
    assert "hf_secretvalue" not in open(state.path).read()


def test_a_bug_is_one_warning_and_the_report_switches_off(report, monkeypatch):
    progress, state, _, out = report

    def broken(text):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(progress.parser, "feed", broken)
    progress.feed("anything\n")
    progress.feed("more\n")
    progress.flush(final=True)
    assert out.getvalue().count("WARNING: progress reading switched off: RuntimeError: parser bug") == 1
    assert progress.broken and state.writes == []


def test_the_trainer_feeds_its_output_to_the_report_and_still_logs_every_line(tmp_path):
    script = ("import io, sys\n"
              "from ot_hpc import demo_progress\n"
              "demo_progress.run('skyrl', 3, 6, 0.01)\n"
              "print('trainer says goodbye', flush=True)\n")
    out = io.StringIO()
    log = JobLog(out)
    state = StateFile(str(tmp_path / "job_7.state.json"), RunState(job_id="7", phase="training"), log)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(p for p in sys.path if p), "LANG": "C.UTF-8"}
    trainer = Trainer([sys.executable, "-c", script], env, log.sink("trainer"), observer=ProgressReport(state))
    trainer.start()
    assert trainer.wait(threading.Event()) == 0
    saved = read_state(state.path).progress
    assert (saved["step"], saved["total"], saved["metrics_step"]) == (3, 6, 3)
    assert saved["metrics"]["reward"] == demo_progress.reward_at(3, 6)
    text = out.getvalue()
    assert "[trainer] trainer says goodbye" in text and "'reward/avg_raw_reward': '" in text
    assert "Training Batches Processed:  50%" in text
