"""Validation: every rule failing alone, and all of them together."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from ot_hpc.config.discovery import load_config
from ot_hpc.scheduler.base import PartitionLimits
from ot_hpc.validate.run import validate
from .conftest import fake_trainer_python

NOW = datetime(2025, 3, 1, 14, 15, 2, tzinfo=timezone.utc)
BASE = {
    "NUM_NODES": "2",
    "TIME_LIMIT": "00:10:00",
    "SKYRL_ENTRYPOINT": "ot_hpc.demo_trainer",
    "GPUS_PER_NODE": "0",
}
SKYRL = {
    "SKYRL_ENTRYPOINT": "skyrl_train.entrypoints.main_base",
    "GPUS_PER_NODE": "4",
    "SKYRL_CHECK": "false",
    "trainer.logger": "console",
    "trainer.placement.policy_num_nodes": "2",
    "trainer.placement.policy_num_gpus_per_node": "4",
    "generator.num_inference_engines": "2",
    "generator.inference_engine_tensor_parallel_size": "4",
}


@pytest.fixture
def world(tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "local.env").write_text("")
    (tmp_path / "train.parquet").write_text("x")
    (tmp_path / "model").mkdir()
    (tmp_path / "afile").write_text("x")
    environ = {"HOME": str(tmp_path / "home"), "OT_HPC_ENVS_DIR": str(envs), "PATH": "/bin"}
    return tmp_path, environ


def run(world, values, cluster="local", drop=(), limits=None, ask_interpreters=False):
    tmp, environ = world
    merged = dict(values)
    merged.setdefault("EXPERIMENTS_DIR", str(tmp / "exp"))
    for key in drop:
        merged.pop(key, None)
    lines = [f"{k}={v}" if not k.startswith("#") else v for k, v in merged.items()]
    (tmp / "job.env").write_text("\n".join(lines) + "\n")
    config = load_config("job.env", {"CLUSTER": cluster}, [], environ=environ, cwd=str(tmp))
    return validate(config, now=NOW, cwd=str(tmp), run_skyrl_check=ask_interpreters, partition_limits=limits)


def fields(result):
    return [p.field for p in result.problems]


def test_baseline_is_valid(world):
    result = run(world, BASE)
    assert result.ok, [p.line() for p in result.problems]
    job = result.job
    assert (job.num_nodes, job.time_limit_minutes, job.partition, job.gpus_per_node) == (2, 10, "debug", 0)
    assert job.job_name == "job-2n-20250301-141502"
    assert job.experiments_dir == str(world[0] / "exp")


def test_skyrl_baseline_is_valid(world):
    result = run(world, {**BASE, **SKYRL})
    assert result.ok, [p.line() for p in result.problems]


CASES = [
    # (name, changes, keys to drop, expected field)
    ("nodes missing", {}, ("NUM_NODES",), "NUM_NODES"),
    ("nodes zero", {"NUM_NODES": "0"}, (), "NUM_NODES"),
    ("nodes over partition", {"NUM_NODES": "4"}, (), "NUM_NODES"),
    ("nodes not a number", {"NUM_NODES": "two"}, (), "NUM_NODES"),
    ("nodes float", {"NUM_NODES": "2.0"}, (), "NUM_NODES"),
    ("time missing", {}, ("TIME_LIMIT",), "TIME_LIMIT"),
    ("time ambiguous", {"TIME_LIMIT": "1:30"}, (), "TIME_LIMIT"),
    ("time garbage", {"TIME_LIMIT": "soon"}, (), "TIME_LIMIT"),
    ("time over max", {"TIME_LIMIT": "2-00:00:00"}, (), "TIME_LIMIT"),
    ("time zero", {"TIME_LIMIT": "0"}, (), "TIME_LIMIT"),
    ("gpus over node", {"GPUS_PER_NODE": "5"}, (), "GPUS_PER_NODE"),
    ("cpus zero", {"CPUS_PER_NODE": "0"}, (), "CPUS_PER_NODE"),
    ("memory not a number", {"MEMORY_PER_NODE_GB": "lots"}, (), "MEMORY_PER_NODE_GB"),
    ("hold not bool", {"HOLD": "maybe"}, (), "HOLD"),
    ("tunnel choice", {"NEEDS_TUNNEL": "sometimes"}, (), "NEEDS_TUNNEL"),
    ("restarts negative", {"MAX_RESTARTS": "-1"}, (), "MAX_RESTARTS"),
    ("entrypoint not a module", {"SKYRL_ENTRYPOINT": "not-a-module"}, (), "SKYRL_ENTRYPOINT"),
    ("skyrl home missing", {"SKYRL_HOME": "/nonexistent/skyrl"}, (), "SKYRL_HOME"),
    ("activation missing", {"ENV_ACTIVATE": "/nonexistent/activate"}, (), "ENV_ACTIVATE"),
    ("secret file missing", {"SECRET_ENV_PATH": "/nonexistent/secret.env"}, (), "SECRET_ENV_PATH"),
    ("python missing", {"PYTHON": "/nonexistent/python"}, (), "PYTHON"),
    ("trainer python missing", {"TRAINER_PYTHON": "/nonexistent/python"}, (), "TRAINER_PYTHON"),
    ("experiments under a file", {"EXPERIMENTS_DIR": "{tmp}/afile/exp"}, (), "EXPERIMENTS_DIR"),
    ("bad hostlist", {"EXCLUDE_NODES": "n[1-"}, (), "EXCLUDE_NODES"),
    ("ssh port", {"SSH_PORT": "70000"}, (), "SSH_PORT"),
    ("egress probe", {"EGRESS_PROBE": "nohost"}, (), "EGRESS_PROBE"),
    ("extra pythonpath", {"EXTRA_PYTHONPATH": "/nonexistent/src"}, (), "EXTRA_PYTHONPATH"),
    ("data file missing", {"TRAIN_DATA": "/nonexistent/train.parquet"}, (), "TRAIN_DATA"),
    ("model dir missing", {"MODEL_PATH": "/nonexistent/model"}, (), "MODEL_PATH"),
    ("mapped key twice", {"TRAIN_DATA": "{tmp}/train.parquet",
                          "data.train_data": "['{tmp}/train.parquet']"}, (), "TRAIN_DATA"),
    ("resume disabled with restarts", {"MAX_RESTARTS": "1", "trainer.resume_mode": "null"}, (),
     "trainer.resume_mode"),
    ("unknown key", {"NUM_NODE": "2"}, (), "NUM_NODE"),
    ("secret in config", {"HF_TOKEN": "hf_secret"}, (), "HF_TOKEN"),
    ("job name unusable", {"JOB_NAME": "///"}, (), "JOB_NAME"),
    ("undefined variable", {"SKYRL_HOME": "${UNDEFINED_THING}"}, (), "SKYRL_HOME"),
    ("ray resources not json", {"RAY_RESOURCES": "vllm_instance=1"}, (), "RAY_RESOURCES"),
    ("ray resources not an object", {"RAY_RESOURCES": "[1, 2]"}, (), "RAY_RESOURCES"),
    ("ray resources negative", {"RAY_RESOURCES": "'{\"vllm_instance\": -1}'"}, (),
     "RAY_RESOURCES"),
    ("ray resources not a number", {"RAY_RESOURCES": "'{\"vllm_instance\": \"one\"}'"}, (),
     "RAY_RESOURCES"),
]


@pytest.mark.parametrize("name,changes,drop,field", CASES, ids=[c[0] for c in CASES])
def test_each_rule_alone(world, name, changes, drop, field):
    tmp = world[0]
    values = {**BASE, **{k: v.replace("{tmp}", str(tmp)) for k, v in changes.items()}}
    result = run(world, values, drop=drop)
    assert not result.ok
    assert set(fields(result)) == {field}, [p.line() for p in result.problems]
    for problem in result.problems:
        line = problem.line()
        assert "\n" not in line and line.startswith(field) and "; " in line


SKYRL_CASES = [
    ("colocate product", {"generator.num_inference_engines": "1"}, "trainer.placement.colocate_all"),
    ("policy bigger than job", {"trainer.placement.policy_num_nodes": "3",
                                "generator.num_inference_engines": "3"},
     "trainer.placement.policy_num_nodes"),
    ("batch sizes", {"trainer.train_batch_size": "64"}, "trainer.train_batch_size"),
    ("wandb without secret file", {"trainer.logger": "wandb"}, "trainer.logger"),
    ("no gpus", {"GPUS_PER_NODE": "0"}, "GPUS_PER_NODE"),
]


@pytest.mark.parametrize("name,changes,field", SKYRL_CASES, ids=[c[0] for c in SKYRL_CASES])
def test_each_skyrl_rule_alone(world, name, changes, field):
    result = run(world, {**BASE, **SKYRL, **changes})
    assert field in fields(result), [p.line() for p in result.problems]
    assert all(p.field == field or p.field.startswith("trainer.") for p in result.problems)


def test_wandb_needs_key_in_secret_file_unless_offline(world):
    tmp = world[0]
    secret = tmp / "secret.env"
    secret.write_text("HF_TOKEN=hf_x\n")
    secret.chmod(0o600)
    values = {**BASE, **SKYRL, "trainer.logger": "wandb", "SECRET_ENV_PATH": str(secret)}
    result = run(world, values)
    assert fields(result) == ["trainer.logger"]
    assert "WANDB_API_KEY" in result.problems[0].line() and "hf_x" not in result.problems[0].line()
    secret.write_text("WANDB_API_KEY=w_secret\n")
    assert run(world, values).ok
    secret.write_text("HF_TOKEN=x\n")
    assert run(world, {**values, "WANDB_MODE": "offline"}).ok


def test_secret_file_readable_by_everyone_is_refused_by_its_group_a_warning(world):
    tmp = world[0]
    secret = tmp / "secret.env"
    secret.write_text("HF_TOKEN=x\n")
    secret.chmod(0o644)
    result = run(world, {**BASE, "SECRET_ENV_PATH": str(secret)})
    assert not result.ok and [p.field for p in result.problems] == ["SECRET_ENV_PATH"]
    assert "chmod 600" in result.problems[0].line()
    secret.chmod(0o640)
    result = run(world, {**BASE, "SECRET_ENV_PATH": str(secret)})
    assert result.ok and any("chmod 600" in w for w in result.warnings)


def test_ssh_key_readable_by_others_is_a_problem(world):
    tmp = world[0]
    key = tmp / "id_key"
    key.write_text("k")
    key.chmod(0o644)
    assert fields(run(world, {**BASE, "SSH_KEY": str(key)})) == ["SSH_KEY"]
    key.chmod(0o600)
    assert run(world, {**BASE, "SSH_KEY": str(key)}).ok


def test_cluster_rules_account_and_login_node(world):
    base = {**BASE, "SITE_ENV": "none"}
    assert fields(run(world, {**base, "NEEDS_TUNNEL": "false"}, cluster="leonardo")) == ["ACCOUNT"]
    assert fields(run(world, {**base, "ACCOUNT": "proj"}, cluster="leonardo")) == ["LOGIN_NODE"]
    assert run(world, {**base, "ACCOUNT": "proj", "LOGIN_NODE": "login01"}, cluster="leonardo").ok
    assert fields(run(world, {**base, "NEEDS_TUNNEL": "true", "LOGIN_NODE": ""})) == []  # local has one


def test_all_problems_at_once(world):
    tmp = world[0]
    changes = {}
    expected = set()
    for _name, change, drop, field in CASES:
        if drop or field in expected or field in ("TRAIN_DATA",) or set(change) & set(changes):
            continue
        changes.update({k: v.replace("{tmp}", str(tmp)) for k, v in change.items()})
        expected.add(field)
    changes["TRAIN_DATA"] = "/nonexistent/train.parquet"
    expected.add("TRAIN_DATA")
    result = run(world, {**BASE, **changes})
    assert not result.ok
    assert set(fields(result)) >= expected - {"NUM_NODES", "TIME_LIMIT"}
    assert len(result.problems) >= 20


def test_time_limit_forms(world):
    for text, minutes in (("90", 90), ("01:30:00", 90), ("0-12", 720), ("1-00:00:00", 1440),
                          ("00:00:30", 1), ("0-01:30", 90)):
        result = run(world, {**BASE, "TIME_LIMIT": text})
        assert result.ok and result.job.time_limit_minutes == minutes, text


def test_job_names_stay_strings_and_are_sanitized(world):
    assert run(world, {**BASE, "JOB_NAME": "123"}).job.job_name == "123"
    result = run(world, {**BASE, "JOB_NAME": "'my job/v1 (test)'"})
    assert result.job.job_name == "my-job-v1-test" and result.warnings


def test_generated_name_has_config_model_nodes_date(world):
    tmp = world[0]
    result = run(world, {**BASE, "MODEL_PATH": str(tmp / "model"), "NUM_NODES": "3"})
    assert result.job.job_name == "job-3n-20250301-141502"
    result = run(world, {**BASE, "MODEL_PATH": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert result.job.job_name == "job-1.5b-2n-20250301-141502"


def test_mapped_settings_and_restart_overrides(world):
    tmp = world[0]
    values = {**BASE, "TRAIN_DATA": "train.parquet", "VAL_DATA": f"{tmp}/train.parquet",
              "MODEL_PATH": "Qwen/Qwen2.5-1.5B-Instruct", "MAX_RESTARTS": "2",
              "JOB_NAME": "r", "trainer.epochs": "1"}
    job = run(world, values).job
    texts = [o.text for o in job.overrides]
    assert texts == [
        "trainer.policy.model.path=Qwen/Qwen2.5-1.5B-Instruct",
        f"data.train_data=['{tmp}/train.parquet']",
        f"data.val_data=['{tmp}/train.parquet']",
        "trainer.epochs=1",
        "trainer.resume_mode=latest",
        f"trainer.ckpt_path={tmp}/exp/checkpoints/r",
    ]
    job = run(world, {**values, "trainer.ckpt_path": "/mine", "trainer.resume_mode": "latest"}).job
    assert [o.text for o in job.overrides][-2:] == ["trainer.ckpt_path=/mine", "trainer.resume_mode=latest"]


def test_validation_writes_nothing(world):
    tmp = world[0]
    before = sorted(os.listdir(tmp))
    run(world, {**BASE, "EXPERIMENTS_DIR": str(tmp / "new" / "deep")})
    after = sorted(os.listdir(tmp))
    assert [p for p in after if p != "job.env"] == [p for p in before if p != "job.env"]


def test_ray_resources_are_carried_as_json(world):
    result = run(world, {**BASE, "RAY_RESOURCES": '{"vllm_instance": 1, "big": 0.5}'})
    assert result.ok, [p.line() for p in result.problems]
    assert json.loads(result.job.ray_resources) == {"vllm_instance": 1, "big": 0.5}
    assert run(world, BASE).job.ray_resources == ""


def test_shutdown_grace_defaults_to_15_seconds(world):
    assert run(world, BASE).job.shutdown_grace_seconds == 15


def test_shutdown_grace_and_signal_seconds_are_checked_against_the_clusters_killwait(world):
    small = PartitionLimits("debug", max_nodes=3, max_time_minutes=1440, kill_wait_seconds=10)
    fitted = run(world, BASE, limits=small)  # the built-in 15 s shrinks to what KillWait leaves
    assert fitted.ok and fitted.job.shutdown_grace_seconds == 5
    bad = run(world, {**BASE, "SHUTDOWN_GRACE": "15"}, limits=small)  # one the user chose: refused
    lines = [p.line() for p in bad.problems]
    assert len(lines) == 1 and "SHUTDOWN_GRACE" in lines[0] and "KillWait of 10 s" in lines[0]
    assert "set SHUTDOWN_GRACE to at most 5" in lines[0]
    good = run(world, {**BASE, "SHUTDOWN_GRACE": "5"}, limits=small)
    assert good.ok and good.job.kill_wait_seconds == 10  # carried into the spec
    late = run(world, {**BASE, "SHUTDOWN_GRACE": "5", "MAX_RESTARTS": "1", "SIGNAL_SECONDS": "5"},
               limits=small)
    lines = [p.line() for p in late.problems]
    assert len(lines) == 1 and "SIGNAL_SECONDS" in lines[0] and "at least 10" in lines[0]
    unknown = run(world, {**BASE, "SHUTDOWN_GRACE": "40"})  # KillWait unknown: a warning
    assert unknown.ok and any("KillWait is not known" in w for w in unknown.warnings)


@pytest.mark.parametrize("text, seconds", [("60", 3600), ("0", 0), ("0:30", 30), ("01:00:00", 3600)])
def test_trainer_idle_timeout_and_tunnel_down_limit_are_durations(world, text, seconds):
    job = run(world, {**BASE, "TRAINER_IDLE_TIMEOUT": text, "TUNNEL_DOWN_LIMIT": text}).job
    assert job.trainer_idle_timeout_seconds == seconds and job.tunnel_down_limit_seconds == seconds


def test_a_bad_idle_timeout_is_one_line(world):
    lines = [p.line() for p in run(world, {**BASE, "TRAINER_IDLE_TIMEOUT": "soon"}).problems]
    assert len(lines) == 1 and "TRAINER_IDLE_TIMEOUT" in lines[0] and "is not a duration" in lines[0]


def test_partition_limits_from_the_scheduler_apply_to_any_partition(world):
    gpu = PartitionLimits("gpu", max_nodes=3, max_time_minutes=2880)
    result = run(world, {**BASE, "PARTITION": "gpu", "NUM_NODES": "4"}, limits=gpu)
    lines = [p.line() for p in result.problems]
    assert fields(result) == ["NUM_NODES"] and "partition gpu's 3 nodes" in lines[0]
    assert "1..3" in lines[0] and "\n" not in lines[0]
    result = run(world, {**BASE, "PARTITION": "gpu", "TIME_LIMIT": "3-00:00:00"}, limits=gpu)
    assert fields(result) == ["TIME_LIMIT"] and "2880 minutes" in result.problems[0].line()
    assert run(world, {**BASE, "PARTITION": "gpu", "TIME_LIMIT": "2-00:00:00", "NUM_NODES": "3"},
               limits=gpu).ok


def test_partition_limits_unlimited_and_fallbacks(world):
    # No limits from the scheduler: a partition other than the cluster's default is unchecked,
    # the default one falls back to the registry's numbers (local: 3 nodes, 1 day).
    assert run(world, {**BASE, "PARTITION": "other", "NUM_NODES": "9"}).ok
    assert fields(run(world, {**BASE, "PARTITION": "debug", "NUM_NODES": "4"})) == ["NUM_NODES"]
    unlimited = PartitionLimits("other", max_nodes=None, max_time_minutes=None)
    assert run(world, {**BASE, "PARTITION": "other", "NUM_NODES": "9", "TIME_LIMIT": "9-00:00:00"},
               limits=unlimited).ok
    # Limits for another partition than PARTITION are ignored.
    assert run(world, {**BASE, "PARTITION": "other", "NUM_NODES": "9"},
               limits=PartitionLimits("gpu", max_nodes=1)).ok


def test_unknown_partition_names_the_ones_that_exist(world):
    missing = PartitionLimits("nosuch", exists=False, available=("debug", "gpu"))
    result = run(world, {**BASE, "PARTITION": "nosuch"}, limits=missing)
    assert fields(result) == ["PARTITION"]
    assert result.problems[0].line().endswith("no such partition on this cluster; choose one of debug, gpu")
    # Without a list, an unknown partition is left to Slurm.
    assert run(world, {**BASE, "PARTITION": "nosuch"}, limits=PartitionLimits("nosuch", exists=False)).ok


def _old_ray_python(tmp):
    """A TRAINER_PYTHON whose Ray is 2.51.1 (skyrl-train 0.3.1's pin)."""
    return fake_trainer_python(tmp / "oldray")


def test_ray_without_token_auth_warns_or_is_refused(world, monkeypatch):
    tmp = world[0]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    values = {**BASE, "TRAINER_PYTHON": _old_ray_python(tmp)}
    result = run(world, values, ask_interpreters=True)
    assert result.ok and result.job.ray_auth == "auto" and not result.job.ray_client_server
    lines = [w for w in result.warnings if "Ray 2.51.1" in w]
    assert len(lines) == 1 and "no token authentication" in lines[0] and "run code as you" in lines[0]
    refused = run(world, {**values, "RAY_AUTH": "required"}, ask_interpreters=True)
    assert fields(refused) == ["RAY_AUTH"]
    assert "Ray 2.51.1" in refused.problems[0].line() and "ray>=2.52" in refused.problems[0].line()
    assert fields(run(world, {**BASE, "RAY_AUTH": "sometimes"})) == ["RAY_AUTH"]


def test_ray_auth_settings_reach_the_job(world):
    result = run(world, {**BASE, "RAY_AUTH": "required", "RAY_CLIENT_SERVER": "true"}, ask_interpreters=True)
    assert result.ok, [p.line() for p in result.problems]  # this Python's Ray (2.60) has it
    assert result.job.ray_auth == "required" and result.job.ray_client_server is True
    assert not [w for w in result.warnings if "token authentication" in w]
