"""Training progress in ot-status (pure): the line under a job, --json, --watch moving,
the sparkline, and a run-state file whose progress is absent, old or wrong showing nothing
wrong."""
from __future__ import annotations

import io
import json

import pytest

from ot_hpc.cli import status as status_cli
from ot_hpc.monitor.progress import (format_eta, format_metric, progress_line, read_progress,
                                     sparkline)
from ot_hpc.monitor.status import gather, json_document, render_lines
from ot_hpc.monitor.table import takes_unicode
from ot_hpc.runstate import RunState, read_state, write_state

from .helpers import record
from .test_status_watch import CountingScheduler

PROGRESS = {"step": 84, "total": 200, "elapsed_seconds": 3696.0, "seconds_per_step": 44.0,
            "eta_seconds": 5104.0, "metrics_step": 84, "metrics": {"reward": 0.41},
            "metric_keys": {"reward": "reward/avg_raw_reward"}, "rewards": [], "updated_at": 1.0}


def with_progress(**changes):
    return dict(PROGRESS, **changes)


def test_the_line_of_the_issue():
    assert progress_line(read_progress(PROGRESS), 96) == "training step 84/200, 44 s/step, ETA 1h25m, reward 0.41"


def test_loss_eval_fast_steps_and_the_end():
    line = progress_line(read_progress(with_progress(
        seconds_per_step=0.25, eta_seconds=29.0, metrics={"reward": 0.4100, "loss": 0.1234, "eval": 0.375})), 96)
    assert line == "training step 84/200, 4.0 steps/s, ETA 29s, reward 0.41, loss 0.123, eval 0.375"
    done = read_progress(with_progress(step=200, eta_seconds=0.0, seconds_per_step=4.4))
    assert progress_line(done, 96) == "training step 200/200, 4.4 s/step, reward 0.41"


def test_before_the_first_step_and_without_a_bar():
    start = read_progress({"step": 0, "total": 200, "seconds_per_step": None, "eta_seconds": None})
    assert progress_line(start, 96) == "training step 0/200"
    only_dicts = read_progress({"metrics_step": 12, "metrics": {"loss": 0.5}})
    assert progress_line(only_dicts, 96) == "training step 12, loss 0.5"


def test_the_sparkline_of_the_rewards_seen():
    rewards = [[s, 0.1 + 0.05 * s] for s in range(1, 9)]
    line = progress_line(read_progress(with_progress(rewards=rewards)), 96)
    assert line.endswith("reward 0.41 ▁▂▃▄▅▆▇█")
    assert sparkline([0.5, 0.5, 0.5]) == "▄▄▄" and sparkline([0.5]) == ""
    assert sparkline(list(range(100)), width=20) == sparkline(list(range(80, 100)))
    narrow = progress_line(read_progress(with_progress(rewards=rewards)), 60)
    assert narrow == "training step 84/200, 44 s/step, ETA 1h25m, reward 0.41"  # sparkline first to go
    assert len(progress_line(read_progress(with_progress(rewards=rewards)), 30)) == 30
    assert "▁" not in progress_line(read_progress(with_progress(rewards=rewards)), 96, with_sparkline=False)


def test_formats():
    assert [format_eta(s) for s in (0, 45, 750, 5104, 90000)] == ["0s", "45s", "12m30s", "1h25m", "1d1h"]
    assert [format_metric(v) for v in (0.41, 0.1234, 12.5, 1234.4, 0.0, -0.5, 0.00001)] == \
        ["0.41", "0.123", "12.5", "1234", "0", "-0.5", "1.0e-05"]


@pytest.mark.parametrize("raw", [
    None, "training", 42, [], {}, {"step": None}, {"step": "84"}, {"step": True}, {"step": -1},
    {"metrics": {"reward": "0.4"}}, {"metrics": {"accuracy": 0.4}}, {"metrics": {"reward": float("nan")}},
    {"rewards": [[1, 0.4]]},
])
def test_absent_or_wrong_progress_shows_nothing(raw):
    assert read_progress(raw) is None


