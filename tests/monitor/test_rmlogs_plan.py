"""ot-rmlogs: planning (pure) and the deleting step on a real directory tree (no Slurm)."""
from __future__ import annotations

import os
import time

import pytest

from ot_hpc.monitor.rmlogs import (FILE, LINK, OTHER, Active, Entry, close_all, delete, make_plan,
                                   owner_of, plan_directory)

NOW = 1_800_000_000.0
DAY = 86400.0
OLD, NEW = NOW - 10 * DAY, NOW - 1 * DAY
CUTOFF = NOW - 7 * DAY
UID = 1000


def entry(name, mtime=OLD, type_=FILE, size=10, uid=UID):
    return Entry(name, type_, mtime, size, uid)


@pytest.mark.parametrize("kind, name, owner", [
    ("logs", "gsm8k_12.log", (12, "gsm8k")),
    ("logs", "a_b_c_12.out", (12, "a_b_c")),
    ("logs", "gsm8k_12.state.json", (12, "gsm8k")),
    ("logs", "slurm-12.out", (12, None)),
    ("logs", "notes.txt", None),
    ("logs", "gsm8k_12.log.gz", None),
    ("logs", "gsm8k.log", None),
    ("logs", ".state-abc123", None),
    ("logs", "gsm8k_20261128T120000Z.json", None),
    ("specs", "gsm8k_20261128T120000Z.json", (None, "gsm8k")),  # before the hex suffix
    ("specs", "gsm8k_20261128T120000Z_0a9fc3.json", (None, "gsm8k")),
    ("specs", "gsm8k-1.5b-2n-20261128-120000_20261128T120000Z_ffffff.json",
     (None, "gsm8k-1.5b-2n-20261128-120000")),
    ("specs", "gsm8k_20261128T120000Z_0a9fc.json", None),
    ("specs", "gsm8k_20261128T120000Z_0A9FC3.json", None),
    ("specs", ".spec-abc123", None),
    ("specs", "gsm8k.json", None),
    ("specs", "gsm8k_12.log", None),
    ("other", "gsm8k_12.log", None),
])
def test_only_our_names_are_ours(kind, name, owner):
    assert owner_of(kind, name) == owner


def test_plan_deletes_old_files_of_finished_jobs_only():
    entries = [
        entry("done_1.log"), entry("done_1.state.json"), entry("slurm-2.out"),
        entry("fresh_3.log", NEW),
        entry("running_4.log"), entry("running_4.state.json"), entry("slurm-4.out"),
        entry("notes.txt"), entry("link_5.log", type_=LINK), entry("dir_6.log", type_=OTHER),
        entry("theirs_7.log", uid=UID + 1),
    ]
    plan = plan_directory("/e/logs", "logs", entries, CUTOFF, Active(frozenset({4})), UID)
    assert sorted(name for name, _, _ in plan.delete) == ["done_1.log", "done_1.state.json", "slurm-2.out"]
    assert plan.kept_active == 3 and plan.kept_recent == 1
    assert plan.links == ("link_5.log",) and plan.not_ours == 3
    assert plan.bytes == 30


def test_specs_of_active_jobs_are_kept_by_name():
    entries = [entry("run_20261101T000000Z.json"), entry("old_20261101T000000Z.json"),
               entry("readme.json")]
    plan = plan_directory("/e/specs", "specs", entries, CUTOFF, Active(frozenset({9}), frozenset({"run"})), UID)
    assert [name for name, _, _ in plan.delete] == ["old_20261101T000000Z.json"]
    assert plan.kept_active == 1 and plan.not_ours == 1


def test_any_owner_when_uid_is_none():
    plan = plan_directory("/e/logs", "logs", [entry("a_1.log", uid=0)], CUTOFF, Active(), None)
    assert len(plan.delete) == 1


def _age(path, days):
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment), follow_symlinks=False)


