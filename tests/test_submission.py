"""build -> dryrun -> schedule: the golden dry run, quoting round-trips, the spec file."""
from __future__ import annotations

import json
import os
import re
import shlex
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ot_hpc import submission
from ot_hpc.cli import submit as submit_cli
from ot_hpc.config.discovery import load_config
from ot_hpc.scheduler.base import JobRecord, JobRequest, JobState, Scheduler
from ot_hpc.monitor import wait
from ot_hpc.spec import read_spec, spec_to_json

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "gsm8k_tacc_vista_dryrun.txt"
NOW = datetime(2025, 3, 1, 14, 15, 2, tzinfo=timezone.utc)


class RecordingScheduler(Scheduler):
    """Records submissions; ``states`` is what get_job reports, one per poll."""

    name = "recording"

    def __init__(self, states=(), exit_code=0, fail=None):
        self.requests = []
        self.states = list(states)
        self.exit_code = exit_code
        self.fail = fail
        self.polls = 0

    def submit(self, request: JobRequest) -> int:
        if self.fail:
            raise self.fail
        self.requests.append(request)
        return 4242

    def get_job(self, job_id):
        self.polls += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return JobRecord(job_id=job_id, name="x", user="u", state=state, exit_code=self.exit_code)

    def list_jobs(self, user=None, account=None, include_finished=False):
        return []

    def list_finished_jobs(self, user, start, end, states=None):
        return []

    def cancel(self, job_id):
        pass

    def requeue(self, job_id):
        pass

    def release(self, job_id):
        pass


@pytest.fixture
def site(tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    secret = tmp_path / "secret.env"
    secret.write_text("WANDB_API_KEY=never-shown-wandb\nHF_TOKEN=never-shown-hf\n")
    secret.chmod(0o600)
    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    for name in ("train.parquet", "validation.parquet"):
        (tmp_path / "data" / "gsm8k" / name).write_text("x")
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (envs / "tacc.env").write_text(
        f"EXPERIMENTS_DIR={tmp_path}/exp\nDATASETS_DIR={tmp_path}/data\n"
        f"SECRET_ENV_PATH={secret}\nHF_HOME={tmp_path}/hf\nWANDB_PROJECT=OpenThoughts-Agent\n"
        f"PYTHON={python}\nNEEDS_TUNNEL=false\n")
    # SHUTDOWN_GRACE as envs/local.env has it: the local cluster's KillWait is 10 s.
    (envs / "local.env").write_text(f"EXPERIMENTS_DIR={tmp_path}/exp\nPYTHON={python}\nSHUTDOWN_GRACE=5\n")
    environ = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "OT_HPC_ENVS_DIR": str(envs), "SECRET_LOOKING_VAR": "must-not-leak",
               "HF_TOKEN": "login-shell-token"}
    return tmp_path, environ


def build(site, config_name, cli, overrides=()):
    tmp, environ = site
    config = load_config(config_name, cli, list(overrides), environ=environ, cwd=str(tmp))
    return submission.build(config, now=NOW, cwd=str(tmp), environ=environ, run_skyrl_check=False)


def normalized(text, tmp):
    lines = [line if not line.startswith("#   PYTHONPATH=") else "#   PYTHONPATH=<where ot_hpc is>"
             for line in text.split("\n")]
    text = "\n".join(lines).replace(str(tmp), "<TMP>").replace(str(REPO), "<REPO>")
    return re.sub(r"(_\d{8}T\d{6}Z)_[0-9a-f]{6}\.json", r"\1_<6 hex>.json", text)


def test_gsm8k_dry_run_matches_golden_file(site):
    tmp, _ = site
    request = build(site, "gsm8k.env", {"CLUSTER": "tacc_vista"})
    text = normalized(submission.dryrun(request), tmp)
    if os.environ.get("OT_HPC_UPDATE_GOLDEN") == "1" or not GOLDEN.exists():
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "dry run changed: review, then OT_HPC_UPDATE_GOLDEN=1"