def test_wrong_fields_are_left_out_one_by_one():
    progress = read_progress(with_progress(total=50, seconds_per_step="fast", eta_seconds=-3,
                                           metrics={"reward": 0.41, "loss": None, "eval": True},
                                           rewards=[[1, 0.3], ["2", 0.4], [3], [4, "x"], [5, 0.5]]))
    assert progress["total"] is None  # 84 of 50 cannot be
    assert progress["seconds_per_step"] is None and progress["eta_seconds"] is None
    assert progress["metrics"] == {"reward": 0.41} and progress["rewards"] == [[1, 0.3], [5, 0.5]]
    assert progress_line(progress, 96) == "training step 84, reward 0.41 ▁█"


def job_with_state(tmp_path, progress, job_id=7):
    log = tmp_path / f"job_{job_id}.log"
    log.write_text("")
    write_state(str(tmp_path / f"job_{job_id}.state.json"),
                RunState(job_id=str(job_id), phase="training", progress=progress))
    return record(job_id, "job", stdout_path=str(log))


def test_ot_status_shows_the_line_under_the_job_and_json_carries_it(tmp_path):
    views = gather([job_with_state(tmp_path, PROGRESS)], tail=None, index=None)
    lines = render_lines(views, "alice", 100, colour=False)
    assert "    training step 84/200, 44 s/step, ETA 1h25m, reward 0.41" in lines
    at = lines.index("    training step 84/200, 44 s/step, ETA 1h25m, reward 0.41")
    assert lines[at - 1].startswith("    phase: training") and lines[at - 2].startswith("7 ")
    doc = json.loads(json.dumps(json_document(views, "alice", None, with_tail=False)))
    job = doc["jobs"][0]
    assert job["progress"]["step"] == 84 and job["progress"]["total"] == 200
    assert job["progress"]["metrics"] == {"reward": 0.41}
    assert job["run_state"]["progress"]["eta_seconds"] == 5104.0


def test_no_progress_no_line(tmp_path):
    views = gather([job_with_state(tmp_path, None)], tail=None, index=None)
    assert not any("training step" in line for line in render_lines(views, "alice", 100, colour=False))
    assert json_document(views, "alice", None, with_tail=False)["jobs"][0]["progress"] is None


def test_an_old_state_file_without_progress_still_reads(tmp_path):
    path = tmp_path / "job_7.state.json"
    path.write_text(json.dumps({"job_id": "7", "phase": "training", "nodes_ready": 2}))
    assert read_state(str(path)).progress is None


def test_watch_shows_the_progress_move(tmp_path):
    listed = job_with_state(tmp_path, with_progress(step=1, rewards=[[1, 0.2]]))
    scheduler = CountingScheduler(listed=[listed])
    steps = iter(range(2, 6))

    def sleep(_seconds):
        step = next(steps, None)
        if step is None:
            raise KeyboardInterrupt
        rewards = [[s, 0.2 + 0.1 * s] for s in range(1, step + 1)]
        write_state(str(tmp_path / "job_7.state.json"), RunState(
            job_id="7", phase="training", progress=with_progress(step=step, rewards=rewards,
                                                                 metrics={"reward": rewards[-1][1]})))

    out = io.StringIO()
    argv = ["--watch", "1", "--experiments-dir", str(tmp_path), "--user", "alice"]
    assert status_cli.body(argv, scheduler=scheduler, sleep=sleep, stream=out) == 0
    text = out.getvalue()
    shown = [line.strip() for line in text.splitlines() if "training step" in line]
    assert [line.split(",")[0] for line in shown] == [f"training step {s}/200" for s in range(1, 6)]
    assert shown[-1].endswith("reward 0.7 ▁▃▅▆█") and shown[0].endswith("reward 0.41")


def test_no_sparkline_where_the_output_cannot_print_it(tmp_path):
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert not takes_unicode(ascii_out) and takes_unicode(io.StringIO())
    rewards = [[1, 0.1], [2, 0.3]]
    views = gather([job_with_state(tmp_path, with_progress(rewards=rewards))], tail=None, index=None)
    lines = render_lines(views, "alice", 100, colour=False, unicode=False)
    assert "    training step 84/200, 44 s/step, ETA 1h25m, reward 0.41" in lines
