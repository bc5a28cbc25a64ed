"""The monitoring commands as whole processes against the real local cluster.

Jobs are created for real: one that times out (1-minute limit: submitted first, checked
last), one left running (with a run-state file), one that completes, one that fails
with exit 3 (its log is ``.out``), one held and one too big for the free GPUs. Other
engineers' jobs run under the same user, so every assertion is about our own job ids,
and ot-scancelall is always given ``--name`` with this module's unique prefix.
"""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Dict, List

import pytest

from ot_hpc.runstate import RunState, write_state
from ot_hpc.scheduler import JobRequest, JobState
from ot_hpc.scheduler.commands import CommandScheduler

from ..conftest import REPO, base_environment, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

PREFIX = f"montest-{uuid.uuid4().hex[:6]}-"
TIMEOUT_WAIT_SECONDS = 200  # 1-minute limit + slurmctld's 30 s check + KillWait
START_WAIT_SECONDS = 180  # the cluster is shared: our jobs may queue behind others'
DAY = 86400


def run_cli(command: str, *args: str, stdin=subprocess.DEVNULL, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, OT_HPC_BACKEND="cli")
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", f"ot_hpc.cli.{command}", *args], stdin=stdin,
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def lines_of(job_id: int, output: str) -> List[str]:
    """The table line of a job and the indented lines under it."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == [str(job_id)]:
            tail = [line]
            for follower in lines[i + 1:]:
                if not follower.startswith("    "):
                    break
                tail.append(follower)
            return tail
    return []


def jobs_by_id(document: dict) -> Dict[int, dict]:
    return {job["job_id"]: job for job in document["jobs"]}


@dataclass
class Jobs:
    exp: str
    ids: Dict[str, int]
    names: Dict[str, str]
    scheduler: CommandScheduler

    def log(self, key: str, ext: str = "log") -> str:
        return os.path.join(self.exp, "logs", f"{self.names[key]}_{self.ids[key]}.{ext}")

    def state(self, key: str) -> JobState:
        record = self.scheduler.get_job(self.ids[key])
        return record.state if record else JobState.UNKNOWN

    def wait_state(self, key: str, states, timeout: float = START_WAIT_SECONDS):
        wait_for(lambda: self.state(key) in states, timeout, f"{key} job to reach {states}")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    exp = str(tmp_path_factory.mktemp("montest-exp"))
    os.makedirs(os.path.join(exp, "logs"))
    os.makedirs(os.path.join(exp, "specs"))
    scheduler = CommandScheduler()
    ids: Dict[str, int] = {}
    names: Dict[str, str] = {}

    def submit(key: str, body: str, ext: str = "log", **changes) -> None:
        name = names[key] = PREFIX + key
        request = JobRequest(**{
            "script": "#!/bin/bash\n" + body + "\n", "name": name, "nodes": 1,
            "time_limit_minutes": 5, "environment": base_environment(),
            "output_path": os.path.join(exp, "logs", f"{name}_%j.{ext}"),
            "working_directory": exp, **changes})
        ids[key] = scheduler.submit(request)

    try:
        submit("timeout", "echo started; sleep 600", time_limit_minutes=1, gpus_per_node=1)
        submit("running", "echo running-now; sleep 300")
        submit("complete", "echo all-good; exit 0")
        submit("fail", "echo step-1; echo failing-now >&2; exit 3", ext="out")
        submit("held", "sleep 1", hold=True, partition="gpu")
        result = Jobs(exp, ids, names, scheduler)
        result.wait_state("timeout", {JobState.RUNNING})
        # Every GPU of every node, while our timeout job holds one: waits for resources.
        submit("toobig", "sleep 1", nodes=3, gpus_per_node=4)
        result.wait_state("running", {JobState.RUNNING})
        write_state(result.log("running").replace(".log", ".state.json"),
                    RunState(job_id=str(ids["running"]), phase="ray", nodes_ready=1, nodes_expected=2))

        def toobig_has_reason():
            record = scheduler.get_job(ids["toobig"])
            return record is not None and (record.state is not JobState.PENDING or record.reason)

        wait_for(toobig_has_reason, 60, "the scheduler to give the big job a pending reason")
        yield result
    finally:
        for job_id in ids.values():
            scheduler.cancel(job_id)


# -- ot-status ------------------------------------------------------------------------------


def test_status_shows_reasons_phase_and_log(jobs):
    result = run_cli("status", "--experiments-dir", jobs.exp)
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= 100 for line in result.stdout.splitlines())
    assert "\x1b[" not in result.stdout  # no colour when not a terminal
    held = lines_of(jobs.ids["held"], result.stdout)
    assert held and "PENDING" in held[0] and "gpu" in held[0]
    assert "held by its user" in held[1] and held[1].endswith("(JobHeldUser)")
    big = lines_of(jobs.ids["toobig"], result.stdout)
    if "PENDING" in big[0]:
        assert big[1].startswith("    waiting: ") and ("(Resources)" in big[1] or "(Priority)" in big[1])
        assert big[0].split()[-2:] == ["3", "debug"]
    running = lines_of(jobs.ids["running"], result.stdout)
    assert "RUNNING" in running[0] and running[0].split()[-2] != "-"
    assert "phase: Ray 1/2 ready" in running[1]
    assert any(line.endswith(f"log: {jobs.log('running')}") for line in running[1:])
    first = result.stdout.splitlines()[0]
    assert first.split()[0].isdigit() and " jobs of root: " in first


def test_status_json(jobs):
    result = run_cli("status", "--json", "--tail", "1")
    assert result.returncode == 0, result.stderr
    mine = jobs_by_id(json.loads(result.stdout))
    held = mine[jobs.ids["held"]]
    assert held["state"] == "PENDING" and held["reason"] == "JobHeldUser"
    assert held["pending_reason"] == {"code": "JobHeldUser", "category": "held",
                                      "explanation": held["pending_reason"]["explanation"]}
    running = mine[jobs.ids["running"]]
    assert running["state"] == "RUNNING" and running["log_path"] == jobs.log("running")
    assert running["phase"] == "Ray 1/2 ready" and running["run_state"]["nodes_ready"] == 1
    assert running["tail"] == ["running-now"] and running["node_count"] == 1 and running["node_list"]
    assert running["time_left_seconds"] is not None and running["elapsed_seconds"] is not None
    big = mine[jobs.ids["toobig"]]
    if big["state"] == "PENDING":
        assert big["pending_reason"]["category"] == "resources" and big["node_count"] == 3


def test_status_tail_account_and_user(jobs):
    result = run_cli("status", "--tail", "2")
    assert result.returncode == 0, result.stderr
    assert "    | running-now" in lines_of(jobs.ids["running"], result.stdout)
    team = run_cli("status", "--account", "local")
    assert team.returncode == 0, team.stderr
    assert team.stdout.splitlines()[1].split()[:3] == ["JOBID", "USER", "NAME"]
    assert lines_of(jobs.ids["held"], team.stdout)[0].split()[1] == "root"
    nobody = run_cli("status", "--user", "nobody")
    assert (nobody.returncode, nobody.stdout) == (0, "No jobs of nobody in the queue.\n")


def test_status_watch_redraws_until_ctrl_c(jobs):
    env = dict(os.environ, PYTHONPATH=REPO, OT_HPC_BACKEND="cli")
    process = subprocess.Popen([sys.executable, "-m", "ot_hpc.cli.status", "--watch", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        frames = 0
        deadline = time.monotonic() + 30
        while frames < 2 and time.monotonic() < deadline:
            line = process.stdout.readline()
            frames += line.startswith("every 1 s, ")
        assert frames == 2
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("args", [["--watch", "0.5"], ["--watch", "-1"], ["--watch", "2", "--json"],
                                  ["--tail", "0"], ["--bogus"]])
def test_status_bad_usage_exits_2(args):
    result = run_cli("status", *args)
    assert result.returncode == 2 and result.stdout == ""


# -- ot-rmlogs (while "running" runs and "held" waits) ---------------------------------------


def _age(path: str, days: float) -> None:
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment), follow_symlinks=False)


def test_rmlogs_keeps_active_jobs_and_never_follows_links(jobs, tmp_path):
    # The short jobs write their logs when they start: let them finish before listing.
    jobs.wait_state("complete", {JobState.COMPLETED})
    jobs.wait_state("fail", {JobState.FAILED})
    logs, specs = os.path.join(jobs.exp, "logs"), os.path.join(jobs.exp, "specs")
    outside = tmp_path / "outside.log"
    outside.write_text("not ours")
    _age(str(outside), 40)
    finished = {os.path.join(logs, f"{PREFIX}old_9999901.log"): "old log\n",
                os.path.join(logs, f"{PREFIX}old_9999901.state.json"): "{}",
                os.path.join(logs, "slurm-9999902.out"): "slurm default\n",
                os.path.join(specs, f"{PREFIX}old_20260101T000000Z.json"): "{}"}
    kept = {os.path.join(logs, "notes.txt"): "mine, not ours",
            os.path.join(logs, f"{jobs.names['held']}_{jobs.ids['held']}.log"): "pending job\n",
            os.path.join(specs, f"{jobs.names['held']}_20260101T000000Z.json"): "{}",
            os.path.join(specs, f"{jobs.names['running']}_20260101T000000Z.json"): "{}"}
    for path, text in {**finished, **kept}.items():
        with open(path, "w") as handle:
            handle.write(text)
        _age(path, 30)
    running_files = [jobs.log("running"), jobs.log("running").replace(".log", ".state.json")]
    for path in running_files:
        _age(path, 30)
    link = os.path.join(logs, f"{PREFIX}link_9999903.log")
    os.symlink(str(outside), link)
    fresh = jobs.log("complete")
    before = sorted(os.listdir(logs)) + sorted(os.listdir(specs))

    for bad in ("0", "-2", "abc", "nan"):
        refused = run_cli("rmlogs", "--days", bad, "--experiments-dir", jobs.exp)
        assert refused.returncode == 2 and "--days must be a positive number" in refused.stderr
    assert run_cli("rmlogs", "--experiments-dir", jobs.exp).returncode == 2
    dry = run_cli("rmlogs", "--days", "7", "--dry-run", "--experiments-dir", jobs.exp)
    assert dry.returncode == 0, dry.stderr
    assert sorted(os.listdir(logs)) + sorted(os.listdir(specs)) == before
    listed = [line.split()[2] for line in dry.stdout.splitlines() if line.startswith("would delete ")]
    assert sorted(listed) == sorted(finished)
    assert dry.stdout.splitlines()[-1].startswith("Dry run: would delete 4 files")

    result = run_cli("rmlogs", "--days", "7", "--experiments-dir", jobs.exp)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1
    size = sum(len(text) for text in finished.values())
    assert summary.startswith(f"Deleted 4 files, freed {size} bytes, older than 7 days in {jobs.exp}")
    assert "skipped 1 symbolic link" in summary
    for path in finished:
        assert not os.path.exists(path)
    for path in list(kept) + running_files + [fresh, link]:
        assert os.path.lexists(path), path
    assert outside.read_text() == "not ours"
    assert jobs.state("running") is JobState.RUNNING


# -- ot-scancelall ---------------------------------------------------------------------------


def test_scancelall_refuses_without_a_terminal(jobs):
    result = run_cli("scancelall", "--name", PREFIX + "*")
    assert result.returncode == 2
    assert result.stdout.startswith("Will cancel ") and "--yes" in result.stderr
    for key in ("held", "running"):
        assert lines_of(jobs.ids[key], result.stdout), key
    for key in ("complete", "fail"):
        assert not lines_of(jobs.ids[key], result.stdout)
    assert jobs.state("held") is JobState.PENDING and jobs.state("running") is JobState.RUNNING


@pytest.mark.parametrize("filters, expected", [
    (["--state", "running"], {"running"}),
    (["--state", "pending", "--partition", "gpu"], {"held"}),
    (["--partition", "gpu"], {"held"}),
])
def test_scancelall_filters(jobs, filters, expected):
    result = run_cli("scancelall", "--name", PREFIX + "*", "--dry-run", *filters)
    assert result.returncode == 0, result.stderr
    shown = {key for key in ("held", "running", "toobig", "complete", "fail")
             if lines_of(jobs.ids[key], result.stdout)}
    assert shown == expected
    assert result.stdout.splitlines()[-1] == "Dry run: nothing cancelled."
    nothing = run_cli("scancelall", "--name", PREFIX + "no-such-job", "--yes")
    assert nothing.returncode == 0 and nothing.stdout.startswith("No jobs of root named")


def test_scancelall_asks_on_a_terminal_and_no_means_no(jobs):
    master, slave = pty.openpty()
    try:
        os.write(master, b"n\n")
        result = run_cli("scancelall", "--name", PREFIX + "held", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 0, result.stderr
    assert "Cancel this job? [y/N]" in result.stderr
    assert result.stdout.splitlines()[-1] == "Nothing cancelled."
    assert jobs.state("held") is JobState.PENDING


def test_scancelall_yes_cancels_exactly_the_selection(jobs):
    result = run_cli("scancelall", "--name", PREFIX + "running", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"Cancelled 1 job: {jobs.ids['running']}"
    jobs.wait_state("running", {JobState.CANCELLED}, timeout=60)
    assert jobs.state("held") is JobState.PENDING
    result = run_cli("scancelall", "--name", PREFIX + "*", "--state", "pending", "--yes")
    assert result.returncode == 0, result.stderr
    cancelled = result.stdout.splitlines()[-1]
    assert cancelled.startswith("Cancelled ") and str(jobs.ids["held"]) in cancelled.split()
    jobs.wait_state("held", {JobState.CANCELLED}, timeout=60)


# -- ot-scompleted / ot-sfail / ot-scancelled -------------------------------------------------


def _wait_in_history(command: str, job_id: int, *args: str) -> dict:
    def listed():
        result = run_cli(command, "--json", *args)
        assert result.returncode == 0, result.stderr
        mine = jobs_by_id(json.loads(result.stdout))
        return mine.get(job_id)

    return wait_for(listed, 90, f"job {job_id} in {command}", interval=1.0)


def test_scompleted(jobs):
    jobs.wait_state("complete", {JobState.COMPLETED})
    job = _wait_in_history("scompleted", jobs.ids["complete"], "--hours", "1")
    assert job["state"] == "COMPLETED" and job["exit_code"] == 0 and job["end_time"]
    result = run_cli("scompleted", "--hours", "1")
    assert result.returncode == 0, result.stderr
    row = lines_of(jobs.ids["complete"], result.stdout)[0].split()
    assert row[1:4] == [jobs.names["complete"], "COMPLETED", "0"]
    assert not lines_of(jobs.ids["fail"], result.stdout)
    assert "(from accounting)" in result.stdout.splitlines()[0]


def test_sfail_shows_exit_code_and_the_tail_of_an_out_log(jobs):
    jobs.wait_state("fail", {JobState.FAILED})
    job = _wait_in_history("sfail", jobs.ids["fail"], "--tail", "2", "--experiments-dir", jobs.exp)
    assert job["state"] == "FAILED" and job["exit_code"] == 3 and job["elapsed_seconds"] is not None
    assert job["log_path"] == jobs.log("fail", "out") and job["tail"] == ["step-1", "failing-now"]
    result = run_cli("sfail", "--tail", "1", "--experiments-dir", jobs.exp, "--since", date.today().isoformat())
    assert result.returncode == 0, result.stderr
    block = lines_of(jobs.ids["fail"], result.stdout)
    assert block[0].split()[1:4] == [jobs.names["fail"], "FAILED", "3"]
    assert block[1:] == [f"    | ==> {jobs.log('fail', 'out')} <==", "    | failing-now"]
    assert not lines_of(jobs.ids["complete"], result.stdout)
    assert all(len(line) <= 100 for line in result.stdout.splitlines())


def _fake_command(tmp_path, name: str, stderr: str) -> dict:
    """PATH with one Slurm command replaced by a script that fails with ``stderr``."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_sfail_without_accounting_falls_back_to_the_controller(jobs, tmp_path, monkeypatch):
    """The controller is real; only accounting is made absent (sacct fails as it does
    where AccountingStorageType=none). Our failed job ended minutes ago, within MinJobAge."""
    for key, value in _fake_command(tmp_path, "sacct", "sacct: error: Slurm accounting storage is disabled").items():
        monkeypatch.setenv(key, value)
    result = run_cli("sfail", "--json", "--tail", "1", "--experiments-dir", jobs.exp)
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("note: job accounting is not available")
    document = json.loads(result.stdout)
    assert document["source"] == "controller"
    failed = jobs_by_id(document)[jobs.ids["fail"]]
    assert failed["state"] == "FAILED" and failed["exit_code"] == 3 and failed["tail"] == ["failing-now"]
    assert jobs.ids["complete"] not in jobs_by_id(document)
    table = run_cli("sfail", "--experiments-dir", jobs.exp)
    assert table.returncode == 0 and len(table.stderr.splitlines()) == 1
    assert "(from controller)" in table.stdout.splitlines()[0]
    assert lines_of(jobs.ids["fail"], table.stdout)[0].split()[2:4] == ["FAILED", "3"]


