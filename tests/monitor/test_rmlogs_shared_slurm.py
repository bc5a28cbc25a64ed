"""ot-rmlogs against the real local cluster, on an experiments directory another cluster
(jsc_juwels) shares: the files of a job that may still be queued there are kept, those far
past any time limit are deleted, and this cluster's own jobs follow its controller."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import pytest

from ..conftest import REPO
from .test_shared_fs import spec_text

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

DAY = 86400.0


def run(*argv, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_HPC_")}
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_rmlogs_keeps_another_clusters_live_job_on_a_shared_directory(tmp_path):
    exp = tmp_path / "exp"
    tag = uuid.uuid4().hex[:6]
    held = run(os.path.join(REPO, "bin", "ot-submit"), "--config", "demo.env", "--hold",
               "--needs-tunnel", "false", "--job-name", f"held-{tag}", "--experiments-dir", str(exp),
               cwd=os.path.join(REPO, "envs"))
    match = re.search(r"submitted job (\d+)", held.stdout)
    assert match, held.stdout + held.stderr
    job_id = match.group(1)
    try:
        now = time.time()
        files = {  # relative path -> (content, kept?)
            f"specs/juwels-{tag}_20260101T000000Z_aaaaaa.json":
                (spec_text("jsc_juwels", now - 3600, name=f"juwels-{tag}"), True),
            f"logs/juwels-{tag}_{job_id}9.log": ("queued on juwels\n", True),
            f"specs/juwelsold-{tag}_20260101T000000Z_bbbbbb.json":
                (spec_text("jsc_juwels", now - 60 * DAY, name=f"juwelsold-{tag}"), False),
            f"logs/juwelsold-{tag}_77.log": ("long over\n", False),
            f"specs/localold-{tag}_20260101T000000Z_cccccc.json":
                (spec_text("local", now - 3600, name=f"localold-{tag}"), False),
            f"logs/localold-{tag}_78.log": ("not in this controller's queue\n", False),
        }
        for rel, (text, _) in files.items():
            path = exp / rel
            path.write_text(text)
            os.utime(path, (now - 30 * DAY, now - 30 * DAY))
        held_files = sorted(str(p) for p in (exp / "specs").glob(f"held-{tag}_*.json"))
        for path in held_files:
            os.utime(path, (now - 30 * DAY, now - 30 * DAY))
        result = run(os.path.join(REPO, "bin", "ot-rmlogs"), "--days", "7", "--experiments-dir", str(exp))
        assert result.returncode == 0, result.stderr
        assert "kept 2 files of jobs that may still be queued on another cluster" in result.stdout
        for rel, (_, kept) in files.items():
            assert (exp / rel).exists() is kept, rel
        assert held_files and all(os.path.exists(p) for p in held_files)  # pending here: kept
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)
