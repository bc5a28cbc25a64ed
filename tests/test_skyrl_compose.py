"""The generated overrides compose against SkyRL's real Hydra config.

Needs python3.12 (skyrl-train requires it): a venv with ``skyrl-train`` (no deps),
``hydra-core`` and ``omegaconf`` is created once and cached in ``.cache/skyrl-venv``.
Skipped, with the reason, when python3.12 is missing or the install fails (no network).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ot_hpc import skyrl_check, submission
from ot_hpc.config.discovery import load_config

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "skyrl-venv"
READY = VENV / ".ot-hpc-ready"
pytestmark = pytest.mark.slow


def find_python312():
    candidates = [os.environ.get("OT_HPC_PYTHON312"), shutil.which("python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates += ["/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            try:
                ok = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                                    capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                return candidate
    return None


@pytest.fixture(scope="session")
def skyrl_python():
    python = VENV / "bin" / "python"
    if READY.exists() and python.exists():
        return str(python)
    base = find_python312()
    if base is None:
        pytest.skip("python3.12 is not available (skyrl-train needs it)")
    shutil.rmtree(VENV, ignore_errors=True)
    steps = [
        [base, "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "skyrl-train"],
        [str(python), "-m", "pip", "install", "-q", "hydra-core==1.3.2", "omegaconf"],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"cannot install skyrl-train in a venv (network?): {tail}")
    READY.write_text("skyrl-train, hydra-core, omegaconf\n")
    return str(python)


@pytest.fixture
def site(tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    for name in ("train.parquet", "validation.parquet"):
        (tmp_path / "data" / "gsm8k" / name).write_text("x")
    secret = tmp_path / "secret.env"
    secret.write_text("WANDB_API_KEY=x\n")
    secret.chmod(0o600)
    for cluster_env in ("jsc.env", "tacc.env"):
        (envs / cluster_env).write_text(
            f"EXPERIMENTS_DIR={tmp_path}/exp\nDATASETS_DIR={tmp_path}/data\n"
            f"SECRET_ENV_PATH={secret}\nLOGIN_NODE=jrlogin05i\nACCOUNT=proj\n")
    environ = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "OT_HPC_ENVS_DIR": str(envs)}
    return tmp_path, environ


def build(site, cli, overrides=()):
    tmp, environ = site
    config = load_config("gsm8k.env", cli, list(overrides), environ=environ, cwd=str(tmp))
    return submission.build(config, now=datetime(2025, 3, 1, tzinfo=timezone.utc), cwd=str(tmp),
                            environ=environ)


@pytest.mark.parametrize("cluster", ["jsc_jureca", "tacc_vista", "tacc_lonestar"])
def test_gsm8k_overrides_compose(site, skyrl_python, cluster):
    request = build(site, {"CLUSTER": cluster, "TRAINER_PYTHON": skyrl_python, "SKYRL_CHECK": "true"})
    result = skyrl_check.compose_overrides(skyrl_python, list(request.spec.overrides),
                                           echo_keys=["data.train_data", "trainer.policy.model.path",
                                                      "trainer.placement.policy_num_nodes"])
    assert result.ok, result.failures
    values = dict(result.values)
    tmp = site[0]
    assert values["data.train_data"] == [f"{tmp}/data/gsm8k/train.parquet"]
    assert values["trainer.policy.model.path"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert values["trainer.placement.policy_num_nodes"] == 2


def test_unknown_key_without_plus_is_caught_on_the_login_node(site, skyrl_python):
    with pytest.raises(submission.ValidationFailed) as caught:
        build(site, {"CLUSTER": "tacc_vista", "TRAINER_PYTHON": skyrl_python},
              overrides=["trainer.epochz=3", "+trainer.placement.colocate_all=false",
                         "generator.samplng_params.top_p=0.5"])
    lines = [p.line() for p in caught.value.problems]
    assert len(lines) == 3, lines
    epochz = next(line for line in lines if line.startswith("trainer.epochz"))
    assert "not in struct" in epochz and "+trainer.epochz" in epochz and "-S trainer.epochz" in epochz
    plus = next(line for line in lines if line.startswith("trainer.placement.colocate_all"))
    assert "drop the +" in plus
    assert any(line.startswith("generator.samplng_params.top_p") for line in lines)
    assert all("\n" not in line for line in lines)


def test_plus_prefixed_new_key_composes(site, skyrl_python):
    request = build(site, {"CLUSTER": "tacc_vista", "TRAINER_PYTHON": skyrl_python},
                    overrides=["+generator.engine_init_kwargs.max_model_len=4096",
                               "++trainer.seed=7"])
    assert "+generator.engine_init_kwargs.max_model_len=4096" in request.spec.overrides


def test_check_is_skipped_with_a_warning_where_skyrl_is_missing(site):
    request = build(site, {"CLUSTER": "tacc_vista", "TRAINER_PYTHON": sys.executable},
                    overrides=["trainer.epochz=3"])
    assert any("not checked" in w for w in request.warnings)


def test_check_required_but_unavailable_is_a_problem(site):
    with pytest.raises(submission.ValidationFailed) as caught:
        build(site, {"CLUSTER": "tacc_vista", "TRAINER_PYTHON": sys.executable, "SKYRL_CHECK": "true"})
    assert [p.field for p in caught.value.problems] == ["SKYRL_CHECK"]
