"""Harbor task parquets: safety checks on crafted tar bytes, extraction (atomic, idempotent),
the missing-pyarrow message, and ot-submit end to end against the fake Hub on 127.0.0.1."""
from __future__ import annotations

import io
import os
import sys
import tarfile

import pytest

from ot_hpc.cli import submit as submit_cli
from ot_hpc.spec import read_spec
from ot_hpc.stage import harbor
from ot_hpc.stage.errors import StageError
from ot_hpc.stage.harbor import UnsafeEntry

from .fakehub import FakeHub, write_offline_site
from .test_predownload import (MODEL_SHA, TOKEN,  # noqa: F401
                               no_proxies_no_offline, populate_cache, world)
from .test_submission import RecordingScheduler

try:  # part of the test extra: a missing install must not pass as a skip
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover
    pytest.fail("pyarrow is not installed: pip install -e '.[test]'", pytrace=False)

TASKS_SHA = "4" * 40


def member(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar(*members, compression="gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def task_tar(instruction="do it", compression="gz"):
    return make_tar(member("./", tarfile.DIRTYPE, mode=0o755),
                    member("./instruction.md", data=instruction.encode()),
                    member("./tests", tarfile.DIRTYPE, mode=0o755),
                    member("./tests/run.sh", data=b"#!/bin/sh\nexit 0\n", mode=0o4755),
                    member("./tests/link.sh", tarfile.SYMTYPE, linkname="run.sh"),
                    member("./tests/copy.sh", tarfile.LNKTYPE, linkname="./tests/run.sh"),
                    compression=compression)


def write_parquet(path, rows, columns=("path", "task_binary")):
    table = pa.table({columns[0]: pa.array([r[0] for r in rows], pa.string()),
                      columns[1]: pa.array([r[1] for r in rows], pa.binary())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path))
    return path


def members_of(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return tar.getmembers()


# --------------------------------------------------------------------------------------
# Safety checks (pure)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, expected", [
    ("task-0001", "task-0001"), ("./a//b/", "a/b"), ("tasks/x", "tasks/x")])
def test_task_paths_accepted(path, expected):
    assert harbor.check_task_path(path) == expected


@pytest.mark.parametrize("path, reason", [
    ("/etc", "absolute"), ("../x", "'..'"), ("a/../../b", "'..'"), ("", "empty"),
    (".", "base directory"), ("a\x00b", "NUL"), (None, "not a string"), ("C:/x", "absolute")])
def test_task_paths_rejected(path, reason):
    with pytest.raises(UnsafeEntry, match=reason):
        harbor.check_task_path(path)


def test_safe_members_are_accepted_and_normalized():
    accepted = harbor.check_members(members_of(task_tar()))
    assert [name for name, _m in accepted] == [
        "instruction.md", "tests", "tests/run.sh", "tests/link.sh", "tests/copy.sh"]
    inner = make_tar(member("a", tarfile.DIRTYPE), member("a/l", tarfile.SYMTYPE, linkname="../b"))
    assert [n for n, _m in harbor.check_members(members_of(inner))] == ["a", "a/l"]


@pytest.mark.parametrize("members, reason", [
    ([member("/etc/passwd", data=b"x")], "absolute"),
    ([member("../evil", data=b"x")], "'..'"),
    ([member("a/../../evil", data=b"x")], "'..'"),
    ([member("l", tarfile.SYMTYPE, linkname="/etc/passwd")], "absolute"),
    ([member("l", tarfile.SYMTYPE, linkname="../outside")], "outside"),
    ([member("d/l", tarfile.SYMTYPE, linkname="../../outside")], "outside"),
    ([member("h", tarfile.LNKTYPE, linkname="../../etc/passwd")], "outside"),
    ([member("h", tarfile.LNKTYPE, linkname="/etc/passwd")], "outside"),
    ([member("h", tarfile.LNKTYPE, linkname="missing")], "earlier regular file"),
    ([member("dev", tarfile.CHRTYPE)], "device"),
    ([member("blk", tarfile.BLKTYPE)], "device"),
    ([member("fifo", tarfile.FIFOTYPE)], "device"),
    ([member("l", tarfile.SYMTYPE, linkname="."), member("l/x", data=b"x")], "below the symlink"),
    ([member("f", data=b"1"), member("f", data=b"2")], "twice"),
])
def test_unsafe_members_are_rejected(members, reason):
    with pytest.raises(UnsafeEntry, match=reason):
        harbor.check_members(members_of(make_tar(*members)))


def test_symlink_chains_that_escape_are_caught_after_extraction(tmp_path):
    # each link is lexically inside, but p/q/y -> ../.. is the root, so y/../.. escapes
    data = make_tar(member("p/q/y", tarfile.SYMTYPE, linkname="../.."),
                    member("p/q/x", tarfile.SYMTYPE, linkname="y/../.."))
    with pytest.raises(UnsafeEntry, match="resolves outside"):
        harbor.extract_archive(data, str(tmp_path / "task"))


def test_extract_archive_writes_files_modes_and_links(tmp_path):
    task = tmp_path / "task"
    assert harbor.extract_archive(task_tar(compression=""), str(task)) == 5  # plain tar too
    assert (task / "instruction.md").read_text() == "do it"
    run = task / "tests" / "run.sh"
    assert oct(run.stat().st_mode & 0o7777) == "0o755"  # set-id dropped, exec kept
    assert os.readlink(task / "tests" / "link.sh") == "run.sh"
    assert (task / "tests" / "copy.sh").read_bytes() == run.read_bytes()
    assert not (task / "tests" / "copy.sh").is_symlink()
    with pytest.raises(UnsafeEntry, match="not a tar archive"):
        harbor.extract_archive(b"not a tar", str(tmp_path / "other"))


def test_footer_sniff(tmp_path):
    good = write_parquet(tmp_path / "t.parquet", [("a", task_tar())])
    other = write_parquet(tmp_path / "o.parquet", [("a", b"x")], columns=("prompt", "answer"))
    (tmp_path / "fake.parquet").write_bytes(b"PAR1")
    assert harbor.footer_columns_look_harbor(str(good))
    assert not harbor.footer_columns_look_harbor(str(other))
    assert not harbor.footer_columns_look_harbor(str(tmp_path / "fake.parquet"))
    assert harbor.harbor_parquets(str(tmp_path)) == [str(good)]


# --------------------------------------------------------------------------------------
# Extraction: happy path, idempotence, atomicity, bad rows
# --------------------------------------------------------------------------------------


def hf_snapshot(cache, rows, name="tasks_new.parquet"):
    """A dataset snapshot in the HF cache layout holding one Harbor parquet."""
    source = write_parquet(cache.parent / "src" / name, rows)
    return populate_cache(cache, "dataset", "org/tb-tasks", TASKS_SHA, {name: source.read_bytes()})


def test_extract_snapshot_happy_path_and_idempotent(tmp_path):
    snapshot = hf_snapshot(tmp_path / "hub", [("task-1", task_tar("one")),
                                              ("group/task-2", task_tar("two"))])
    lines = []
    dirs = harbor.extract_snapshot(str(snapshot), "TRAIN_DATA=org/tb-tasks", lines.append)
    dest = tmp_path / "hub" / "datasets--org--tb-tasks" / "ot-hpc-tasks" / TASKS_SHA / "tasks_new"
    assert dirs == (str(dest),)
    assert (dest / "task-1" / "instruction.md").read_text() == "one"
    assert (dest / "group" / "task-2" / "instruction.md").read_text() == "two"
    assert (dest / harbor.MARKER).is_file()
    assert not any(p.name.startswith(".tmp-") for p in dest.parent.iterdir())
    assert os.listdir(snapshot) == ["tasks_new.parquet"]  # the snapshot is untouched
    assert lines == [f"harbor: extracted 2 task(s) of {snapshot}/tasks_new.parquet into {dest}"]
    (dest / "task-1" / "instruction.md").write_text("edited")  # a second run does not redo it
    assert harbor.extract_snapshot(str(snapshot), "", lines.append) == (str(dest),)
    assert lines[-1].startswith("harbor: already extracted 2 task(s)")
    assert (dest / "task-1" / "instruction.md").read_text() == "edited"


def test_raw_task_directories_are_left_alone(tmp_path):
    snapshot = populate_cache(tmp_path / "hub", "dataset", "org/raw", TASKS_SHA,
                              {"task-1/instruction.md": b"x", "data/train.parquet": b"PAR1"})
    assert harbor.extract_snapshot(str(snapshot)) == ()
    assert not (tmp_path / "hub" / "datasets--org--raw" / "ot-hpc-tasks").exists()


def test_incomplete_or_stale_extraction_is_redone(tmp_path):
    parquet = write_parquet(tmp_path / "t.parquet", [("task-1", task_tar("v1"))])
    dest = tmp_path / "out" / "t"
    (dest / "junk").mkdir(parents=True)  # e.g. an old crash: no marker -> not complete
    assert harbor.extract_parquet(str(parquet), str(dest)) == (True, 1)
    assert not (dest / "junk").exists() and (dest / "task-1" / "instruction.md").read_text() == "v1"
    write_parquet(parquet, [("task-1", task_tar("v2")), ("task-2", task_tar())])  # new content
    os.utime(parquet, ns=(1, 1))
    assert harbor.extract_parquet(str(parquet), str(dest)) == (True, 2)
    assert (dest / "task-1" / "instruction.md").read_text() == "v2"
    assert harbor.extract_parquet(str(parquet), str(dest)) == (False, 2)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["t"]  # no temp or stale dirs


@pytest.mark.parametrize("rows, expected", [
    ([("ok", "GOOD"), ("../escape", "GOOD")], "row 1 (path '../escape'): path '../escape' has a '..'"),
    ([("/abs", "GOOD")], "row 0 (path '/abs'): path '/abs' is absolute"),
    ([("evil", make_tar(member("l", tarfile.SYMTYPE, linkname="/etc")))],
     "row 0 (path 'evil'): symlink 'l' -> '/etc' is empty or absolute"),
    ([("evil", make_tar(member("../../x", data=b"x")))], "row 0 (path 'evil'): member '../../x'"),
    ([("dev", make_tar(member("null", tarfile.CHRTYPE)))], "row 0 (path 'dev'): member 'null' is a device"),
    ([("a", "GOOD"), ("a", "GOOD")], "row 1 (path 'a'): the same path"),
    ([("junk", b"not a tar")], "row 0 (path 'junk'): task_binary is not a tar archive"),
])
def test_a_bad_row_is_one_line_and_nothing_is_left(tmp_path, rows, expected):
    rows = [(p, task_tar() if d == "GOOD" else d) for p, d in rows]
    parquet = write_parquet(tmp_path / "t.parquet", rows)
    dest = tmp_path / "out" / "t"
    with pytest.raises(StageError) as failed:
        harbor.extract_parquet(str(parquet), str(dest), "TRAIN_DATA=org/x")
    message = str(failed.value)
    assert "\n" not in message and failed.value.exit_code == 2
    assert message.startswith(f"TRAIN_DATA=org/x: {parquet}: {expected}"), message
    assert os.listdir(dest.parent) == []  # no half-written directory, no temp dir
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_a_crash_mid_extraction_leaves_nothing_that_looks_complete(tmp_path):
    parquet = write_parquet(tmp_path / "t.parquet", [("task-1", task_tar())])

    def rows():
        yield "task-1", task_tar()
        raise KeyboardInterrupt

    dest = tmp_path / "out" / "t"
    with pytest.raises(KeyboardInterrupt):
        harbor.extract_parquet(str(parquet), str(dest), rows=rows())
    assert os.listdir(dest.parent) == [] and not harbor.is_extracted(str(parquet), str(dest))


def test_missing_pyarrow_is_one_line_exit_2(tmp_path, monkeypatch):
    parquet = write_parquet(tmp_path / "t.parquet", [("task-1", task_tar())])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert not harbor.pyarrow_available()
    assert harbor.harbor_parquets(str(tmp_path)) == [str(parquet)]  # spotted without pyarrow
    with pytest.raises(StageError) as failed:
        harbor.extract_snapshot(str(tmp_path), "TRAIN_DATA=org/x")
    message = str(failed.value)
    assert failed.value.exit_code == 2 and "\n" not in message
    assert "needs pyarrow" in message and "pip install pyarrow" in message
    assert not (tmp_path.parent / f"{tmp_path.name}.ot-hpc-tasks" / "t").exists()


# --------------------------------------------------------------------------------------
# ot-submit end to end (fake Hub on 127.0.0.1)
# --------------------------------------------------------------------------------------


@pytest.fixture
def tb_site(world, monkeypatch, tmp_path_factory):
    tmp, environ = world
    source = write_parquet(tmp_path_factory.mktemp("src") / "tasks_new.parquet",
                           [("task-1", task_tar("one")), ("task-2", task_tar("two"))])
    hub = FakeHub({
        ("model", "org/tiny-model"): {"sha": MODEL_SHA, "files": {"config.json": b"{}"}},
        ("dataset", "org/tb-tasks"): {"sha": TASKS_SHA, "files": {
            "tasks_new.parquet": source.read_bytes(), "README.md": b"# tasks"}},
    })
    write_offline_site(tmp, hub.url, TOKEN, "TRAIN_DATA=org/tb-tasks:train\nVAL_DATA=org/tb-tasks\n")
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.chdir(tmp)
    scheduler = RecordingScheduler()
    monkeypatch.setattr(submit_cli, "scheduler_from_args", lambda args: scheduler)
    yield tmp, hub, scheduler
    hub.close()


def test_submission_extracts_and_points_skyrl_at_the_tasks(huggingface_hub, tb_site, capsys):  # noqa: F811
    tmp, hub, scheduler = tb_site
    assert submit_cli.main(["--config", "job.env"]) == 0
    err = capsys.readouterr().err
    dest = tmp / "hub" / "datasets--org--tb-tasks" / "ot-hpc-tasks" / TASKS_SHA / "tasks_new"
    assert (dest / "task-2" / "instruction.md").read_text() == "two"
    spec = read_spec(str(next((tmp / "exp" / "specs").iterdir())))
    assert f"data.train_data=['{dest}']" in spec.overrides
    assert f"data.val_data=['{dest}']" in spec.overrides
    assert err.count("harbor: extracted 2 task(s)") == 1  # one snapshot, extracted once
    assert "split 'train' does not apply" in err and len(scheduler.requests) == 1
    # a second submission reuses the extraction
    assert submit_cli.main(["--config", "job.env"]) == 0
    assert "harbor: already extracted 2 task(s)" in capsys.readouterr().err
    # and the dry run now shows the extracted directory in the spec
    assert submit_cli.main(["--config", "job.env", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"#   TRAIN_DATA: {tmp}/hub/datasets--org--tb-tasks/snapshots/{TASKS_SHA}/tasks_new.parquet" \
           f" -> {dest}  (already extracted)" in out
    assert f"data.train_data=['{dest}']" in out


def test_dry_run_extracts_nothing(tb_site, capsys):
    tmp, hub, scheduler = tb_site
    before = sorted(str(p) for p in tmp.rglob("*"))
    assert submit_cli.main(["--config", "job.env", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# Harbor task parquets (columns path, task_binary) in a downloaded dataset are " \
           "extracted on submission (not now)" in out
    assert "checked after their download" in out
    assert hub.requests == [] and scheduler.requests == []
    assert sorted(str(p) for p in tmp.rglob("*")) == before
    # cached but not extracted: the dry run names the parquet and still writes nothing
    snapshot = populate_cache(tmp / "hub", "dataset", "org/tb-tasks", TASKS_SHA,
                              {"tasks_new.parquet": write_parquet(
                                  tmp / "src" / "tasks_new.parquet",
                                  [("task-1", task_tar())]).read_bytes()})
    before = sorted(str(p) for p in tmp.rglob("*"))
    assert submit_cli.main(["--config", "job.env", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"#   VAL_DATA: {snapshot}/tasks_new.parquet -> " in out and "already extracted" not in out
    assert sorted(str(p) for p in tmp.rglob("*")) == before and hub.requests == []


def test_bad_task_stops_the_submission_with_one_line(huggingface_hub, tb_site, capsys):  # noqa: F811
    tmp, hub, scheduler = tb_site
    source = write_parquet(tmp / "src" / "bad.parquet",
                           [("task-1", make_tar(member("../../../etc/cron.d/x", data=b"x")))])
    hub.repos[("dataset", "org/tb-tasks")]["files"]["tasks_new.parquet"] = source.read_bytes()
    assert submit_cli.main(["--config", "job.env"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "row 0 (path 'task-1'): member '../../../etc/cron.d/x'" in errors[0]
    assert errors[0].endswith("(nothing was written or submitted)")
    assert scheduler.requests == [] and not (tmp / "exp").exists()