@pytest.fixture
def tree(tmp_path):
    """An experiments dir with ours and not-ours files, links pointing out of it."""
    exp, outside = tmp_path / "exp", tmp_path / "outside"
    (exp / "logs" / "sub").mkdir(parents=True)
    (exp / "specs").mkdir()
    outside.mkdir()
    victim = outside / "precious_1.log"
    victim.write_text("must survive")
    _age(victim, 30)
    files = {
        "logs/old_10.log": 30, "logs/old_10.state.json": 30, "logs/slurm-11.out": 30,
        "logs/new_12.log": 1, "logs/active_13.log": 30, "logs/notes.txt": 30,
        "logs/sub/deep_14.log": 30, "specs/old_20260101T000000Z.json": 30,
        "specs/active_20260101T000000Z.json": 30, "specs/config.json": 30,
        "specs/old_20260102T000000Z_abc123.json": 30,
        "specs/active_20260102T000000Z_abc123.json": 30,
    }
    for rel, days in files.items():
        (exp / rel).write_text("x" * 7)
        _age(exp / rel, days)
    (exp / "logs" / "link_15.log").symlink_to(victim)
    (exp / "logs" / "dirlink_16.log").symlink_to(outside, target_is_directory=True)
    return exp, victim


def test_make_plan_and_delete_never_follow_links(tree):
    exp, victim = tree
    active = Active(frozenset({13}), frozenset({"active"}))
    plan, fds = make_plan([str(exp)], time.time() - 7 * DAY, active, os.getuid())
    try:
        planned = sorted(os.path.join(os.path.basename(d.directory), name)
                         for d in plan.directories for name, _, _ in d.delete)
        assert planned == ["logs/old_10.log", "logs/old_10.state.json", "logs/slurm-11.out",
                           "specs/old_20260101T000000Z.json",
                           "specs/old_20260102T000000Z_abc123.json"]
        assert plan.links == 2 and plan.kept_active == 3 and plan.bytes == 35
        outcome = delete(plan, fds)
    finally:
        close_all(fds)
    assert outcome.files == 5 and outcome.bytes == 35 and outcome.errors == ()
    left = []
    for root, dirs, names in os.walk(exp):  # os.walk lists a link to a directory among dirs
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        left += [os.path.relpath(os.path.join(root, name), exp) for name in names + links]
    left.sort()
    assert left == ["logs/active_13.log", "logs/dirlink_16.log", "logs/link_15.log", "logs/new_12.log",
                    "logs/notes.txt", "logs/sub/deep_14.log", "specs/active_20260101T000000Z.json",
                    "specs/active_20260102T000000Z_abc123.json", "specs/config.json"]
    assert victim.read_text() == "must survive"


def test_a_logs_directory_that_is_a_link_is_not_followed(tmp_path):
    exp, elsewhere = tmp_path / "exp", tmp_path / "elsewhere"
    exp.mkdir()
    elsewhere.mkdir()
    old = elsewhere / "old_1.log"
    old.write_text("x")
    _age(old, 30)
    (exp / "logs").symlink_to(elsewhere, target_is_directory=True)
    plan, fds = make_plan([str(exp)], time.time() - 7 * DAY, Active(), os.getuid())
    close_all(fds)
    assert plan.files == 0 and fds == []
    assert any("symbolic link" in note for note in plan.notes)
    assert old.exists()


def test_missing_directories_are_fine(tmp_path):
    plan, fds = make_plan([str(tmp_path / "nope")], time.time(), Active(), None)
    assert plan.files == 0 and plan.notes == () and fds == []


def test_parallel_delete_counts_every_file(tmp_path):
    logs = tmp_path / "exp" / "logs"
    logs.mkdir(parents=True)
    for i in range(2500):
        path = logs / f"j_{i}.log"
        path.write_text("ab")
        _age(path, 30)
    plan, fds = make_plan([str(tmp_path / "exp")], time.time() - 7 * DAY, Active(frozenset({7})), os.getuid())
    try:
        outcome = delete(plan, fds, workers=3)
    finally:
        close_all(fds)
    assert outcome.files == 2499 and outcome.bytes == 4998
    assert os.listdir(logs) == ["j_7.log"]
