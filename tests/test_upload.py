"""Upload of the final policy (UPLOAD_REPO): file selection, the decision (only after a
successful trainer), validation, the dry run, the real huggingface_hub upload path against
a fake Hub on 127.0.0.1, and the runner's upload phase (Runner.run with stubbed phases).

Loopback only: nothing here contacts the real Hub.
"""
from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pytest

from ot_hpc import submission, upload
from ot_hpc.config.discovery import load_config
from ot_hpc.runner import main as runner_main
from ot_hpc.runner.envload import load_environment
from ot_hpc.runner.jobenv import JobEnvironment
from ot_hpc.runner.joblog import JobLog
from ot_hpc.runstate import read_state
from ot_hpc.spec import JobSpec

from .fakehub import FakeHub
from .test_validate import BASE, NOW, SKYRL, fields, run, world  # noqa: F401 - fixture

TOKEN = "hf_upload-secret-token-value"
HF_FILES = ["README.md", "chat_template.jinja", "config.json", "generation_config.json",
            "merges.txt", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
            "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json",
            "tokenizer.model", "tokenizer_config.json", "vocab.json"]
NOT_HF = ["model_world_size_2_rank_0.pt", "optim_world_size_2_rank_1.pt",
          "extra_state_world_size_2_rank_0.pt", "fsdp_config.json", "trainer_state.pt", "data.pt",
          "pytorch_model.bin", "training_args.json", ".hidden.safetensors", "notes.txt"]


def make_export(root: Path, step: int, with_junk: bool = True) -> Path:
    """SkyRL's layout: <export_path>/global_step_<N>/policy/ (save_pretrained + tokenizer)."""
    policy = root / f"global_step_{step}" / "policy"
    policy.mkdir(parents=True)
    for name in HF_FILES:
        (policy / name).write_bytes(f"{name} of step {step}".encode())
    if with_junk:
        for name in NOT_HF:
            (policy / name).write_bytes(b"junk")
        (policy / "huggingface").mkdir()
        (policy / "huggingface" / "config.json").write_text("{}")
    return policy


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub():
    server = FakeHub(token=TOKEN)
    yield server
    server.close()


# ---- pure: file selection, export layout, decision -------------------------------------------
def test_select_upload_files_takes_only_hf_format_files(tmp_path):
    policy = make_export(tmp_path, 3)
    assert upload.select_upload_files(str(policy)) == sorted(HF_FILES)


def test_select_upload_files_in_an_empty_or_shard_only_directory(tmp_path):
    assert upload.select_upload_files(str(tmp_path)) == []
    (tmp_path / "model_world_size_1_rank_0.pt").write_bytes(b"x")
    (tmp_path / "tokenizer_rank_0.json").write_bytes(b"x")  # *_rank_* is never HF
    assert upload.select_upload_files(str(tmp_path)) == []


def test_resolve_takes_the_latest_step_or_the_directory_itself(tmp_path):
    make_export(tmp_path, 2)
    latest = make_export(tmp_path, 10)
    (tmp_path / "global_step_11" / "policy").mkdir(parents=True)  # being written: no config.json
    (tmp_path / "dumped_data").mkdir()
    assert upload.resolve_upload_dir(str(tmp_path)) == str(latest)
    assert upload.resolve_upload_dir(str(latest)) == str(latest)
    with pytest.raises(upload.UploadError, match="hf_save_interval"):
        upload.resolve_upload_dir(str(tmp_path / "nothing"))
    with pytest.raises(upload.UploadError, match="no Hugging Face export"):
        upload.resolve_upload_dir(str(tmp_path / "dumped_data"))


@pytest.mark.parametrize("repo, code, stopped, expected", [
    ("org/model", 0, False, True),
    ("org/model", 1, False, False),   # never after a failure
    ("org/model", 143, False, False),
    ("org/model", 0, True, False),    # nor when the job is being stopped
    ("", 0, False, False),            # not asked
    (None, 0, False, False),
])
def test_upload_decision(repo, code, stopped, expected):
    assert upload.should_upload(repo, code, stopped) is expected