def test_gsm8k_request_and_spec(site):
    tmp, _ = site
    request = build(site, "gsm8k.env", {"CLUSTER": "tacc_vista", "NUM_NODES": "3"})
    jr, spec = request.job_request, request.spec
    # Vista's nodes are whole: no GRES request, the GPU comes with the node (spec: 1 GPU).
    assert (jr.nodes, jr.partition, jr.account, jr.gpus_per_node, jr.cpus_per_task) == (
        3, "gh", "CCR24067", 0, 72)
    assert spec.gpus_per_node == 1 and len(jr.exclude_nodes) == 8
    assert jr.time_limit_minutes == 60 and jr.requeue  # MAX_RESTARTS=2
    assert jr.signal_spec == "B:USR2@300"
    assert jr.output_path == f"{tmp}/exp/logs/{jr.name}_%j.log"
    assert jr.name == "gsm8k-1.5b-3n-20250301-141502"
    assert re.fullmatch(
        re.escape(f"#!/bin/bash\nexec {tmp}/bin/python -m ot_hpc.runner "
                  f"{tmp}/exp/specs/{jr.name}_20250301T141502Z_") + r"[0-9a-f]{6}\.json\n",
        jr.script)
    assert "trainer.placement.policy_num_nodes=3" in spec.overrides
    assert "generator.inference_engine.num_engines=3" in spec.overrides
    assert spec.overrides[-1] == "trainer.resume_mode=latest"  # ckpt_path given by gsm8k.env
    assert spec.max_restarts == 2 and spec.secret_env_file == str(tmp / "secret.env")
    assert spec.environment["HF_HOME"] == f"{tmp}/hf"


def test_job_environment_is_explicit_and_secret_free(site):
    tmp, _ = site
    request = build(site, "gsm8k.env", {"CLUSTER": "tacc_vista"})
    env = request.job_request.environment
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "SLURM_CONF",
                        "PYTHONPATH", "OT_HPC_CLUSTER", "OT_HPC_ENVS_DIR"}
    assert env["OT_HPC_CLUSTER"] == "tacc_vista"
    everything = submission.dryrun(request) + json.dumps(request.spec.to_dict())
    for secret in ("never-shown-wandb", "never-shown-hf", "must-not-leak", "login-shell-token"):
        assert secret not in everything


WEIRD = [
    "plain",
    "with spaces and  double  spaces",
    "it's 'single' and \"double\" quotes",
    "dollar $HOME and ${NOT_EXPANDED} and `backticks` and $(cmd)",
    "[brackets, commas] {braces}",
    "new\nline\ttab",
    "back\\slash\\",
    "semi;colon && pipe | redirect > x",
    "unicode ünï €",
    "",
]


@pytest.mark.parametrize("value", WEIRD)
def test_cli_override_values_survive_exactly(site, value):
    tmp, _ = site
    argv_item = f"+trainer.note={value}"
    request = build(site, "demo.env", {"CLUSTER": "local"}, overrides=[argv_item])
    assert request.spec.overrides[-1] == argv_item
    # the spec is JSON, the runner passes it as an argv list: compare after a round trip
    spec_path = tmp / "spec.json"
    from ot_hpc.spec import write_spec
    write_spec(str(spec_path), request.spec)
    assert read_spec(str(spec_path)).trainer_argv()[-1] == argv_item
    # the dry run shows a shell line that a shell would split back into the same argv
    line = request.trainer_command()
    assert shlex.split(line) == request.spec.trainer_argv()


@pytest.mark.parametrize("value", [v for v in WEIRD if "\n" not in v and "${" not in v])
def test_env_file_override_values_survive_exactly(site, value):
    tmp, _ = site
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    (tmp / "weird.env").write_text(
        "CLUSTER=local\nNUM_NODES=1\nTIME_LIMIT=5\nGPUS_PER_NODE=0\n"
        "SKYRL_ENTRYPOINT=ot_hpc.demo_trainer\n"
        f"+trainer.note='{escaped}'\n")
    request = build(site, "weird.env", {})
    assert request.spec.overrides[-1] == f"+trainer.note={value}"


