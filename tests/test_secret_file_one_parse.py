"""The secret env file is read by one parser on both sides: what ot-submit accepts, the
runner reads the same way, and what the runner would stop on, ot-submit refuses first."""
from __future__ import annotations

import pytest

from ot_hpc.envfile import env_file_values
from ot_hpc.runner.envload import load_environment
from ot_hpc.spec import JobSpec
from ot_hpc.stage.errors import StageError
from ot_hpc.stage.fetch import read_hf_token
from ot_hpc.validate.fields import Fields
from ot_hpc.validate.paths import _secret_keys

SECRET_TEXT = ("export HF_TOKEN='hf_${PREFIX}_one'\n# a comment\nWANDB_API_KEY=\"w a n d b\"\n"
               "HUGGING_FACE_HUB_TOKEN=${HF_TOKEN}\n")


def spec_with(secret, environment):
    return JobSpec(job_name="t", cluster="local", num_nodes=1, experiments_dir="/nonexistent",
                   trainer_python="python3", entrypoint_module="m", secret_env_file=str(secret),
                   environment=environment)


def test_login_node_and_runner_read_the_same_values(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text(SECRET_TEXT)
    secret.chmod(0o600)
    job_env = {"PREFIX": "p"}
    runner = load_environment(spec_with(secret, job_env), {"PATH": "/bin"}).env
    assert read_hf_token(str(secret), job_env) == runner["HF_TOKEN"] == "hf_p_one"
    assert env_file_values(str(secret), job_env)["WANDB_API_KEY"] == runner["WANDB_API_KEY"]
    assert runner["HUGGING_FACE_HUB_TOKEN"] == "hf_p_one"


class _Config:
    def value(self, key):
        return None

    def source(self, key):
        return ""


def test_a_line_the_runner_would_stop_on_is_refused_at_submission(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text("HF_TOKEN=ok\nthis line has 'no equals sign and an open quote\n")
    secret.chmod(0o600)
    fields = Fields(_Config(), str(tmp_path))
    assert _secret_keys(fields, str(secret)) is None
    (problem,) = fields.problems
    assert problem.field == "SECRET_ENV_PATH" and "line 2" in problem.message
    assert "open quote" not in problem.line()
    with pytest.raises(StageError, match=":2: cannot parse"):
        read_hf_token(str(secret))
    from ot_hpc.runner.joblog import PhaseError

    with pytest.raises(PhaseError, match=":2: cannot parse"):
        load_environment(spec_with(secret, {}), {"PATH": "/bin"})