def test_unreachable_controller_is_one_line_and_exit_1(tmp_path, monkeypatch):
    for key, value in _fake_command(
            tmp_path, "squeue", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)").items():
        monkeypatch.setenv(key, value)
    for command, args in (("status", []), ("scancelall", ["--name", PREFIX + "*", "--yes"]),
                          ("rmlogs", ["--days", "1", "--experiments-dir", str(tmp_path)])):
        result = run_cli(command, *args)
        assert result.returncode == 1, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr


def test_scancelled(jobs):
    job = _wait_in_history("scancelled", jobs.ids["running"], "--hours", "1")
    assert job["state"] == "CANCELLED"
    result = run_cli("scancelled", "--hours", "1")
    assert result.returncode == 0, result.stderr
    assert lines_of(jobs.ids["running"], result.stdout)[0].split()[2] == "CANCELLED"
    assert not lines_of(jobs.ids["fail"], result.stdout)


def test_scancelled_lists_jobs_cancelled_while_held(jobs):
    _wait_in_history("scancelled", jobs.ids["running"], "--hours", "1")
    result = run_cli("scancelled", "--json", "--hours", "1")
    assert jobs.ids["held"] in jobs_by_id(json.loads(result.stdout))


@pytest.mark.parametrize("command", ["sfail", "scompleted", "scancelled"])
@pytest.mark.parametrize("args", [["--hours", "0"], ["--hours", "x"], ["--since", "tomorrow"],
                                  ["--since", "2999-01-01"], ["--hours", "1", "--since", "2026-01-01"],
                                  ["--tail", "-1"]])
def test_history_bad_usage_exits_2(command, args):
    result = run_cli(command, *args)
    assert result.returncode == 2 and result.stdout == "" and result.stderr.strip()


def test_sfail_timeout_checked_last(jobs):
    jobs.wait_state("timeout", {JobState.TIMEOUT}, timeout=TIMEOUT_WAIT_SECONDS)
    job = _wait_in_history("sfail", jobs.ids["timeout"], "--tail", "5", "--experiments-dir", jobs.exp)
    assert job["state"] == "TIMEOUT" and job["elapsed_seconds"] >= 60
    assert job["log_path"] == jobs.log("timeout") and job["tail"][0] == "started"
    result = run_cli("sfail", "--experiments-dir", jobs.exp)
    row = lines_of(jobs.ids["timeout"], result.stdout)[0].split()
    assert row[2] == "TIMEOUT"