def test_mapped_paths_with_special_characters_are_hydra_quoted(site):
    tmp, _ = site
    odd = tmp / "odd dir" / "it's [v1]"
    odd.mkdir(parents=True)
    (odd / "train.parquet").write_text("x")
    request = build(site, "demo.env", {"CLUSTER": "local", "TRAIN_DATA": str(odd / "train.parquet")})
    escaped = str(odd / "train.parquet").replace("'", "\\'")
    assert request.spec.overrides[0] == f"data.train_data=['{escaped}']"


def test_dry_run_touches_nothing(site, capsys, monkeypatch):
    tmp, environ = site
    monkeypatch.setattr(os, "environ", dict(environ))
    monkeypatch.chdir(tmp)
    before = sorted(str(p) for p in tmp.rglob("*"))
    code = submit_cli.main(["--config", "demo.env", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("#!/bin/bash\n") and "#SBATCH --nodes=2" in out
    assert "#SBATCH --partition=debug" in out and "-m ot_hpc.runner" in out
    assert sorted(str(p) for p in tmp.rglob("*")) == before


def test_bad_input_exits_2_with_one_line_per_problem(site, capsys, monkeypatch):
    tmp, environ = site
    monkeypatch.setattr(os, "environ", dict(environ))
    monkeypatch.chdir(tmp)
    code = submit_cli.main(["--config", "demo.env", "--num-nodes", "9", "--time-limit", "1:30",
                            "--gpus-per-node", "x", "-S", "nodot"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4
    assert not (tmp / "exp").exists()


def test_unknown_cluster_and_missing_config_exit_2(site, capsys, monkeypatch):
    tmp, environ = site
    monkeypatch.setattr(os, "environ", dict(environ))
    monkeypatch.chdir(tmp)
    assert submit_cli.main(["--config", "nope.env", "--cluster", "local"]) == 2
    assert submit_cli.main(["--cluster", "jurecca", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "jsc_jureca" in err


def test_schedule_writes_spec_0600_and_submits(site):
    tmp, _ = site
    request = build(site, "demo.env", {"CLUSTER": "local"})
    scheduler = RecordingScheduler()
    submitted = submission.schedule(request, scheduler)
    assert submitted.job_id == 4242
    assert scheduler.requests == [request.job_request]
    mode = stat.S_IMODE(os.stat(request.spec_path).st_mode)
    assert mode == 0o600
    assert read_spec(request.spec_path) == request.spec
    logs = os.path.join(request.job.experiments_dir, "logs")
    assert os.path.isdir(logs)
    assert submitted.log_path == f"{logs}/{request.job.job_name}_4242.log"


def test_same_name_same_second_gets_distinct_specs(site):
    """Two submissions of one job name in one second must not share a spec file."""
    first = build(site, "demo.env", {"CLUSTER": "local", "JOB_NAME": "twin"}, ["+a.b=1"])
    second = build(site, "demo.env", {"CLUSTER": "local", "JOB_NAME": "twin"}, ["+a.b=2"])
    assert first.spec_path != second.spec_path
    assert re.fullmatch(r"twin_20250301T141502Z_[0-9a-f]{6}\.json",
                        os.path.basename(first.spec_path))
    one = submission.schedule(first, RecordingScheduler())
    two = submission.schedule(second, RecordingScheduler())
    assert "+a.b=1" in read_spec(one.spec_path).overrides
    assert "+a.b=2" in read_spec(two.spec_path).overrides


def test_write_spec_never_overwrites(site):
    from ot_hpc.spec import write_spec

    first = build(site, "demo.env", {"CLUSTER": "local"}, ["+a.b=1"])
    second = build(site, "demo.env", {"CLUSTER": "local"}, ["+a.b=2"])
    write_spec(first.spec_path, first.spec)
    with pytest.raises(FileExistsError):
        write_spec(first.spec_path, second.spec)
    assert read_spec(first.spec_path) == first.spec
    assert os.listdir(os.path.dirname(first.spec_path)) == [os.path.basename(first.spec_path)]
    assert stat.S_IMODE(os.stat(first.spec_path).st_mode) == 0o600


def test_ray_resources_reach_the_spec(site):
    request = build(site, "demo.env", {"CLUSTER": "local",
                                       "RAY_RESOURCES": '{"vllm_instance": 1}'})
    assert json.loads(request.spec.ray_resources) == {"vllm_instance": 1}
    assert "ray_resources" in json.loads(spec_to_json(request.spec))


def test_tacc_site_env_registers_the_vllm_instance_resource():
    from ot_hpc.envfile import read_env_file

    values = {k: v for k, v, _ in read_env_file(str(REPO / "envs" / "tacc.env")).bindings}
    assert json.loads(values["RAY_RESOURCES"]) == {"vllm_instance": 1}


def test_secret_interpolation_never_reaches_spec_or_dry_run(site):
    """The login shell's HF_TOKEN must not be pulled in by ${HF_TOKEN} (review fix 1)."""
    from ot_hpc.config.merge import format_config

    tmp, environ = site
    demo = (REPO / "envs" / "demo.env").read_text()
    (tmp / "leak.env").write_text(demo + "\n+trainer.wandb_run=${HF_TOKEN}\n")
    (tmp / "fine.env").write_text(demo + "\n+trainer.wandb_run=${HOME}\n")
    assert build(site, "fine.env", {"CLUSTER": "local"}).spec  # the same, without a secret
    with pytest.raises(submission.ValidationFailed) as failed:
        build(site, "leak.env", {"CLUSTER": "local"})
    lines = [p.line() for p in failed.value.problems]
    assert len(lines) == 1 and "${HF_TOKEN}" in lines[0] and "SECRET_ENV_PATH" in lines[0]
    config = load_config("leak.env", {"CLUSTER": "local"}, [], environ=environ, cwd=str(tmp))
    assert "login-shell-token" not in format_config(config) + "\n".join(lines)


def test_failed_submission_leaves_no_spec(site):
    from ot_hpc.scheduler.base import SchedulerError

    request = build(site, "demo.env", {"CLUSTER": "local"})
    with pytest.raises(SchedulerError):
        submission.schedule(request, RecordingScheduler(fail=SchedulerError("refused")))
    assert not os.path.exists(request.spec_path)


def test_wait_backs_off_and_returns_the_result():
    sleeps = []
    scheduler = RecordingScheduler(states=[JobState.PENDING] * 6 + [JobState.RUNNING] * 4
                                   + [JobState.COMPLETED])
    record = wait.wait_for_job(scheduler, 1, sleep=sleeps.append)
    assert record.state is JobState.COMPLETED and wait.exit_code_for(record) == 0
    assert sleeps[0] == 2.0 and sleeps[1] == 3.0 and max(sleeps) <= 60
    assert sleeps[6] == 2.0  # a state change resets the delay
    failed = wait.wait_for_job(RecordingScheduler([JobState.FAILED], exit_code=3), 1,
                               sleep=lambda s: None)
    assert wait.exit_code_for(failed) == 3
    timeout = wait.wait_for_job(RecordingScheduler([JobState.TIMEOUT], exit_code=0), 1,
                                sleep=lambda s: None)
    assert wait.exit_code_for(timeout) == 1


def test_signal_is_capped_for_short_jobs(site):
    request = build(site, "demo.env", {"CLUSTER": "local", "TIME_LIMIT": "4"})
    assert request.job_request.signal_spec == "B:USR2@60"
    request = build(site, "demo.env", {"CLUSTER": "local", "SIGNAL_SECONDS": "0"})
    assert request.job_request.signal_spec is None


def test_import_is_cheap():
    import subprocess

    code = ("import sys, ot_hpc.cli.submit; "
            "bad = [m for m in ('sh', 'ray', 'hydra', 'dotenv', 'huggingface_hub') "
            "if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
