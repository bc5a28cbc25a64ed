"""The spec is the job's only input (with the secret file): what ot-submit resolved on the
login node is what the runner uses, whatever happens to the env files afterwards."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import pytest

from ot_hpc import submission
from ot_hpc.config.discovery import load_config
from ot_hpc.runner import main as runner_main
from ot_hpc.runner.envload import load_environment
from ot_hpc.spec import SPEC_VERSION, JobSpec, SpecVersionError, read_spec, write_spec

NOW = datetime(2025, 3, 1, 14, 15, 2, tzinfo=timezone.utc)


@pytest.fixture
def submitted(tmp_path):
    """A local-cluster job built from a site env file with ${SCRATCH}, ENV_ACTIVATE,
    EXTRA_PYTHONPATH and a secret file; its spec written as schedule() writes it."""
    envs = tmp_path / "envs"
    envs.mkdir()
    (tmp_path / "lib").mkdir()
    activate = tmp_path / "activate"
    activate.write_text("export ACTIVATED_BY=first\n")
    secret = tmp_path / "secret.env"
    secret.write_text("HF_TOKEN=hf_secret_value\n")
    secret.chmod(0o600)
    site = envs / "local.env"
    site.write_text(f"EXPERIMENTS_DIR={tmp_path}/exp\nPYTHON={sys.executable}\n"
                    f"HF_HOME=${{SCRATCH}}/hf\nENV_ACTIVATE={activate}\n"
                    f"EXTRA_PYTHONPATH={tmp_path}/lib\nSECRET_ENV_PATH={secret}\n")
    job = tmp_path / "job.env"
    job.write_text("NUM_NODES=1\nTIME_LIMIT=10\nSKYRL_ENTRYPOINT=ot_hpc.demo_trainer\n")
    environ = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "SCRATCH": "/scratch/login",
               "OT_HPC_ENVS_DIR": str(envs)}
    config = load_config(str(job), {"CLUSTER": "local"}, environ=environ, cwd=str(tmp_path))
    request = submission.build(config, now=NOW, cwd=str(tmp_path), environ=environ,
                               run_skyrl_check=False)
    write_spec(request.spec_path, request.spec)
    return tmp_path, site, activate, request.spec_path


def test_edits_after_submission_change_nothing(submitted):
    tmp, site, activate, spec_path = submitted
    # After submission: the site env file and the activation script change, and the
    # compute node's environment resolves ${SCRATCH} differently.
    site.write_text("HF_HOME=/elsewhere\nENV_ACTIVATE=/nonexistent\nSECRET_ENV_PATH=/nonexistent\n")
    (tmp / "other-activate").write_text("export ACTIVATED_BY=second\n")
    spec = read_spec(spec_path)
    loaded = load_environment(spec, {"PATH": "/usr/bin:/bin", "HOME": str(tmp),
                                     "SCRATCH": "/scratch/compute"})
    assert loaded.env["HF_HOME"] == "/scratch/login/hf"
    assert loaded.env["ACTIVATED_BY"] == "first"
    assert loaded.env["PYTHONPATH"].split(":")[0] == f"{tmp}/lib"
    assert loaded.env["HF_TOKEN"] == "hf_secret_value"
    assert spec.env_activate == str(activate)
    assert spec.cluster_facts["name"] == "local" and spec.cluster_facts["max_nodes"] == 3


def test_spec_names_no_file_the_runner_would_read_besides_the_secret_file(submitted):
    _tmp, site, _activate, spec_path = submitted
    data = json.loads(open(spec_path).read())
    assert "site_env_file" not in data
    assert data["version"] == SPEC_VERSION
    assert data["secret_env_file"].endswith("secret.env")
    assert str(site) not in json.dumps({k: v for k, v in data.items() if k != "resolved_config"})


@pytest.mark.parametrize("version, words", [
    (1, "submit the job again"), (SPEC_VERSION + 1, "newer than this runner"),
    (None, "submit the job again"), ("2", "submit the job again")])
def test_a_spec_of_another_version_is_refused_in_one_line(submitted, version, words):
    _tmp, _site, _activate, spec_path = submitted
    data = json.loads(open(spec_path).read())
    data["version"] = version
    with pytest.raises(SpecVersionError, match=words):
        JobSpec.from_dict(data)


def test_the_runner_exits_2_with_one_line_on_an_old_spec(submitted, tmp_path, capsys):
    _tmp, _site, _activate, spec_path = submitted
    data = json.loads(open(spec_path).read())
    data["version"] = 1
    data["python"] = data.pop("trainer_python")  # what a version-1 spec held
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert runner_main.main([str(old)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "schema version 1" in out[0] and "submit the job again" in out[0]


def test_the_runner_exits_2_on_a_truncated_spec(submitted, tmp_path, capsys):
    _tmp, _site, _activate, spec_path = submitted
    truncated = tmp_path / "truncated.json"
    truncated.write_text(open(spec_path).read()[:200])
    assert runner_main.main([str(truncated)]) == 2
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
