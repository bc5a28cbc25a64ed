"""Bad input through the real entry points (issue 13): every case in ``badinput_cases``
must end with exit code 2 and one line that names the field and the fix, with nothing
submitted (no job of the case's name in the queue, no spec), nothing deleted and nothing
half-written (the case's whole file tree is unchanged, and so is ``/`` for ot-rmlogs).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from ..conftest import REPO, _cluster_problem
from .badinput_cases import CASES, Case, _write

BASE_CONFIG = {"CLUSTER": "local", "NUM_NODES": "1", "TIME_LIMIT": "00:05:00", "PARTITION": "debug",
               "GPUS_PER_NODE": "0", "SKYRL_ENTRYPOINT": "ot_hpc.demo_trainer",
               "HOLD": "true"}  # held: a case that got through would not run
CLUSTER_UP = _cluster_problem() is None


def env_text(values):
    return "".join(f"{key}={value}\n" for key, value in values.items())


def make_tree(case: Case, tmp: Path, name: str) -> None:
    site = {"EXPERIMENTS_DIR": f"{tmp}/exp", "PYTHON": sys.executable,
            "SECRET_ENV_PATH": f"{tmp}/secret.env", "NEEDS_TUNNEL": "false", **case.site}
    _write(tmp / "envs" / "local.env", case.raw_site if case.raw_site is not None else env_text(site))
    _write(tmp / "secret.env", "HF_TOKEN=never-shown\n", 0o600)
    config = {**BASE_CONFIG, "JOB_NAME": name, **case.config}
    text = case.raw_config if case.raw_config is not None else env_text(config)
    if case.extra is not None:
        text = (text.encode() + case.extra) if isinstance(case.extra, bytes) else text + case.extra
    _write(tmp / "job.env", text)
    for directory in ("home", "xdg", "clusters"):
        (tmp / directory).mkdir()
    if case.prepare:
        case.prepare(tmp)


def snapshot(top: Path):
    """Every entry under ``top``: type, mode, size, mtime and content (never following links)."""
    seen = {}
    for root, dirs, files in os.walk(top):
        if root == os.path.join(top, "home"):  # ~/.cache/ot-hpc: the SkyRL detection's cache
            dirs[:] = [d for d in dirs if d != ".cache"]  # (not job state; written on the way)
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            seen[os.path.relpath(path, top)] = (info.st_mode, digest if digest else None)
    return seen


def command_for(case: Case, tmp: Path):
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    if case.command == "runner":
        return [sys.executable, "-m", "ot_hpc.runner", str(tmp / "spec.json")]
    if case.command == "ot-rmlogs":
        return [sys.executable, os.path.join(REPO, "bin", "ot-rmlogs"), *args]
    config = [] if "--config" in args else ["--config", "job.env"]
    return [sys.executable, os.path.join(REPO, "bin", "ot-submit"), *config, *args]


def run_case(case: Case, tmp: Path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONPATH": REPO,
           "HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "xdg"),
           "OT_HPC_ENVS_DIR": str(tmp / "envs"), "OT_HPC_CLUSTERS_DIR": str(tmp / "clusters"),
           "OT_HPC_EXPERIMENTS_DIR": str(tmp / "exp")}
    if "SLURM_CONF" in os.environ:
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]
    argv = command_for(case, tmp)
    if case.without_root_reads and os.getuid() == 0:  # root reads mode-000 files: not here
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]
    return subprocess.run(argv, cwd=str(tmp), env=env, capture_output=True, text=True,
                          timeout=120, errors="replace")


def queued(name: str) -> str:
    if not CLUSTER_UP:
        return ""
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True).stdout
    for job_id in out.split():
        subprocess.run(["scancel", job_id], capture_output=True)
    return out.strip()


@pytest.fixture
def case_dir():
    path = Path(tempfile.mkdtemp(prefix="ot-badinput-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_base_config_is_good(case_dir):
    good = Case("good", "", "")
    make_tree(good, case_dir, "badinput-good")
    result = subprocess.run(command_for(good, case_dir) + ["--dry-run"], cwd=str(case_dir),
                            env={**os.environ, "PYTHONPATH": REPO, "HOME": str(case_dir / "home"),
                                 "OT_HPC_ENVS_DIR": str(case_dir / "envs"),
                                 "OT_HPC_CLUSTERS_DIR": str(case_dir / "clusters")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_at_least_forty_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(case, case_dir):
    name = f"badinput-{case.id}-{uuid.uuid4().hex[:6]}"
    make_tree(case, case_dir, name)
    before = snapshot(case_dir)
    root_before = sorted(os.listdir("/"))
    result = run_case(case, case_dir)
    output = (result.stdout + result.stderr).strip()
    lines = output.splitlines()
    try:
        assert result.returncode == 2, output
        assert len(lines) == 1, output
        line = lines[0]
        assert case.field.lower() in line.lower(), f"the field {case.field} is not named: {line}"
        assert re.search(case.fix, line, re.IGNORECASE), f"no fix ({case.fix}) in: {line}"
        assert "never-shown" not in output and "hf_abcdef" not in output
        assert snapshot(case_dir) == before, "files were written, changed or deleted"
        assert sorted(os.listdir("/")) == root_before
    finally:
        assert queued(name) == "", f"a job was submitted: {output}"