def test_default_path_follows_export_path_override():
    assert upload.default_upload_path([]) == "${HOME}/exports"
    assert upload.default_upload_path(["trainer.export_path='/s/x y'", "a.b=1"]) == "/s/x y"
    assert upload.expand_path("${HOME}/exports", {"HOME": "/h"}) == "/h/exports"


@pytest.mark.parametrize("repo", ["org/model", "my-org/Qwen2.5-1.5B_grpo"])
def test_good_repo_ids(repo):
    assert upload.repo_id_problem(repo) is None


@pytest.mark.parametrize("repo", ["model", "a/b/c", "org/", "/m", "org/mo del", "org/a..b",
                                  "org/x.git", "-org/m"])
def test_bad_repo_ids(repo):
    assert upload.repo_id_problem(repo)


# ---- validation and the dry run --------------------------------------------------------------
def secret_file(tmp, text):
    path = tmp / "secret.env"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_upload_validation_problems_one_line_each(world):
    tmp = world[0]
    bad = run(world, {**BASE, "UPLOAD_REPO": "not a repo", "UPLOAD_PRIVATE": "maybe"})
    assert sorted(fields(bad)) == ["UPLOAD_PRIVATE", "UPLOAD_REPO", "UPLOAD_REPO"]
    assert all("\n" not in p.line() for p in bad.problems)
    no_token = run(world, {**BASE, "UPLOAD_REPO": "org/m",
                           "SECRET_ENV_PATH": secret_file(tmp, "WANDB_API_KEY=w_value\n")})
    assert fields(no_token) == ["UPLOAD_REPO"] and "HF_TOKEN" in no_token.problems[0].line()
    assert "w_value" not in no_token.problems[0].line()
    ok = run(world, {**BASE, "UPLOAD_REPO": "org/m", "UPLOAD_PRIVATE": "false",
                     "SECRET_ENV_PATH": secret_file(tmp, f"HF_TOKEN={TOKEN}\n")})
    assert ok.ok, [p.line() for p in ok.problems]
    assert (ok.job.upload_repo, ok.job.upload_private, ok.job.upload_path) == ("org/m", False,
                                                                               "${HOME}/exports")
    relative = run(world, {**BASE, "UPLOAD_REPO": "org/m", "UPLOAD_PATH": "rel/dir",
                           "SECRET_ENV_PATH": secret_file(tmp, f"HF_TOKEN={TOKEN}\n")})
    assert fields(relative) == ["UPLOAD_PATH"]


def test_skyrl_upload_needs_an_hf_export(world):
    tmp = world[0]
    secret = secret_file(tmp, f"HF_TOKEN={TOKEN}\n")
    values = {**BASE, **SKYRL, "UPLOAD_REPO": "org/m", "SECRET_ENV_PATH": secret}
    result = run(world, values)
    assert fields(result) == ["UPLOAD_REPO"] and "hf_save_interval" in result.problems[0].line()
    good = run(world, {**values, "trainer.hf_save_interval": "10",
                       "trainer.export_path": str(tmp / "exports")})
    assert good.ok and good.job.upload_path == str(tmp / "exports")
    assert run(world, {**values, "UPLOAD_PATH": str(tmp / "model")}).ok


def test_missing_huggingface_hub_in_the_runner_python_is_refused(world, monkeypatch):
    import sys

    tmp = world[0]
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    result = run(world, {**BASE, "UPLOAD_REPO": "org/m",
                         "SECRET_ENV_PATH": secret_file(tmp, f"HF_TOKEN={TOKEN}\n")})
    assert fields(result) == ["UPLOAD_REPO"] and "huggingface_hub" in result.problems[0].line()


def test_dry_run_shows_the_upload_plan(world):
    tmp, environ = world
    secret = secret_file(tmp, f"HF_TOKEN={TOKEN}\n")
    (tmp / "job.env").write_text("\n".join(f"{k}={v}" for k, v in {
        **BASE, "EXPERIMENTS_DIR": str(tmp / "exp"), "UPLOAD_REPO": "org/m",
        "SECRET_ENV_PATH": secret}.items()) + "\n")
    config = load_config("job.env", {"CLUSTER": "local"}, [], environ=environ, cwd=str(tmp))
    request = submission.build(config, now=NOW, cwd=str(tmp), environ=environ, run_skyrl_check=False)
    text = submission.dryrun(request)
    plan = [line for line in text.splitlines() if line.startswith("# Upload (UPLOAD_REPO):")]
    assert len(plan) == 1 and "org/m" in plan[0] and "private" in plan[0] and "exits 5" in plan[0]
    assert TOKEN not in text
    assert request.spec.upload_repo == "org/m" and request.spec.upload_private is True


