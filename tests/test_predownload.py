"""Login-node pre-download: planning (pure), fetching with the real huggingface_hub against
a fake Hub on 127.0.0.1 or a pre-populated cache, and ot-submit end to end.

No test reaches the network: the Hub is a tiny HTTP server on a loopback port serving the
four endpoints snapshot_download uses (repo info, tree, HEAD/GET resolve), or a closed
loopback port ("no network").
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ot_hpc import hftoken, submission
from ot_hpc.cli import submit as submit_cli
from ot_hpc.config.discovery import load_config
from ot_hpc.spec import read_spec
from ot_hpc.stage import fetch as stage_fetch
from ot_hpc.stage import plan as stage_plan
from ot_hpc.stage.errors import StageError
from ot_hpc.stage.plan import Download, classify_value, parse_hub_id
from ot_hpc.validate.run import validate

from .fakehub import FakeHub, write_offline_site
from .test_submission import RecordingScheduler

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 3, 1, 14, 15, 2, tzinfo=timezone.utc)
MODEL_SHA = "1" * 40
DATA_SHA = "2" * 40
TOKEN = "hf_only-in-the-secret-file"
HUB_REPOS = {
    ("model", "org/tiny-model"): {"sha": MODEL_SHA, "files": {
        "config.json": b'{"model_type": "tiny"}', "weights/model.safetensors": b"not really"}},
    ("dataset", "org/tiny-data"): {"sha": DATA_SHA, "files": {
        "data/train.parquet": b"PAR1", "README.md": b"# tiny"}},
    ("model", "org/gated-model"): {"sha": "3" * 40, "gated": True, "files": {}},
}


@pytest.fixture
def hub():
    server = FakeHub(HUB_REPOS)
    yield server
    server.close()


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on: the Hub is unreachable."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def no_proxies_no_offline(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def populate_cache(cache: Path, kind: str, repo_id: str, sha: str, files) -> Path:
    """Lay a snapshot out the way huggingface_hub does: blobs, snapshots/<sha>, refs/main."""
    storage = cache / stage_plan.repo_folder_name(repo_id, kind)
    snapshot = storage / "snapshots" / sha
    for name, content in files.items():
        blob = storage / "blobs" / hashlib.sha1(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(sha)
    return snapshot


# --------------------------------------------------------------------------------------
# Planning: which values are Hugging Face ids
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kind, expected", [
    ("Qwen/Qwen2.5-1.5B-Instruct", "model", "hub"),
    ("org/tiny-data", "dataset", "hub"),
    ("org/tiny-data:train", "dataset", "hub"),        # SkyRL's name:split
    ("org/tiny-data:train", "model", "invalid"),      # models have no split
    ("org/tiny-data:two words", "dataset", "invalid"),
    ("/abs/model", "model", "path"),
    ("./rel/model", "model", "path"),
    ("../up/model", "model", "path"),
    ("~/model", "model", "path"),
    ("org/train.parquet", "dataset", "path"),         # a data file, never an id
    ("data/val.JSONL", "dataset", "path"),
    ("a/b/c", "model", "invalid"),
    ("justaname", "dataset", "invalid"),
    ("-org/name", "model", "invalid"),
])
def test_classify_each_kind_of_value(tmp_path, text, kind, expected):
    assert classify_value(text, kind, str(tmp_path)) == expected


def test_an_existing_local_directory_named_like_an_id_is_local(tmp_path):
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert classify_value("org/name", "model", str(tmp_path)) == "path"
    assert classify_value("org/name", "model", str(tmp_path / "elsewhere")) == "hub"


def test_parse_hub_id():
    assert parse_hub_id("org/data:test", "dataset") == ("org/data", "test")
    assert parse_hub_id("org/model", "model") == ("org/model", "")
    assert parse_hub_id("/p/hub/models--org--model/snapshots/abc", "model") is None


def test_enabled_by_mode_and_cluster():
    from ot_hpc.clusters import get_cluster

    offline = get_cluster("local", {})  # as on JSC: no internet on the compute nodes
    online = replace(offline, compute_has_internet=True)
    assert not stage_plan.predownload_enabled("auto", online)
    assert stage_plan.predownload_enabled("auto", offline)
    assert stage_plan.predownload_enabled(None, offline)
    assert stage_plan.predownload_enabled("true", online)
    assert not stage_plan.predownload_enabled("false", offline)


def test_cache_dir_is_hf_hub_cache_else_hf_home_hub():
    assert stage_plan.hub_cache_dir({"HF_HUB_CACHE": "/c/hub", "HF_HOME": "/h"}) == "/c/hub"
    assert stage_plan.hub_cache_dir({"HF_HOME": "/h"}) == "/h/hub"
    assert stage_plan.hub_cache_dir({"MODELS_DIR": "/m"}) is None


@pytest.fixture
def world(tmp_path):
    envs = tmp_path / "envs"
    (envs / "clusters").mkdir(parents=True)
    (envs / "local.env").write_text("")
    # a cluster like JSC's: its compute nodes have no internet
    (envs / "clusters" / "offline.env").write_text(
        "CLUSTER_BASE=local\nCLUSTER_COMPUTE_HAS_INTERNET=false\n")
    # and one like TACC's: its compute nodes have internet
    (envs / "clusters" / "online.env").write_text(
        "CLUSTER_BASE=local\nCLUSTER_COMPUTE_HAS_INTERNET=true\n")
    (tmp_path / "local.parquet").write_text("x")
    environ = {"HOME": str(tmp_path / "home"), "OT_HPC_ENVS_DIR": str(envs), "PATH": "/bin"}
    return tmp_path, environ


BASE = {"NUM_NODES": "1", "TIME_LIMIT": "5", "GPUS_PER_NODE": "0",
        "SKYRL_ENTRYPOINT": "ot_hpc.demo_trainer"}


def validated(world, values, cluster="offline"):
    tmp, environ = world
    values = {"EXPERIMENTS_DIR": str(tmp / "exp"), **values}
    (tmp / "job.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    config = load_config("job.env", {"CLUSTER": cluster}, [], environ=environ, cwd=str(tmp))
    return validate(config, now=NOW, cwd=str(tmp), run_skyrl_check=False, environ=environ)


def plan_of(job, cluster=None):
    """The download plan of a validated job (what ``submission.build`` plans)."""
    return stage_plan.plan_downloads(job.mapped_values, job.hub_cache, job.environment,
                                     job.resolved_config.get("PREDOWNLOAD"), cluster or job.cluster)


def test_plan_lists_ids_and_skips_local_values(world):
    tmp = world[0]
    result = validated(world, {**BASE, "HF_HUB_CACHE": f"{tmp}/hub",
                               "MODEL_PATH": "org/tiny-model",
                               "TRAIN_DATA": f"org/tiny-data:train,{tmp}/local.parquet",
                               "VAL_DATA": "org/tiny-data:test"})
    assert result.ok, [p.line() for p in result.problems]
    assert not result.warnings
    plan = plan_of(result.job, result.job.cluster)
    cache = f"{tmp}/hub"
    assert plan == (
        Download("model", "org/tiny-model", "main", "MODEL_PATH", cache),
        Download("dataset", "org/tiny-data", "main", "TRAIN_DATA", cache, "train"),
        Download("dataset", "org/tiny-data", "main", "VAL_DATA", cache, "test"),
    )
    assert plan[1].key == plan[2].key  # one repo, one download
    assert not (tmp / "hub").exists()  # planning touches nothing


def test_plan_is_empty_when_off_local_or_verbatim(world):
    tmp = world[0]
    values = {**BASE, "HF_HUB_CACHE": f"{tmp}/hub", "MODEL_PATH": "org/tiny-model"}
    online = validated(world, values, cluster="online").job
    assert plan_of(online, online.cluster) == ()  # auto, has internet
    off = validated(world, {**values, "PREDOWNLOAD": "false"})
    assert plan_of(off.job, off.job.cluster) == ()
    assert any("PREDOWNLOAD=false" in w for w in off.warnings)  # the job reaches the Hub by tunnel
    forced = validated(world, {**values, "PREDOWNLOAD": "true"}, cluster="online").job
    assert [d.repo_id for d in plan_of(forced, forced.cluster)] == ["org/tiny-model"]
    (tmp / "model").mkdir()
    local = validated(world, {**values, "MODEL_PATH": "model",
                              "TRAIN_DATA": "\"['org/tiny-data']\""}).job
    assert local.mapped_values == {"MODEL_PATH": (str(tmp / "model"),)}  # Hydra list: verbatim
    assert plan_of(local, local.cluster) == ()


def test_cache_choice_and_validation_problems(world):
    tmp = world[0]
    values = {**BASE, "MODEL_PATH": "org/tiny-model"}
    # neither set by the site: huggingface_hub's own default, with a warning
    no_cache = validated(world, values)
    assert no_cache.ok and no_cache.job.hub_cache == f"{tmp}/home/.cache/huggingface/hub"
    assert any(w.startswith("PREDOWNLOAD: neither HF_HUB_CACHE") for w in no_cache.warnings)
    assert plan_of(no_cache.job)[0].cache_dir == no_cache.job.hub_cache
    with_home = validated(world, {**values, "HF_HOME": f"{tmp}/hf"})  # $HF_HOME/hub
    assert with_home.ok and with_home.job.hub_cache == f"{tmp}/hf/hub" and not with_home.warnings
    relative = validated(world, {**values, "HF_HUB_CACHE": "hub"})
    assert [p.field for p in relative.problems] == ["PREDOWNLOAD"]
    assert validated(world, {**values, "PREDOWNLOAD": "false"}).ok  # no download, no cache needed
    (tmp / "afile").write_text("x")
    unwritable = validated(world, {**values, "HF_HUB_CACHE": f"{tmp}/afile/hub"})
    assert [p.field for p in unwritable.problems] == ["PREDOWNLOAD"]
    bad = validated(world, {**values, "HF_HUB_CACHE": f"{tmp}/hub", "PREDOWNLOAD": "sometimes"})
    assert [p.field for p in bad.problems] == ["PREDOWNLOAD"]


def test_snapshots_replace_ids_in_the_overrides(world):
    tmp, environ = world
    values = {**BASE, "HF_HUB_CACHE": f"{tmp}/hub", "MODEL_PATH": "org/tiny-model",
              "TRAIN_DATA": f"org/tiny-data:train,{tmp}/local.parquet", "VAL_DATA": "org/tiny-data"}
    (tmp / "job.env").write_text("".join(f"{k}={v}\n" for k, v in
                                         {"EXPERIMENTS_DIR": str(tmp / "exp"), **values}.items()))
    config = load_config("job.env", {"CLUSTER": "offline"}, ["trainer.epochs=1"],
                         environ=environ, cwd=str(tmp))
    request = submission.build(config, now=NOW, cwd=str(tmp), environ=environ, run_skyrl_check=False)
    assert request.spec.overrides[:3] == (
        "trainer.policy.model.path=org/tiny-model",
        f"data.train_data=['org/tiny-data:train','{tmp}/local.parquet']",
        "data.val_data=['org/tiny-data']")
    snapshots = {d: f"/snap/{d.kind}" for d in request.downloads}
    local = submission.with_snapshots(request, snapshots)
    assert local.spec.overrides[:4] == (
        "trainer.policy.model.path=/snap/model",
        f"data.train_data=['/snap/dataset:train','{tmp}/local.parquet']",
        "data.val_data=['/snap/dataset']",
        "trainer.epochs=1")
    assert [o.text for o in local.job.overrides] == list(local.spec.overrides)
    assert local.job_request == request.job_request and local.spec_path == request.spec_path


def offline_cluster():
    from ot_hpc.clusters import get_cluster

    return replace(get_cluster("local", {}), compute_has_internet=False)


def test_plan_downloads_from_plain_values(tmp_path):
    mapped = {"MODEL_PATH": ("org/m",), "TRAIN_DATA": ("org/d:train", "/abs/local.parquet")}
    cache = str(tmp_path / "hub")
    plan = stage_plan.plan_downloads(mapped, None, {"HF_HUB_CACHE": cache}, None, offline_cluster())
    assert plan == (Download("model", "org/m", "main", "MODEL_PATH", cache),
                    Download("dataset", "org/d", "main", "TRAIN_DATA", cache, "train"))
    chosen = stage_plan.plan_downloads(mapped, "/chosen", {"HF_HUB_CACHE": cache}, "auto",
                                       offline_cluster())
    assert {d.cache_dir for d in chosen} == {"/chosen"}  # validation's choice wins
    assert stage_plan.plan_downloads(mapped, cache, {}, "false", offline_cluster()) == ()
    with pytest.raises(StageError) as failed:
        stage_plan.plan_downloads(mapped, None, {}, "true", offline_cluster())
    assert failed.value.exit_code == 2 and str(failed.value).startswith("MODEL_PATH=org/m: ")
    assert not (tmp_path / "hub").exists()


def test_localized_overrides_from_plain_values():
    from ot_hpc.config.merge import Override

    overrides = (Override("", "trainer.policy.model.path", "org/m", "MODEL_PATH"),
                 Override("", "data.train_data", "['org/d:train','/x.parquet']", "TRAIN_DATA"),
                 Override("+", "data.train_data", "kept", "-S"),
                 Override("", "trainer.epochs", "1", "-S"))
    mapped = {"MODEL_PATH": ("org/m",), "TRAIN_DATA": ("org/d:train", "/x.parquet")}
    model = Download("model", "org/m", "main", "MODEL_PATH", "/c")
    data = Download("dataset", "org/d", "main", "TRAIN_DATA", "/c", "train")
    snapshots = {model: "/snap/m", data: "/snap/d"}
    local = stage_plan.localized_overrides(overrides, mapped, (model, data), snapshots)
    assert [o.text for o in local] == ["trainer.policy.model.path=/snap/m",
                                       "data.train_data=['/snap/d:train','/x.parquet']",
                                       "+data.train_data=kept", "trainer.epochs=1"]
    harbor = stage_plan.localized_overrides(overrides, mapped, (model, data), snapshots,
                                            {data: ("/tasks/a", "/tasks/b")})
    assert harbor[1].text == "data.train_data=['/tasks/a','/tasks/b','/x.parquet']"
    assert stage_plan.localized_overrides(overrides, mapped, (), {}) == overrides


def test_hydra_quoting_has_one_home():
    from ot_hpc.hydra import hydra_list, hydra_quote, hydra_quote_always

    assert hydra_quote("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert hydra_quote("null") == "'null'" and hydra_quote("a b") == "'a b'"
    assert hydra_quote_always("it's\\") == "'it\\'s\\\\'"
    assert hydra_list(["a", "b c"]) == "['a','b c']"
    assert stage_plan.hydra_value("MODEL_PATH", ["/p q"]) == "'/p q'"
    assert stage_plan.hydra_value("VAL_DATA", ["/p"]) == "['/p']"


def test_token_keys_have_one_home():
    assert hftoken.TOKEN_KEYS == ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    assert hftoken.token_from({"HF_TOKEN": "a", "HUGGING_FACE_HUB_TOKEN": "b"}) == "a"
    assert hftoken.token_from({"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": "b"}) == "b"
    assert hftoken.token_from({"OTHER": "x"}) is None


def test_dry_run_lines_from_plain_values(tmp_path, monkeypatch):
    from ot_hpc.stage import run as staging

    cache = str(tmp_path / "hub")
    model = Download("model", "org/tiny-model", "main", "MODEL_PATH", cache)
    data = Download("dataset", "org/tiny-data", "main", "VAL_DATA", cache, "test")
    monkeypatch.setattr(staging, "huggingface_hub_available", lambda: True)
    lines = staging.predownload_lines((model, data), None, "jsc")
    assert lines[:2] == ["#", "# Pre-download (PREDOWNLOAD=auto: compute nodes of jsc have no internet):"]
    assert f"#   MODEL_PATH: model org/tiny-model -> {model.expected_snapshot()}" in lines
    assert "#   (<main>: the commit `main` points to when it is downloaded)" in lines
    assert lines[-1] == "#   (datasets not in the cache yet are checked after their download)"
    assert staging.predownload_lines((model,), " TRUE ", "jsc")[1] == "# Pre-download (PREDOWNLOAD=true):"
    assert staging.predownload_lines((), "true", "jsc") == []
    assert staging.harbor_lines((model,)) == []  # no dataset: nothing to extract
    snapshots, replacements = staging.expected_paths((model, data))
    assert snapshots == {model: model.expected_snapshot(), data: data.expected_snapshot()}
    assert replacements == {}
    assert staging.fetch_and_extract((), str(tmp_path / "unreadable-secret")) == ({}, {})
    assert not (tmp_path / "hub").exists()


# --------------------------------------------------------------------------------------
# Fetching with the real huggingface_hub (loopback only)
# --------------------------------------------------------------------------------------


def plan_for(cache, *items):
    return tuple(Download(kind, repo, "main", setting, str(cache), split)
                 for kind, repo, setting, split in items)


def test_fetch_downloads_from_the_hub_into_the_cache(huggingface_hub, hub, tmp_path):
    cache = tmp_path / "hub"
    plan = plan_for(cache, ("model", "org/tiny-model", "MODEL_PATH", ""),
                    ("dataset", "org/tiny-data", "TRAIN_DATA", "train"),
                    ("dataset", "org/tiny-data", "VAL_DATA", "test"))
    lines = []
    paths = stage_fetch.fetch(plan, token=TOKEN, endpoint=hub.url, report=lines.append)
    model_dir = cache / "models--org--tiny-model" / "snapshots" / MODEL_SHA
    data_dir = cache / "datasets--org--tiny-data" / "snapshots" / DATA_SHA
    assert paths == {plan[0]: str(model_dir), plan[1]: str(data_dir), plan[2]: str(data_dir)}
    assert (model_dir / "weights" / "model.safetensors").read_bytes() == b"not really"
    assert (data_dir / "data" / "train.parquet").read_bytes() == b"PAR1"
    assert all(auth == f"Bearer {TOKEN}" for _m, _p, auth in hub.requests)  # token= is used
    info_calls = [p for m, p, _a in hub.requests if "/revision/" in p]
    assert info_calls == ["/api/models/org/tiny-model/revision/main",
                          "/api/datasets/org/tiny-data/revision/main"]  # one download per repo
    assert not any(TOKEN in line for line in lines)
    assert stage_fetch.fetch(plan[:1], endpoint=hub.url) == {plan[0]: str(model_dir)}  # cached
    assert hub.requests[-1][2] is None  # no token: none sent (not even the login shell's)


def test_fetch_returns_a_prepopulated_snapshot_without_network(huggingface_hub, closed_port, tmp_path):
    cache = tmp_path / "hub"
    snapshot = populate_cache(cache, "model", "org/tiny-model", MODEL_SHA, {"config.json": b"{}"})
    plan = plan_for(cache, ("model", "org/tiny-model", "MODEL_PATH", ""))
    assert plan[0].cached_snapshot() == str(snapshot)
    assert stage_fetch.fetch(plan, endpoint=closed_port) == {plan[0]: str(snapshot)}


def test_missing_repo_without_network_is_one_line_exit_1(huggingface_hub, closed_port, tmp_path):
    plan = plan_for(tmp_path / "hub", ("model", "org/not-here", "MODEL_PATH", ""))
    with pytest.raises(StageError) as failed:
        stage_fetch.fetch(plan, endpoint=closed_port)
    message = str(failed.value)
    assert failed.value.exit_code == 1 and "\n" not in message
    assert message.startswith("MODEL_PATH=org/not-here: cannot reach") and "ConnectError" in message
    assert not (tmp_path / "hub").exists()


@pytest.mark.parametrize("kind, repo_id, split, expected", [
    ("dataset", "org/typo", "train", "TRAIN_DATA=org/typo:train: no dataset org/typo on http://"),
    ("model", "org/gated-model", "", "MODEL_PATH=org/gated-model: model org/gated-model is gated"),
])
def test_unknown_or_gated_repo_is_one_line_exit_2(huggingface_hub, hub, tmp_path, kind, repo_id,
                                                   split, expected):
    setting = "TRAIN_DATA" if kind == "dataset" else "MODEL_PATH"
    plan = plan_for(tmp_path / "hub", (kind, repo_id, setting, split))
    with pytest.raises(StageError) as failed:
        stage_fetch.fetch(plan, endpoint=hub.url)
    message = str(failed.value)
    assert failed.value.exit_code == 2 and "\n" not in message
    assert message.startswith(expected) and "HF_TOKEN" in message


def test_missing_huggingface_hub_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    plan = plan_for(tmp_path / "hub", ("model", "org/tiny-model", "MODEL_PATH", ""))
    with pytest.raises(StageError) as failed:
        stage_fetch.fetch(plan)
    assert failed.value.exit_code == 2 and "\n" not in str(failed.value)
    assert "pip install huggingface_hub" in str(failed.value) and "PREDOWNLOAD=false" in str(failed.value)
    assert stage_fetch.fetch(()) == {}  # nothing planned: nothing needed


def test_token_comes_from_the_secret_file_only(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text(f"WANDB_API_KEY=w\nHF_TOKEN='{TOKEN}'\n")
    assert stage_fetch.read_hf_token(str(secret)) == TOKEN
    secret.write_text("WANDB_API_KEY=w\n")
    assert stage_fetch.read_hf_token(str(secret)) is None
    assert stage_fetch.read_hf_token(None) is None


# --------------------------------------------------------------------------------------
# ot-submit end to end
# --------------------------------------------------------------------------------------


@pytest.fixture
def site(world, hub, monkeypatch):
    """An offline cluster whose site env points the HF cache at tmp/hub and HF_ENDPOINT at
    the fake Hub; a job config naming a model and a dataset by id."""
    tmp, environ = world
    write_offline_site(tmp, hub.url, TOKEN, f"TRAIN_DATA=org/tiny-data:train,{tmp}/local.parquet\n"
                       "VAL_DATA=org/tiny-data:test\n")
    monkeypatch.setattr(os, "environ", {**environ, "HF_TOKEN": "login-shell-token"})
    monkeypatch.chdir(tmp)
    scheduler = RecordingScheduler()
    monkeypatch.setattr(submit_cli, "scheduler_from_args", lambda args: scheduler)
    return tmp, hub, scheduler


def test_dry_run_downloads_nothing(site, capsys):
    tmp, hub, scheduler = site
    before = sorted(str(p) for p in tmp.rglob("*"))
    assert submit_cli.main(["--config", "job.env", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert hub.requests == [] and not (tmp / "hub").exists() and scheduler.requests == []
    assert sorted(str(p) for p in tmp.rglob("*")) == before
    model = f"{tmp}/hub/models--org--tiny-model/snapshots/<main>"
    data = f"{tmp}/hub/datasets--org--tiny-data/snapshots/<main>"
    assert "# Pre-download (PREDOWNLOAD=auto: compute nodes of offline have no internet):" in out
    assert f"#   MODEL_PATH: model org/tiny-model -> {model}\n" in out
    assert f"#   VAL_DATA: dataset org/tiny-data:test -> {data}:test\n" in out
    assert f"trainer.policy.model.path='{model}'" in out  # the spec as it would be written
    assert f"data.val_data=['{data}:test']" in out
    # with the model already in the cache the dry run shows its real snapshot
    snapshot = populate_cache(tmp / "hub", "model", "org/tiny-model", MODEL_SHA, {"config.json": b"{}"})
    assert submit_cli.main(["--config", "job.env", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"-> {snapshot}  (already in the cache)" in out and hub.requests == []
    assert f"trainer.policy.model.path={snapshot}" in out
    assert "huggingface_hub does not import here" not in out


def test_dry_run_says_when_huggingface_hub_is_missing(site, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert submit_cli.main(["--config", "job.env", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# Note: huggingface_hub does not import here" in out and "PREDOWNLOAD=false" in out
    assert submit_cli.main(["--config", "job.env"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pip install huggingface_hub" in errors[0]
    assert site[2].requests == [] and not (site[0] / "exp").exists()


def test_submission_downloads_then_writes_local_paths(site, capsys):
    tmp, hub, scheduler = site
    assert submit_cli.main(["--config", "job.env"]) == 0
    captured = capsys.readouterr()
    assert len(scheduler.requests) == 1 and hub.requests
    assert {auth for _m, _p, auth in hub.requests} == {f"Bearer {TOKEN}"}
    spec_path = next((tmp / "exp" / "specs").iterdir())
    spec = read_spec(str(spec_path))
    model = tmp / "hub" / "models--org--tiny-model" / "snapshots" / MODEL_SHA
    data = tmp / "hub" / "datasets--org--tiny-data" / "snapshots" / DATA_SHA
    assert spec.overrides[:3] == (
        f"trainer.policy.model.path={model}",
        f"data.train_data=['{data}:train','{tmp}/local.parquet']",
        f"data.val_data=['{data}:test']")
    assert spec.resolved_config["MODEL_PATH"] == "org/tiny-model"  # what was asked for
    everything = captured.out + captured.err + spec_path.read_text() + json.dumps(
        scheduler.requests[0].environment) + scheduler.requests[0].script
    assert TOKEN not in everything and "login-shell-token" not in everything
    assert f"MODEL_PATH: model org/tiny-model -> {model}" in captured.err


@pytest.mark.parametrize("change, code, expected", [
    ("MODEL_PATH=org/typo", 2, "MODEL_PATH=org/typo: no model org/typo on http://127.0.0.1:"),
    ("HF_ENDPOINT=closed", 1, "MODEL_PATH=org/tiny-model: cannot reach http://127.0.0.1:"),
])
def test_failed_download_stops_everything_with_one_line(site, capsys, closed_port, change, code,
                                                        expected):
    tmp, hub, scheduler = site
    key, value = change.split("=")
    if key == "HF_ENDPOINT":
        site_env = tmp / "envs" / "local.env"
        site_env.write_text(site_env.read_text().replace(hub.url, closed_port))
        assert submit_cli.main(["--config", "job.env"]) == code
    else:
        assert submit_cli.main(["--config", "job.env", f"--{key.lower().replace('_', '-')}",
                                value]) == code
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {expected}")
    assert errors[0].endswith("(nothing was written or submitted)")
    assert scheduler.requests == [] and not (tmp / "exp").exists()


def test_cli_flag_and_listing():
    parser = submit_cli.build_parser()
    assert parser.parse_args(["--predownload", "false"]).PREDOWNLOAD == "false"
    with pytest.raises(SystemExit):
        parser.parse_args(["--predownload", "maybe"])
    from ot_hpc.config.settings import format_settings_table

    assert "PREDOWNLOAD" in format_settings_table() and "--predownload" in format_settings_table()


def test_planning_modules_do_not_import_huggingface_hub():
    code = ("import sys, ot_hpc.cli.submit, ot_hpc.submission, ot_hpc.stage.plan, "
            "ot_hpc.stage.fetch, ot_hpc.stage.run; "
            "sys.exit(1 if 'huggingface_hub' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
