"""The generated overrides compose against skyrl-train 0.3.1's real Hydra config.

The venv (skyrl-train with --no-deps, hydra-core, omegaconf; Python 3.12) comes from
tests/skyrl_wheels.py: made by ``bash tools/dev.sh skyrl-venvs``; missing, the tests skip
with the reason, or fail under ``OT_HPC_REQUIRE_SKYRL=1`` (CI's Debian 12 lane).
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest

from ot_hpc import skyrl_check, submission
from ot_hpc.config.discovery import load_config
from tests.skyrl_wheels import skyrl_train_python as skyrl_python  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
CONFIG = "gsm8k-skyrl-train.env"


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
    environ = dict(environ, PATH=f"{sys.prefix}/bin:/usr/bin:/bin")
    config = load_config(CONFIG, cli, list(overrides), environ=environ, cwd=str(tmp))
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


def test_an_entrypoint_missing_from_trainer_python_is_one_line(site):
    with pytest.raises(submission.ValidationFailed) as caught:
        build(site, {"CLUSTER": "tacc_vista", "TRAINER_PYTHON": sys.executable},
              overrides=["trainer.epochz=3"])
    lines = [p.line() for p in caught.value.problems]
    assert len(lines) == 1 and lines[0].startswith("SKYRL_ENTRYPOINT='skyrl_train.entrypoints.main_base'")
    assert "does not exist in" in lines[0]


def test_check_required_but_unavailable_is_a_problem(site):
    with pytest.raises(submission.ValidationFailed) as caught:
        build(site, {"CLUSTER": "tacc_vista", "TRAINER_PYTHON": sys.executable, "SKYRL_CHECK": "true"})
    assert [p.field for p in caught.value.problems] == ["SKYRL_ENTRYPOINT", "SKYRL_CHECK"]
