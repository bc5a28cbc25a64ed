"""Tables fit the width, colour only when asked (pure)."""
from __future__ import annotations

import io
import re

from ot_hpc.monitor.status import JobView, gather, render_lines
from ot_hpc.monitor.pending import explain_pending
from ot_hpc.monitor.table import Column, fit, paint, render_table, state_colour, use_colour
from ot_hpc.scheduler.base import JobState

from .helpers import record

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_fit_marks_cuts():
    assert fit("short", 10) == "short"
    assert fit("a-very-long-job-name", 10) == "a-very-..."
    assert fit("/a/very/long/path/job_1.log", 12, cut_left=True) == "...job_1.log"
    assert fit("abc", 0) == ""


def test_table_shrinks_only_cuttable_columns_to_fit():
    columns = (Column("ID"), Column("NAME", min_width=8), Column("STATE"))
    rows = [("1", "n" * 200, "RUNNING"), ("22", "short", "PENDING")]
    lines = render_table(columns, rows, width=40)
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("1   ") and lines[1].rstrip().endswith("RUNNING")
    assert "..." in lines[1]
    assert lines[2].split() == ["22", "short", "PENDING"]


def test_table_that_cannot_fit_is_cut_plain():
    columns = (Column("A" * 30), Column("B" * 30))
    lines = render_table(columns, [("x", "y")], width=20, colour=True)
    assert all(len(line) <= 20 and "\x1b" not in line for line in lines)


def test_no_trailing_spaces_and_colour_does_not_change_layout():
    columns = (Column("ID"), Column("STATE"), Column("NAME", min_width=4))
    rows = [("1", ("RUNNING", "green"), "x"), ("2", ("FAILED", "red"), "")]
    plain = render_table(columns, rows)
    coloured = render_table(columns, rows, colour=True)
    assert [ANSI.sub("", line) for line in coloured] == plain
    assert "\x1b[32mRUNNING\x1b[0m" in coloured[1]
    assert all(line == line.rstrip() for line in plain)


def test_no_colour_without_a_terminal_or_with_no_color():
    assert use_colour(io.StringIO(), {}) is False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert use_colour(Tty(), {}) is True
    assert use_colour(Tty(), {"NO_COLOR": "1"}) is False
    assert use_colour(Tty(), {"TERM": "dumb"}) is False
    assert paint("x", "red", False) == "x"


def test_state_colours():
    assert state_colour("RUNNING") == "green"
    assert state_colour("PENDING") == "yellow"
    assert state_colour("OUT_OF_MEMORY") == "red"


def test_status_lines_fit_100_columns_with_long_names_paths_and_reasons(tmp_path):
    long_name = "gsm8k-qwen2.5-1.5b-instruct-grpo-colocate-fsdp2-" + "x" * 80
    log = "/p/scratch/westai0007/" + "deep/" * 20 + f"{long_name}_101.log"
    records = [
        record(101, long_name, stdout_path=log, node_count=16, node_list="jrc[0001-0008,0010-0017]"),
        record(102, long_name, JobState.PENDING, reason="AssocGrpCPURunMinutesLimit", partition="dc-hwai,dc-gpu"),
        record(103, "x", JobState.PENDING, reason="ReqNodeNotAvail, UnavailableNodes:" + "jrc0001," * 40),
    ]
    views = gather(records, tail=None, index=None)
    for show_user in (False, True):
        lines = render_lines(views, "alice", 100, colour=False, show_user=show_user)
        assert all(len(line) <= 100 for line in lines), "\n".join(l for l in lines if len(l) > 100)
    text = "\n".join(render_lines(views, "alice", 100, colour=False))
    assert "(AssocGrpCPURunMinutesLimit)" in text
    assert "log: ..." in text and text.count("_101.log") == 1


def test_status_render_without_jobs_is_one_line():
    assert render_lines([], "alice", 100, colour=False) == ["No jobs of alice in the queue."]


def test_status_order_running_first_and_reason_words():
    views = gather([record(5, state=JobState.PENDING, reason="JobHeldUser"), record(9)], None, None)
    assert [v.record.job_id for v in views] == [9, 5]
    assert views[1].pending == explain_pending("JobHeldUser")
    lines = render_lines(views, "alice", 100, colour=False)
    assert lines[0] == "2 jobs of alice: 1 running, 1 pending"
    assert any("held by its user" in line and "(JobHeldUser)" in line for line in lines)


def test_status_json_has_reason_phase_and_log(tmp_path):
    from ot_hpc.monitor.status import json_document
    from ot_hpc.runstate import RunState, write_state

    log = tmp_path / "job_7.log"
    log.write_text("one\ntwo\nthree\n")
    write_state(str(tmp_path / "job_7.state.json"),
                RunState(job_id="7", phase="ray", nodes_ready=1, nodes_expected=2))
    views = gather([record(7, "job", stdout_path=str(log)),
                    record(8, "job", JobState.PENDING, reason="Priority")], tail=2, index=None)
    doc = json_document(views, "alice", None, with_tail=True)
    running, pending = doc["jobs"]
    assert running["phase"] == "Ray 1/2 ready" and running["run_state"]["nodes_expected"] == 2
    assert running["log_path"] == str(log) and running["tail"] == ["two", "three"]
    assert pending["pending_reason"]["code"] == "Priority"
    assert pending["pending_reason"]["category"] == "resources"
    assert pending["phase"] is None and pending["tail"] == []


def test_state_file_of_another_job_id_is_ignored(tmp_path):
    from ot_hpc.runstate import RunState, write_state

    log = tmp_path / "job_7.log"
    log.write_text("")
    write_state(str(tmp_path / "job_7.state.json"), RunState(job_id="6", phase="training"))
    assert gather([record(7, "job", stdout_path=str(log))], None, None)[0].phase is None


def test_view_is_frozen():
    import dataclasses

    view = JobView(record())
    try:
        view.phase = "x"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError("JobView must be frozen")


def test_watch_frames_redraw_in_place_on_a_terminal_only():
    from ot_hpc.monitor.status import CLEAR_BELOW, HOME, frame_text

    in_place = frame_text(["a", "b"], in_place=True, height=40)
    assert in_place.startswith(HOME) and in_place.endswith(CLEAR_BELOW) and "a\x1b[K\n" in in_place
    assert frame_text(["a", "b"], in_place=False) == "a\nb\n\n"
    cut = frame_text([str(i) for i in range(100)], in_place=True, height=10)
    assert cut.count("\n") == 9 and "92 more lines" in cut


def test_watch_stops_cleanly_on_ctrl_c():
    from ot_hpc.monitor.status import watch

    out = io.StringIO()
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt

    assert watch(2.0, lambda: ["frame"], out, in_place=False, sleep=sleep) == 0
    assert out.getvalue().count("frame") == 2 and calls == [2.0, 2.0]
