"""ot-submit against the real local Slurm cluster (tools/local-cluster.sh start).

Jobs are submitted held (--hold) and cancelled by id right after the checks: the
runner is not needed, only the job description Slurm received.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .conftest import fake_trainer_python

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slurm

SECRET_VALUES = ("submittest-hf-secret", "submittest-wandb-secret", "submittest-shell-secret")


def ot_submit(args, cwd, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_HPC_")}
    env.update({"PYTHONPATH": str(REPO), "HF_TOKEN": SECRET_VALUES[2],
                "WANDB_API_KEY": SECRET_VALUES[2]})
    env.update(extra_env or {})
    return subprocess.run([sys.executable, str(REPO / "bin" / "ot-submit"), *args], cwd=str(cwd),
                          env=env, capture_output=True, text=True, timeout=120)


def state_save_location():
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    match = re.search(r"^StateSaveLocation\s*=\s*(\S+)", out, re.M)
    return match.group(1) if match else None


def job_environment(job_id):
    """The environment slurmctld stored for a pending batch job (None if unreadable)."""
    location = state_save_location()
    if not location:
        return None
    path = Path(location) / f"hash.{job_id % 10}" / f"job.{job_id}" / "environment"
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        text = item.decode("utf-8", "replace")
        if "=" in text and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", text):
            key, value = text.split("=", 1)
            env[key] = value
    return env


@pytest.fixture
def workdir(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text(f"HF_TOKEN={SECRET_VALUES[0]}\nWANDB_API_KEY={SECRET_VALUES[1]}\n")
    secret.chmod(0o600)
    return tmp_path


def submitted_id(output):
    match = re.search(r"^submitted job (\d+)", output, re.M)
    assert match, output
    return int(match.group(1))



# Slurm 24.11's sbatch adds MPI launcher settings to every job's environment (22.05 adds
# none): Slurm's, not ours, so they may appear beside what ot-submit gave.
SBATCH_ADDED_ENV = ("OMPI_MCA_plm_slurm_args", "PRTE_MCA_plm_slurm_args",
                    "HYDRA_LAUNCHER_EXTRA_ARGS", "HYDRA_BOOTSTRAP")
SBATCH_ADDED_ENV_PREFIXES = ("I_MPI_HYDRA_BOOTSTRAP",)


def added_by_sbatch(name: str) -> bool:
    return name in SBATCH_ADDED_ENV or name.startswith(SBATCH_ADDED_ENV_PREFIXES)

def test_demo_submits_one_held_job_with_the_right_description(slurm_cluster, workdir):
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    exp = workdir / "exp"
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--hold", "--job-name", name,
                        "--experiments-dir", str(exp), "--secret-env", str(workdir / "secret.env")],
                       cwd=workdir)
    assert result.returncode == 0, result.stderr
    job_id = submitted_id(result.stdout)
    try:
        show = subprocess.run(["scontrol", "show", "job", "-dd", str(job_id)],
                              capture_output=True, text=True, check=True).stdout
        assert f"JobName={name}" in show
        assert "NumNodes=2" in show and "Partition=debug" in show
        assert "TimeLimit=00:10:00" in show and "Reason=JobHeldUser" in show
        assert f"StdOut={exp}/logs/{name}_{job_id}.log" in show
        assert "Requeue=0" in show
        script = subprocess.run(["scontrol", "write", "batch_script", str(job_id), "-"],
                                capture_output=True, text=True, check=True).stdout
        assert script.startswith("#!/bin/bash\nexec ")
        assert " -m ot_hpc.runner " in script and f"{exp}/specs/{name}_" in script
        specs = list((exp / "specs").glob(f"{name}_*.json"))
        assert len(specs) == 1 and stat.S_IMODE(specs[0].stat().st_mode) == 0o600
        spec_text = specs[0].read_text()
        env = job_environment(job_id)
        for secret in SECRET_VALUES:
            assert secret not in show and secret not in script and secret not in spec_text
            if env is not None:
                assert all(secret not in v for v in env.values())
        if env is not None:
            assert env.get("OT_HPC_CLUSTER") == "local"
            assert "HF_TOKEN" not in env and "WANDB_API_KEY" not in env
            assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ",
                                "SLURM_CONF", "PYTHONPATH", "OT_HPC_CLUSTER"} | {
                                    k for k in env if k.startswith(("SLURM_", "ENVIRONMENT"))
                                    or added_by_sbatch(k)}
    finally:
        subprocess.run(["scancel", str(job_id)], capture_output=True)


def test_max_restarts_and_resources_reach_slurm(slurm_cluster, workdir):
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--hold", "--job-name", name,
                        "--experiments-dir", str(workdir / "exp"), "--max-restarts", "1",
                        "--num-nodes", "3", "--time-limit", "7", "--partition", "gpu",
                        "--gpus-per-node", "2", "--exclude-nodes", "n9"], cwd=workdir)
    # n9 does not exist: Slurm must refuse, with its own message, exit 1, and no spec left
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not list((workdir / "exp" / "specs").glob(f"{name}_*.json"))
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--hold", "--job-name", name,
                        "--experiments-dir", str(workdir / "exp"), "--max-restarts", "1",
                        "--num-nodes", "3", "--time-limit", "7", "--partition", "gpu",
                        "--gpus-per-node", "2"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    job_id = submitted_id(result.stdout)
    try:
        show = subprocess.run(["scontrol", "show", "job", "-dd", str(job_id)],
                              capture_output=True, text=True, check=True).stdout
        assert "NumNodes=3" in show and "Partition=gpu" in show and "TimeLimit=00:07:00" in show
        assert "Requeue=1" in show
        assert "gpu:2" in show or "gres/gpu=6" in show or "gres:gpu:2" in show
    finally:
        subprocess.run(["scancel", str(job_id)], capture_output=True)


def test_dry_run_writes_and_submits_nothing(slurm_cluster, workdir, current_user):
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    exp = workdir / "exp"
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--job-name", name,
                        "--experiments-dir", str(exp), "--dry-run"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --nodes=2" in result.stdout and "#SBATCH --partition=debug" in result.stdout
    assert not exp.exists()
    queue = subprocess.run(["squeue", "-h", "-u", current_user, "-o", "%j"], capture_output=True,
                           text=True).stdout
    assert name not in queue


def test_bad_input_exits_2_and_submits_nothing(slurm_cluster, workdir, current_user):
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--job-name", name,
                        "--experiments-dir", str(workdir / "exp"), "--num-nodes", "4",
                        "--time-limit", "2-00:00:00"], cwd=workdir)
    assert result.returncode == 2
    errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 2 and any("NUM_NODES" in e for e in errors)
    assert not (workdir / "exp").exists()


@pytest.mark.parametrize("flags, field, text", [
    (["--partition", "gpu", "--num-nodes", "4"], "NUM_NODES", "partition gpu's 3 nodes"),
    (["--partition", "gpu", "--time-limit", "3-00:00:00"], "TIME_LIMIT", "2880 minutes"),
    (["--partition", "nosuch"], "PARTITION", "choose one of debug, gpu"),
])
def test_partition_limits_come_from_slurm(slurm_cluster, workdir, current_user, flags, field, text):
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--job-name", name,
                        "--experiments-dir", str(workdir / "exp"), *flags], cwd=workdir)
    assert result.returncode == 2, result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {field}=") and text in errors[0]
    assert not (workdir / "exp").exists()
    queue = subprocess.run(["squeue", "-h", "-u", current_user, "-o", "%j"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert name not in queue


def test_wait_follows_a_job_to_its_end(slurm_cluster, workdir, monkeypatch):
    """--wait with a stand-in runner module (the real runner is another issue's)."""
    pkg = workdir / "fake" / "ot_hpc_fake"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    # A job config whose PYTHON is a tiny wrapper: exits 3 instead of running the runner.
    wrapper = workdir / "python-exit3"
    wrapper.write_text("#!/bin/sh\nexit 3\n")
    wrapper.chmod(0o755)
    started = time.monotonic()
    result = ot_submit(["--config", "demo.env", "--cluster", "local", "--job-name", name,
                        "--experiments-dir", str(workdir / "exp"), "--python", str(wrapper),
                        "--time-limit", "2", "--wait"], cwd=workdir)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAILED" in result.stdout
    assert time.monotonic() - started < 110


def test_predownload_on_dry_run_downloads_nothing_then_submits_snapshots(slurm_cluster, workdir):
    """PREDOWNLOAD=true with a fake Hub on 127.0.0.1: --dry-run sends no request and creates
    no cache; the real submission downloads (token from the secret file only) and the held
    job's spec names the local snapshots."""
    from .test_predownload import DATA_SHA, HUB_REPOS, MODEL_SHA, FakeHub

    hub = FakeHub(HUB_REPOS)
    name = f"submittest-{uuid.uuid4().hex[:8]}"
    exp, cache = workdir / "exp", workdir / "hub"
    (workdir / "job.env").write_text(
        "CLUSTER=local\nNUM_NODES=1\nTIME_LIMIT=5\nGPUS_PER_NODE=0\nNEEDS_TUNNEL=false\n"
        "SKYRL_ENTRYPOINT=ot_hpc.demo_trainer\nPREDOWNLOAD=true\nMODEL_PATH=org/tiny-model\n"
        f"TRAIN_DATA=org/tiny-data:train\nHF_HUB_CACHE={cache}\nHF_ENDPOINT={hub.url}\n"
        f"SECRET_ENV_PATH={workdir / 'secret.env'}\n")
    args = ["--config", "job.env", "--hold", "--job-name", name, "--experiments-dir", str(exp)]
    try:
        result = ot_submit([*args, "--dry-run"], cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert "# Pre-download (PREDOWNLOAD=true):" in result.stdout
        assert hub.requests == [] and not cache.exists() and not exp.exists()
        result = ot_submit(args, cwd=workdir)
        assert result.returncode == 0, result.stderr
        job_id = submitted_id(result.stdout)
        try:
            assert {auth for _m, _p, auth in hub.requests} == {f"Bearer {SECRET_VALUES[0]}"}
            spec_text = next((exp / "specs").glob(f"{name}_*.json")).read_text()
            model = cache / "models--org--tiny-model" / "snapshots" / MODEL_SHA
            data = cache / "datasets--org--tiny-data" / "snapshots" / DATA_SHA
            assert f"trainer.policy.model.path={model}" in spec_text
            assert f"data.train_data=['{data}:train']" in spec_text
            assert (model / "config.json").is_file()
            for secret in SECRET_VALUES:
                assert secret not in spec_text and secret not in result.stdout + result.stderr
        finally:
            subprocess.run(["scancel", str(job_id)], capture_output=True)
    finally:
        hub.close()


def test_list_configs_names_the_job_configs(tmp_path):
    repo = str(Path(__file__).resolve().parent.parent)
    (tmp_path / "mine.env").write_text("NUM_NODES=1\n")
    result = subprocess.run([sys.executable, "-m", "ot_hpc.cli.submit", "--list-configs"], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert "mine.env" in names and "gsm8k.env" in names and "demo.env" in names
    assert "jsc.env" not in names  # site env files are not job configs


def test_a_ray_without_token_auth_is_one_warning_line_or_refused(slurm_cluster, workdir):
    """TRAINER_PYTHON's Ray is 2.51.1 (skyrl-train 0.3.1's pin): one line naming the version
    and the risk; RAY_AUTH=required makes it an error (exit 2)."""
    old = fake_trainer_python(workdir / "oldray")
    base = ["--config", "demo.env", "--cluster", "local", "--experiments-dir", str(workdir / "exp"),
            "--trainer-python", str(old), "--dry-run"]
    cache = {"XDG_CACHE_HOME": str(workdir / "cache")}
    result = ot_submit(base, cwd=workdir, extra_env=cache)
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stderr.splitlines() if "2.51.1" in l]
    assert len(lines) == 1 and lines[0].startswith("warning: Ray 2.51.1"), result.stderr
    assert "no token authentication" in lines[0] and "run code as you" in lines[0]
    refused = ot_submit(base + ["--ray-auth", "required"], cwd=workdir, extra_env=cache)
    assert refused.returncode == 2
    errors = [l for l in refused.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: RAY_AUTH="), refused.stderr
