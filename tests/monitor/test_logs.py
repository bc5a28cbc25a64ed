"""Finding the log a job wrote (.log and .out alike) and tailing it (filesystem, no Slurm)."""
from __future__ import annotations

import os

from ot_hpc.monitor.dirs import DEFAULT_EXPERIMENTS_DIR, EXPERIMENTS_DIR_VAR, experiments_dirs
from ot_hpc.monitor.logs import LogIndex, clean_line, find_log, job_id_of_log, state_path_for, tail_lines


def test_log_names():
    assert job_id_of_log("gsm8k-1.5b-2n-20261128-120000_4711.log") == 4711
    assert job_id_of_log("my_job_with_underscores_12.out") == 12
    assert job_id_of_log("slurm-99.out") == 99
    assert job_id_of_log("notes.txt") is None
    assert job_id_of_log("job_12.state.json") is None
    assert job_id_of_log("job_abc.log") is None


def test_index_prefers_log_then_out_then_slurm_default_and_first_directory(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for name in ("x_1.out", "x_1.log", "slurm-1.out", "slurm-2.out", "y_3.out"):
        (second / name).write_text(name)
    (first / "z_3.out").write_text("first")
    index = LogIndex([str(first), str(second), str(tmp_path / "missing")])
    assert index.find(1) == str(second / "x_1.log")
    assert index.find(2) == str(second / "slurm-2.out")
    assert index.find(3) == str(first / "z_3.out")
    assert index.find(4) is None


def test_find_log_uses_the_schedulers_path_only_when_it_exists(tmp_path):
    real = tmp_path / "job_5.out"
    real.write_text("")
    index = LogIndex([str(tmp_path)])
    assert find_log(5, str(real), index) == str(real)
    assert find_log(5, None, index) == str(real)
    assert find_log(5, str(tmp_path / "gone.log"), index) == str(real)
    assert find_log(6, None, None) is None


def test_tail_reads_only_the_end_of_a_big_file(tmp_path):
    path = tmp_path / "big.log"
    with open(path, "w") as handle:
        for i in range(200000):
            handle.write(f"line {i}\n")
    assert tail_lines(str(path), 3) == ["line 199997", "line 199998", "line 199999"]
    assert tail_lines(str(path), 0) == []


def test_tail_short_file_without_final_newline_and_progress_bars(tmp_path):
    path = tmp_path / "job_1.log"
    path.write_bytes(b"first\n\x1b[32mgreen\x1b[0m\n10%\r50%\r100%\r\nlast \xff")
    assert tail_lines(str(path), 10) == ["first", "green", "100%", "last \ufffd"]
    assert tail_lines(str(path), 1) == ["last \ufffd"]


def test_clean_line_tabs_and_control_characters():
    assert clean_line("a\tb\x07") == "a   b"


def test_state_path_is_next_to_the_log():
    assert state_path_for("/e/logs/job_7.log", "job", 7) == "/e/logs/job_7.state.json"


def test_experiments_dirs_order(monkeypatch):
    env = {"HOME": "/home/u", EXPERIMENTS_DIR_VAR: "/a" + os.pathsep + "~/b" + os.pathsep + "/a"}
    assert experiments_dirs(["/x", "/x/"], env) == ["/x"]
    assert experiments_dirs(None, env) == ["/a", "/home/u/b"]
    assert experiments_dirs(None, {"HOME": "/home/u"}) == ["/home/u/ot-hpc-experiments"]
    assert DEFAULT_EXPERIMENTS_DIR.endswith("ot-hpc-experiments")


def test_submitted_experiments_dirs_are_remembered(tmp_path):
    from ot_hpc.monitor.dirs import remember_experiments_dir

    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    remember_experiments_dir(str(tmp_path / "scratch" / "exp"), env)
    remember_experiments_dir(str(tmp_path / "scratch" / "exp"), env)  # once only
    assert experiments_dirs(None, env) == [str(tmp_path / "scratch" / "exp"),
                                           str(tmp_path / "home" / "ot-hpc-experiments")]
    assert experiments_dirs(["/given"], env) == ["/given"]