# ---- the real huggingface_hub code path against the fake Hub ---------------------------------
def test_upload_sends_only_hf_files_with_the_token_as_bearer(huggingface_hub, hub, tmp_path):
    policy = make_export(tmp_path, 4)
    lines = []
    names, url = upload.run_upload(str(policy), "org/tiny-policy", True,
                                   {"HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url}, lines.append)
    assert names == sorted(HF_FILES) and "/org/tiny-policy/commit/" in url
    paths = [p for _m, p, _a in hub.requests]
    assert paths == ["/api/repos/create", "/api/validate-yaml", "/api/models/org/tiny-policy/preupload/main",
                     "/api/models/org/tiny-policy/commit/main"]
    assert all(auth == f"Bearer {TOKEN}" for _m, _p, auth in hub.requests)
    assert hub.created == [{"name": "tiny-policy", "organization": "org", "visibility": "private",
                            "type": "model"}]
    stored = hub.repos[("model", "org/tiny-policy")]["files"]
    assert sorted(stored) == sorted(HF_FILES)
    assert stored["config.json"] == b"config.json of step 4"
    assert not any(n in stored for n in NOT_HF)
    assert TOKEN not in " ".join(lines)
    # again into the existing repo (409 from create is fine): one more commit
    upload.run_upload(str(policy), "org/tiny-policy", True, {"HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url},
                      lines.append)
    assert len(hub.commits) == 2


def test_a_refused_token_is_one_line_without_the_token(huggingface_hub, hub, tmp_path):
    policy = make_export(tmp_path, 1, with_junk=False)
    with pytest.raises(upload.UploadError) as failed:
        upload.run_upload(str(policy), "org/m", True, {"HF_TOKEN": "hf_wrong-token-value",
                                                        "HF_ENDPOINT": hub.url}, lambda m: None)
    message = str(failed.value)
    assert "\n" not in message and "401" in message and "hf_wrong-token-value" not in message


def test_socks_proxy_without_socksio_says_so(huggingface_hub, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "socksio", None)
    policy = make_export(tmp_path, 1, with_junk=False)
    with pytest.raises(upload.UploadError) as failed:
        upload.run_upload(str(policy), "org/m", True, {
            "HF_TOKEN": TOKEN, "HF_ENDPOINT": "http://hub.invalid", "ALL_PROXY": "socks5h://127.0.0.1:9",
            "HTTPS_PROXY": "socks5h://127.0.0.1:9", "HTTP_PROXY": "socks5h://127.0.0.1:9"}, lambda m: None)
    assert "socksio" in str(failed.value)
    import os

    assert "ALL_PROXY" not in os.environ  # the job's proxy variables were only lent to the upload


def test_missing_huggingface_hub_at_run_time_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    policy = make_export(tmp_path, 1, with_junk=False)
    with pytest.raises(upload.UploadError, match="pip install huggingface_hub"):
        upload.run_upload(str(policy), "org/m", True, {"HF_TOKEN": TOKEN}, lambda m: None)


# ---- the runner's upload phase (Runner.run, other phases stubbed) ----------------------------
@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in runner_main.STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run_runner(tmp_path, monkeypatch, hub_url, trainer_code, repo="org/policy", export=True):
    exports = tmp_path / "exports"
    if export:
        make_export(exports, 2)
        make_export(exports, 5)
    secret = tmp_path / "secret.env"
    secret.write_text(f"HF_TOKEN={TOKEN}\n")
    secret.chmod(0o600)
    spec = JobSpec(job_name="up", cluster="local", num_nodes=1, experiments_dir=str(tmp_path / "exp"),
                   trainer_python="python3", entrypoint_module="ot_hpc.demo_trainer",
                   secret_env_file=str(secret), environment={"HF_ENDPOINT": hub_url},
                   upload_repo=repo, upload_private=True, upload_path=str(exports))
    job = JobEnvironment(job_id="77", job_name="up", nodes=("n1",), batch_node="n1",
                         cpus_per_node=(2,), gpus_per_node=0, restart_count=0)
    stream = io.StringIO()
    runner = runner_main.Runner(spec, job, {"PATH": "/bin", "HOME": str(tmp_path)}, JobLog(stream))

    def environment():
        loaded = load_environment(spec, runner.environ)  # the real secret loading + redactor
        runner.log.redactor = loaded.redactor
        runner.env = loaded.env
        runner.log.line("environment", f"HF_TOKEN is {loaded.env['HF_TOKEN']}")  # must be redacted

    def training():
        runner.state.update(phase="training")
        return trainer_code

    monkeypatch.setattr(runner, "phase_environment", environment)
    monkeypatch.setattr(runner, "phase_egress", lambda: None)
    monkeypatch.setattr(runner, "phase_ray", lambda: None)
    monkeypatch.setattr(runner, "phase_training", training)
    monkeypatch.setattr(runner_main.teardown, "shut_down", lambda _runner, _code, _message: [])
    code = runner.run()
    state = read_state(spec.state_path("77"))
    return code, stream.getvalue(), state


def test_runner_uploads_after_success(huggingface_hub, hub, tmp_path, monkeypatch, restore_signals):
    code, log, state = run_runner(tmp_path, monkeypatch, hub.url, 0)
    assert code == 0, log
    assert "[upload] begin" in log and "[upload] done in " in log
    assert "global_step_5/policy" in log and "uploaded 13 file(s) to org/policy" in log
    stored = hub.repos[("model", "org/policy")]["files"]
    assert sorted(stored) == sorted(HF_FILES) and stored["config.json"] == b"config.json of step 5"
    assert TOKEN not in log and "[redacted HF_TOKEN]" in log
    assert state.phase == "done" and "upload" in state.timings
    assert state.details["upload_files"] == 13


def test_runner_never_uploads_after_a_failing_trainer(hub, tmp_path, monkeypatch, restore_signals):
    code, log, state = run_runner(tmp_path, monkeypatch, hub.url, 3)
    assert code == 3
    assert hub.requests == []
    assert "[upload] skipped: the trainer exited with code 3" in log and "[upload] begin" not in log
    assert state.phase == "failed" and state.exit_code == 3


def test_runner_without_upload_repo_does_nothing(hub, tmp_path, monkeypatch, restore_signals):
    code, log, _state = run_runner(tmp_path, monkeypatch, hub.url, 0, repo=None)
    assert code == 0 and hub.requests == [] and "[upload]" not in log


def test_failed_upload_exits_5_in_one_line(huggingface_hub, tmp_path, monkeypatch, restore_signals):
    code, log, state = run_runner(tmp_path, monkeypatch, "http://127.0.0.1:9", 0)  # nothing listens
    assert code == upload.EXIT_UPLOAD == 5
    failed = [line for line in log.splitlines() if "[upload] failed after" in line]
    assert len(failed) == 1 and "the trainer succeeded but the upload failed" in failed[0]
    assert TOKEN not in log
    assert state.phase == "failed" and state.exit_code == 5


def test_missing_export_exits_5(hub, tmp_path, monkeypatch, restore_signals):
    code, log, _state = run_runner(tmp_path, monkeypatch, hub.url, 0, export=False)
    assert code == 5 and "nothing uploaded" in log and hub.requests == []


def test_spec_reads_without_upload_fields():
    data = json.loads(json.dumps(JobSpec(job_name="j", cluster="local", num_nodes=1, experiments_dir="/e",
                                         trainer_python="p", entrypoint_module="m").to_dict()))
    for key in ("upload_repo", "upload_private", "upload_path"):
        data.pop(key)
    spec = JobSpec.from_dict(data)  # an older spec still reads
    assert spec.upload_repo is None and spec.upload_private is True
