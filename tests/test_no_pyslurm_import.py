"""``import pyslurm`` only where the pyslurm backend is actually wanted.

Importing pyslurm starts libslurm (``slurm_init``: slurm.conf is read, and a wrong
``SLURM_CONF`` hangs for a minute), so help, ``--version`` with the cli backend, the
cli backend itself and ``ot-submit --dry-run`` with it must never do it. A fake
``pyslurm`` package first on ``PYTHONPATH`` writes a marker file when it is imported
(then fails like a pyslurm built for another Slurm); each command runs as a whole
process, as a user runs it.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO

FAKE_PYSLURM = '''\
import os
with open(os.environ["FAKE_PYSLURM_MARKER"], "a") as marker:
    marker.write("imported\\n")
raise ImportError("fake pyslurm (tests/test_no_pyslurm_import.py)")
'''


@pytest.fixture
def run_command(tmp_path):
    """Run ``python -m ot_hpc.cli.<command> args`` with the fake pyslurm importable;
    return (completed process, whether pyslurm was imported)."""
    fake_root = tmp_path / "fake"
    (fake_root / "pyslurm").mkdir(parents=True)
    (fake_root / "pyslurm" / "__init__.py").write_text(FAKE_PYSLURM)
    slurm_conf = tmp_path / "slurm.conf"  # exists: the backend's config check passes
    slurm_conf.write_text("# not read: the fake pyslurm stops before libslurm would\n")
    marker = tmp_path / "imported"

    def run(command, *args, backend="cli", slurm_conf_env=None):
        if marker.exists():
            marker.unlink()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake_root), REPO]),
                   OT_HPC_BACKEND=backend, FAKE_PYSLURM_MARKER=str(marker))
        if slurm_conf_env == "fake":
            env["SLURM_CONF"] = str(slurm_conf)
        result = subprocess.run([sys.executable, "-m", f"ot_hpc.cli.{command}", *args],
                                capture_output=True, text=True, env=env, cwd=str(tmp_path),
                                timeout=120)
        return result, marker.exists()

    return run


def test_the_fake_pyslurm_is_seen_where_pyslurm_is_wanted(run_command):
    # The control: auto (and an explicit --backend pyslurm) do import it, then fall back
    # (auto) or say why not (pyslurm), so the checks below can fail.
    result, imported = run_command("status", "--version", backend="auto", slurm_conf_env="fake")
    assert imported and "scheduler backend: cli" in result.stdout, result.stderr
    result, imported = run_command("status", "--version", "--backend", "pyslurm", slurm_conf_env="fake")
    assert imported and "fake pyslurm" in result.stdout, result.stderr


@pytest.mark.parametrize("command", ["status", "sfail", "scompleted", "scancelled",
                                     "scancelall", "rmlogs", "submit"])
@pytest.mark.parametrize("backend", ["cli", "auto", "pyslurm"])
def test_help_never_imports_pyslurm(run_command, command, backend):
    result, imported = run_command(command, "--help", backend=backend, slurm_conf_env="fake")
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
    assert not imported


@pytest.mark.parametrize("args,backend", [
    (["--version"], "cli"),
    (["--backend", "cli", "--version"], "auto"),
    (["--version", "--backend", "cli"], "auto"),  # --backend after --version counts too
    (["--version", "--backend=cli"], "pyslurm"),
])
def test_version_with_the_cli_backend_never_imports_pyslurm(run_command, args, backend):
    result, imported = run_command("status", *args, backend=backend, slurm_conf_env="fake")
    assert result.returncode == 0 and "scheduler backend: cli" in result.stdout, result.stderr
    assert not imported


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
@pytest.mark.parametrize("command,args,backend", [
    ("status", [], "cli"),
    ("status", ["--json"], "cli"),
    ("status", ["--backend", "cli"], "auto"),
    ("sfail", ["--hours", "1"], "cli"),
    ("scancelall", ["--name", "no-such-job-ot-import-test", "--dry-run"], "cli"),
])
def test_cli_backend_commands_never_import_pyslurm(run_command, command, args, backend):
    # The machine's own slurm.conf: these talk to the local cluster (read-only).
    result, imported = run_command(command, *args, backend=backend)
    assert result.returncode == 0, result.stderr
    assert not imported


def test_submit_dry_run_with_the_cli_backend_never_imports_pyslurm(run_command):
    result, imported = run_command("submit", "--config", os.path.join(REPO, "envs", "demo.env"),
                                   "--dry-run", backend="cli")
    assert result.returncode == 0, result.stderr
    assert "#SBATCH" in result.stdout and not imported
