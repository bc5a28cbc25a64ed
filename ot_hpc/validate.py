"""Validation: every problem of a merged config at once, before anything is written.

:func:`validate` turns a :class:`~ot_hpc.config.MergedConfig` (strings with provenance)
into a :class:`ValidatedJob` (typed values) or a list of :class:`~ot_hpc.config.Problem`,
one line each naming the field, the value and the fix. It reads the filesystem (paths
that must exist on the shared filesystem) and may run SkyRL's Hydra composition in a
subprocess; it never writes, downloads or submits anything.
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import naming
from .clusters import Cluster
from .config import SETTINGS_BY_KEY, MergedConfig, Override, Problem, env_file_keys
from .durations import parse_time_limit_minutes
from .hostlist import expand_hostlist
from .predownload import (KINDS, classify_value, default_hub_cache, hub_cache_dir, hydra_value,
                          parse_hub_id, predownload_enabled)

MAX_SIGNAL_SECONDS = 65535  # Slurm's limit for --signal ...@<seconds>
_INT = re.compile(r"^[0-9]+$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# SkyRL's defaults (skyrl_train/config/ppo_base_config.yaml) for the rules that fail late.
SKYRL_DEFAULTS: Mapping[str, str] = {
    "trainer.placement.colocate_all": "true",
    "trainer.placement.policy_num_nodes": "1",
    "trainer.placement.policy_num_gpus_per_node": "4",
    "generator.num_inference_engines": "1",
    "generator.inference_engine_tensor_parallel_size": "4",
    "generator.inference_engine_pipeline_parallel_size": "1",
    "generator.inference_engine_data_parallel_size": "1",
    "trainer.train_batch_size": "1024",
    "trainer.policy_mini_batch_size": "256",
    "trainer.logger": "wandb",
    "trainer.resume_mode": "latest",
}
RESUME_OVERRIDE = "trainer.resume_mode"
CKPT_OVERRIDE = "trainer.ckpt_path"


@dataclass(frozen=True)
class ValidatedJob:
    """Everything ``build`` needs, typed. Overrides are final (mapped settings first,
    then the user's in order, then the ones ``MAX_RESTARTS`` adds)."""

    cluster: Cluster
    job_name: str
    num_nodes: int
    time_limit_minutes: int
    partition: Optional[str]
    account: Optional[str]
    qos: Optional[str]
    gpus_per_node: int
    cpus_per_node: Optional[int]
    memory_per_node_gb: Optional[int]
    exclude_nodes: Tuple[str, ...]
    experiments_dir: str
    max_restarts: int
    hold: bool
    signal_seconds: int
    entrypoint: str
    python: str
    trainer_python: str
    skyrl_home: Optional[str]
    site_env_file: Optional[str]
    secret_env_file: Optional[str]
    env_activate: Optional[str]
    conda_env: Optional[str]
    modules: str
    extra_pythonpath: str
    needs_tunnel: Optional[bool]
    login_node: Optional[str]
    ssh_port: int
    ssh_user: Optional[str]
    ssh_key: Optional[str]
    egress_probe: str
    ray_join_timeout_seconds: int
    shutdown_grace_seconds: int
    overrides: Tuple[Override, ...]
    environment: Mapping[str, str]
    resolved_config: Mapping[str, str]
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # MODEL_PATH/TRAIN_DATA/VAL_DATA as items: absolute paths or Hugging Face ids (absent when
    # not set or given as a verbatim Hydra list); what ot_hpc.predownload plans from.
    mapped_values: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    # The HF hub cache the login-node pre-download uses (None: nothing to download).
    hub_cache: Optional[str] = None
    # UPLOAD_*: see ot_hpc.upload (upload_path: where the runner looks for the export).
    upload_repo: Optional[str] = None
    upload_private: bool = True
    upload_path: Optional[str] = None
    # RAY_RESOURCES: custom Ray resources, a JSON object text ("" = none).
    ray_resources: str = ""


@dataclass(frozen=True)
class PartitionLimits:
    """A partition's limits as the scheduler reports them (plain data: validation never
    talks to Slurm). ``exists=False``: the scheduler has no partition ``name``;
    ``available`` then lists the ones it has. None limits are unlimited."""

    name: str
    max_nodes: Optional[int] = None  # the most nodes one job can get (size, or per-job max)
    max_time_minutes: Optional[int] = None
    exists: bool = True
    available: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationResult:
    job: Optional[ValidatedJob]
    problems: Tuple[Problem, ...]
    warnings: Tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.job is not None


class _Checker:
    def __init__(self, config: MergedConfig, cwd: str) -> None:
        self.config = config
        self.cwd = cwd
        self.problems: List[Problem] = list(config.problems)
        self.warnings: List[str] = []

    # ---- helpers -----------------------------------------------------------------
    def value(self, key: str) -> Optional[str]:
        value = self.config.value(key)
        return None if value is None or value.strip() == "" else value.strip()

    def problem(self, key: str, message: str, fix: str, value: Optional[str] = "<same>") -> None:
        shown = self.config.value(key) if value == "<same>" else value
        self.problems.append(Problem(key, shown, message, fix, self.config.source(key)))

    def flag(self, key: str) -> str:
        setting = SETTINGS_BY_KEY[key]
        return f"{key}=... in the job config or {setting.flag}"

    def integer(self, key: str, low: int, high: Optional[int] = None,
                high_reason: str = "") -> Optional[int]:
        text = self.value(key)
        if text is None:
            return None
        if not _INT.match(text):
            self.problem(key, "is not a whole number", f"set {self.flag(key)} to digits only")
            return None
        number = int(text)
        if number < low:
            self.problem(key, f"must be at least {low}", f"set {self.flag(key)} to {low} or more")
            return None
        if high is not None and number > high:
            self.problem(key, f"is more than {high_reason or high}",
                         f"set {self.flag(key)} to {low}..{high}")
            return None
        return number

    def required(self, key: str) -> bool:
        if self.value(key) is None:
            setting = SETTINGS_BY_KEY[key]
            self.problem(key, "is missing", f"set {key}=<value> in the job config or "
                         f"{setting.flag} <value> ({setting.help})", value=None)
            return False
        return True

    def boolean(self, key: str) -> Optional[bool]:
        text = self.value(key)
        if text is None:
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.problem(key, "is not true/false", f"set {key} to true or false")
        return None

    def choice(self, key: str) -> Optional[str]:
        text = self.value(key)
        choices = SETTINGS_BY_KEY[key].choices
        if text is None:
            return None
        if text.lower() not in choices:
            self.problem(key, "is not a valid choice", f"use one of {', '.join(choices)}")
            return None
        return text.lower()

    def path(self, key: str, kind: str = "any", executable: bool = False) -> Optional[str]:
        """A path that must exist on the login node (shared filesystem); made absolute."""
        text = self.value(key)
        if text is None:
            return None
        path = os.path.abspath(os.path.join(self.cwd, os.path.expanduser(text)))
        if not os.path.exists(path):
            self.problem(key, f"{path} does not exist", "fix the path (it must exist on the "
                         "shared filesystem, as seen from this login node)")
            return None
        if kind == "dir" and not os.path.isdir(path):
            self.problem(key, f"{path} is not a directory", "point it at a directory")
            return None
        if kind == "file" and not os.path.isfile(path):
            self.problem(key, f"{path} is not a file", "point it at a file")
            return None
        if executable and not os.access(path, os.X_OK):
            self.problem(key, f"{path} is not executable", "point it at a Python interpreter")
            return None
        return path


def _override_map(overrides: Sequence[Override]) -> Dict[str, Override]:
    return {o.key: o for o in overrides}


def _data_items(text: str) -> Optional[List[str]]:
    """``a.parquet,b.parquet`` -> items; None when the value is a Hydra list already."""
    if text.lstrip().startswith("["):
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


def _group_or_other_readable(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def _check_data(checker: _Checker, key: str) -> Union[None, str, Tuple[str, ...]]:
    """TRAIN_DATA/VAL_DATA -> its items (absolute paths or Hugging Face ids, ``org/name`` or
    ``org/name:split``), or the text itself when it is a Hydra list (passed verbatim)."""
    text = checker.value(key)
    if text is None:
        return None
    items = _data_items(text)
    if items is None:
        return text  # a Hydra list as written: passed verbatim
    resolved = []
    for item in items:
        kind = classify_value(item, "dataset", checker.cwd)
        if kind == "path":
            path = os.path.abspath(os.path.join(checker.cwd, os.path.expanduser(item)))
            if not os.path.isfile(path) and not os.path.isdir(path):
                checker.problem(key, f"data file {path} does not exist",
                                "make the data first (e.g. SkyRL's examples/gsm8k/gsm8k_dataset.py)"
                                " or fix the path")
            resolved.append(path)
        elif kind == "hub":
            resolved.append(item)
        else:
            checker.problem(key, f"{item!r} is neither an existing path nor a Hugging Face id",
                            "give an absolute path (…/train.parquet), org/name or org/name:split")
    return tuple(resolved)


def _check_model(checker: _Checker) -> Optional[Tuple[str, ...]]:
    """MODEL_PATH -> (absolute directory,) or (Hugging Face id,)."""
    text = checker.value("MODEL_PATH")
    if text is None:
        return None
    kind = classify_value(text, "model", checker.cwd)
    if kind == "path":
        path = os.path.abspath(os.path.join(checker.cwd, os.path.expanduser(text)))
        if not os.path.isdir(path):
            checker.problem("MODEL_PATH", f"{path} is not a directory",
                            "give a model directory or a Hugging Face id (org/name)")
            return None
        return (path,)
    if kind != "hub":
        checker.problem("MODEL_PATH", "is neither an existing directory nor a Hugging Face id",
                        "give a model directory or org/name")
        return None
    return (text,)


def _check_hub_ids(checker: _Checker, cluster: Cluster, mapped_values: Mapping[str, Sequence[str]],
                   predownload: bool, environment: Mapping[str, str],
                   environ: Mapping[str, str]) -> Optional[str]:
    """Hugging Face ids on a cluster without internet: downloaded on the login node (into
    the cache returned here, which must be writable), or a warning that the job reaches the
    Hub only through the tunnel."""
    hub_items = [(key, item) for key, items in mapped_values.items() for item in items
                 if parse_hub_id(item, KINDS[key]) is not None]
    if not hub_items:
        return None
    if not predownload:
        if not cluster.compute_has_internet:
            for key, item in hub_items:
                checker.warnings.append(
                    f"{key}={item}: a Hugging Face id and PREDOWNLOAD=false; compute nodes of "
                    f"{cluster.name} reach the Hub only through the tunnel (PREDOWNLOAD=auto "
                    "downloads it on the login node and gives SkyRL the local snapshot)")
        return None
    first = f"{hub_items[0][0]}={hub_items[0][1]}"
    cache = hub_cache_dir(environment)
    if cache is None:
        cache, why = default_hub_cache(environ)
        checker.warnings.append(
            f"PREDOWNLOAD: neither HF_HUB_CACHE nor HF_HOME is set in the site env file or job "
            f"config, so {first} is downloaded into {cache} ({why}); compute nodes must see that "
            "directory (set HF_HUB_CACHE in the site env file to choose)")
    if not os.path.isabs(cache):
        checker.problem("PREDOWNLOAD", f"the HF cache {cache} (HF_HUB_CACHE/HF_HOME) is not an "
                        "absolute path", "set HF_HUB_CACHE=<absolute directory on the shared "
                        "filesystem>, or PREDOWNLOAD=false")
        return None
    probe = cache
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        checker.problem("PREDOWNLOAD", f"{first} is downloaded into {cache}, but {probe} is not "
                        "a writable directory", "set HF_HUB_CACHE to a directory you can write "
                        "on the shared filesystem, or PREDOWNLOAD=false")
        return None
    return cache


def _int_of(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    text = value.strip().strip("'\"")
    return int(text) if _INT.match(text) else None


def _skyrl_rules(checker: _Checker, overrides: Mapping[str, Override], num_nodes: Optional[int],
                 gpus_per_node: Optional[int], secret_keys: Optional[List[str]],
                 secret_path: Optional[str], environment: Mapping[str, str]) -> None:
    def get(key: str) -> Optional[str]:
        if key in overrides:
            return overrides[key].value
        return SKYRL_DEFAULTS.get(key)

    def src(*keys: str) -> str:
        sources = [overrides[k].source for k in keys if k in overrides]
        return ", ".join(sources) if sources else "SkyRL defaults"

    if gpus_per_node == 0:
        checker.problem("GPUS_PER_NODE", "is 0 but SkyRL trains on GPUs",
                        "set GPUS_PER_NODE to the GPUs per node (or use a CPU entrypoint)")
    policy_keys = ("trainer.placement.policy_num_nodes", "trainer.placement.policy_num_gpus_per_node")
    rollout_keys = ("generator.num_inference_engines",
                    "generator.inference_engine_tensor_parallel_size",
                    "generator.inference_engine_pipeline_parallel_size",
                    "generator.inference_engine_data_parallel_size")
    policy_nodes, policy_gpn = (_int_of(get(k)) for k in policy_keys)
    rollout = [_int_of(get(k)) for k in rollout_keys]
    if policy_nodes is not None and policy_gpn is not None:
        policy_gpus = policy_nodes * policy_gpn
        if (get("trainer.placement.colocate_all") or "").strip().lower() == "true" and all(
                r is not None for r in rollout):
            rollout_gpus = rollout[0] * rollout[1] * rollout[2] * rollout[3]  # type: ignore[operator]
            if policy_gpus != rollout_gpus:
                checker.problems.append(Problem(
                    "trainer.placement.colocate_all", "true",
                    f"policy GPUs {policy_nodes}x{policy_gpn}={policy_gpus} differ from rollout "
                    f"GPUs {'x'.join(str(r) for r in rollout)}={rollout_gpus}",
                    "make policy_num_nodes*policy_num_gpus_per_node equal num_inference_engines*"
                    "tensor*pipeline*data parallel sizes", src(*policy_keys, *rollout_keys)))
        if num_nodes is not None and gpus_per_node is not None:
            if policy_nodes > num_nodes or policy_gpn > gpus_per_node:
                checker.problems.append(Problem(
                    "trainer.placement.policy_num_nodes", f"{policy_nodes}x{policy_gpn}",
                    f"needs {policy_nodes} nodes x {policy_gpn} GPUs but the job has {num_nodes} "
                    f"x {gpus_per_node}",
                    "set trainer.placement.policy_num_nodes=${NUM_NODES} and "
                    "trainer.placement.policy_num_gpus_per_node=${GPUS_PER_NODE}",
                    src(*policy_keys)))
    train_batch = _int_of(get("trainer.train_batch_size"))
    mini_batch = _int_of(get("trainer.policy_mini_batch_size"))
    if train_batch is not None and mini_batch is not None and train_batch < mini_batch:
        checker.problems.append(Problem(
            "trainer.train_batch_size", str(train_batch),
            f"is smaller than trainer.policy_mini_batch_size={mini_batch}",
            "make train_batch_size >= policy_mini_batch_size (and a multiple of it)",
            src("trainer.train_batch_size", "trainer.policy_mini_batch_size")))
    logger = (get("trainer.logger") or "").lower()
    wandb_mode = (environment.get("WANDB_MODE") or "").lower()
    if "wandb" in logger and wandb_mode not in ("offline", "disabled"):
        if secret_path is None:
            checker.problems.append(Problem(
                "trainer.logger", get("trainer.logger"), "logs to W&B but no secret env file is set",
                "set SECRET_ENV_PATH to a file holding WANDB_API_KEY (or trainer.logger=console, "
                "or WANDB_MODE=offline)", src("trainer.logger")))
        elif secret_keys is not None and "WANDB_API_KEY" not in secret_keys:
            checker.problems.append(Problem(
                "trainer.logger", get("trainer.logger"),
                f"logs to W&B but {secret_path} has no WANDB_API_KEY",
                "add WANDB_API_KEY=... to that file (or trainer.logger=console)", src("trainer.logger")))


def _python_imports(python: Optional[str], modules: Sequence[str]) -> Optional[Dict[str, bool]]:
    """Which of ``modules`` import with ``python`` (None when that cannot be told)."""
    import importlib.util
    import subprocess
    import sys

    if not python:
        return None
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        found = {}
        for name in modules:
            try:
                found[name] = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found[name] = False
        return found
    code = ("import importlib.util as u, sys\n"
            "for m in sys.argv[1:]: print(m, u.find_spec(m) is not None)")
    try:
        done = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    found = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        found[name] = value.strip() == "True"
    return found if set(found) == set(modules) else None


def _check_upload(checker: _Checker, cluster: Cluster, python: Optional[str], is_skyrl: bool,
                  overrides: Sequence[Override], secret_path: Optional[str],
                  secret_keys: Optional[List[str]]) -> Tuple[Optional[str], bool, Optional[str]]:
    """UPLOAD_REPO/UPLOAD_PRIVATE/UPLOAD_PATH -> (repo, private, path to search on the node)."""
    from . import upload

    private = checker.boolean("UPLOAD_PRIVATE")
    repo = checker.value("UPLOAD_REPO")
    path = checker.value("UPLOAD_PATH")
    if repo is None:
        return None, True if private is None else private, None
    why = upload.repo_id_problem(repo)
    if why:
        checker.problem("UPLOAD_REPO", why, "write org/name, e.g. my-org/qwen-gsm8k-grpo")
    if secret_path is None and checker.value("SECRET_ENV_PATH") is None:
        checker.problem("UPLOAD_REPO", "needs HF_TOKEN but no secret env file is set",
                        "set SECRET_ENV_PATH to a file holding HF_TOKEN (with write access to "
                        f"{repo.split('/')[0]}), or unset UPLOAD_REPO")
    elif secret_keys is not None and upload.TOKEN_KEY not in secret_keys:
        checker.problem("UPLOAD_REPO", f"needs HF_TOKEN but {secret_path} has no HF_TOKEN",
                        "add HF_TOKEN=... (a write token) to that file, or unset UPLOAD_REPO")
    overrides_text = [o.text for o in overrides]
    if path is not None:
        if not (os.path.isabs(path) or path.startswith(("~", "$"))):
            checker.problem("UPLOAD_PATH", "is not an absolute path",
                            "give the export (or model) directory as an absolute path")
    elif is_skyrl:
        interval = upload.hf_save_interval(overrides_text)
        number = _int_of(interval) if interval is not None else None
        if number is None or number <= 0:
            checker.problem("UPLOAD_REPO", "uploads SkyRL's HF export, but SkyRL writes none "
                            f"(trainer.hf_save_interval={interval or '-1 (SkyRL default)'})",
                            "add trainer.hf_save_interval=<steps> (the final model is exported at "
                            "the end too), or set UPLOAD_PATH to a model directory", value=repo)
        path = upload.default_upload_path(overrides_text)
    else:
        path = upload.default_upload_path(overrides_text)
    found = _python_imports(python, ("huggingface_hub", "socksio"))
    if found is not None and not found.get("huggingface_hub"):
        checker.problem("UPLOAD_REPO", f"the runner's Python {python} cannot import huggingface_hub",
                        upload.INSTALL_HINT, value=repo)
    elif found is not None and not found.get("socksio") and not cluster.compute_has_internet:
        checker.warnings.append(
            f"UPLOAD_REPO={repo}: {cluster.name} compute nodes reach the Hub through the SOCKS "
            f"tunnel, and {python} cannot import socksio; {upload.SOCKS_HINT}")
    return repo, True if private is None else private, path


def _check_ray_resources(checker: _Checker) -> str:
    """RAY_RESOURCES: "" or a JSON object of resource name -> non-negative number; returned
    as compact JSON (what ``ray start --resources`` takes)."""
    text = checker.value("RAY_RESOURCES")
    if text is None:
        return ""
    fix = "write a JSON object of name -> number, e.g. RAY_RESOURCES='{\"vllm_instance\": 1}'"
    try:
        data = json.loads(text)
    except ValueError as exc:
        checker.problem("RAY_RESOURCES", f"is not JSON ({exc.args[0].split(':')[0]})", fix)
        return ""
    if not isinstance(data, dict):
        checker.problem("RAY_RESOURCES", "is not a JSON object", fix)
        return ""
    for name, amount in data.items():
        if not name.strip():
            checker.problem("RAY_RESOURCES", "has an empty resource name", fix)
            return ""
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                or amount < 0 or amount != amount or amount == float("inf"):
            checker.problem("RAY_RESOURCES", f"resource {name!r} is not a non-negative number",
                            fix)
            return ""
    return json.dumps(data, separators=(", ", ": ")) if data else ""


def validate(
    config: MergedConfig,
    now: Optional[datetime] = None,
    cwd: Optional[str] = None,
    run_skyrl_check: bool = True,
    environ: Optional[Mapping[str, str]] = None,
    partition_limits: Optional[PartitionLimits] = None,
) -> ValidationResult:
    """Check everything; return the typed job or every problem found. ``environ``: the
    login shell's environment (default ``os.environ``), for the default HF cache only.
    ``partition_limits``: PARTITION's limits from the scheduler (None: unknown; the
    cluster registry's numbers are used for its default partition)."""
    now = now or datetime.now(timezone.utc)
    checker = _Checker(config, cwd or os.getcwd())
    cluster = config.cluster
    partition = checker.value("PARTITION")
    # The partition's limits: the scheduler's (any partition) when given, else the
    # cluster registry's numbers, which describe only its default partition.
    max_nodes: Optional[int] = None
    max_time: Optional[int] = None
    if partition_limits is not None and partition is not None and partition_limits.name == partition:
        if partition_limits.exists:
            max_nodes, max_time = partition_limits.max_nodes, partition_limits.max_time_minutes
        elif partition_limits.available:
            checker.problem("PARTITION", "no such partition on this cluster",
                            f"choose one of {', '.join(partition_limits.available)}")
    elif partition is not None and partition == cluster.partition:
        max_nodes, max_time = cluster.max_nodes, cluster.max_time_minutes

    # --- Slurm resources ------------------------------------------------------------
    num_nodes = None
    if checker.required("NUM_NODES"):
        if max_nodes is not None:
            num_nodes = checker.integer("NUM_NODES", 1, max_nodes,
                                        f"partition {partition}'s {max_nodes} nodes")
        else:
            num_nodes = checker.integer("NUM_NODES", 1)
    time_limit = None
    if checker.required("TIME_LIMIT"):
        text = checker.value("TIME_LIMIT") or ""
        try:
            if re.fullmatch(r"\d+:\d+", text):
                raise ValueError("ambiguous")
            time_limit = parse_time_limit_minutes(text)
            if time_limit is None or time_limit < 1:
                raise ValueError("not limited")
        except ValueError as exc:
            time_limit = None
            hint = ("Slurm reads A:B as minutes:seconds; " if "ambiguous" in str(exc) else "")
            checker.problem("TIME_LIMIT", "is not a time limit",
                            f"{hint}write minutes (90), HH:MM:SS (01:30:00) or D-HH:MM:SS")
        if time_limit is not None and max_time is not None and time_limit > max_time:
            checker.problem("TIME_LIMIT", f"is longer than partition {partition}'s "
                            f"{max_time // 60}h{max_time % 60:02d}",
                            f"ask for at most {max_time} minutes")
            time_limit = None
    gpus_per_node = checker.integer("GPUS_PER_NODE", 0, cluster.gpus_per_node,
                                    f"the {cluster.gpus_per_node} GPUs of a {cluster.name} node")
    if checker.value("GPUS_PER_NODE") is None:
        gpus_per_node = 0
    cpus_per_node = checker.integer("CPUS_PER_NODE", 1, cluster.cpus_per_node,
                                    f"the {cluster.cpus_per_node} CPUs of a {cluster.name} node")
    memory_gb = checker.integer("MEMORY_PER_NODE_GB", 1, cluster.memory_per_node_gb,
                                f"the {cluster.memory_per_node_gb} GB of a {cluster.name} node")
    account = checker.value("ACCOUNT")
    if account is None and cluster.account_required:
        checker.problem("ACCOUNT", f"is required on {cluster.name}",
                        "set ACCOUNT=<your project> in the site env file or --account", value=None)
    exclude: Tuple[str, ...] = ()
    exclude_text = checker.value("EXCLUDE_NODES")
    if exclude_text:
        try:
            expand_hostlist(exclude_text)
            from .clusters import _split_commas_outside_brackets

            exclude = _split_commas_outside_brackets(exclude_text)
        except ValueError as exc:
            checker.problem("EXCLUDE_NODES", f"is not a Slurm hostlist ({exc})",
                            "write e.g. jwb[0059,0067],jwb0100")
    max_restarts = checker.integer("MAX_RESTARTS", 0, 100)
    hold = checker.boolean("HOLD")
    signal_seconds = checker.integer("SIGNAL_SECONDS", 0, MAX_SIGNAL_SECONDS)
    ssh_port = checker.integer("SSH_PORT", 1, 65535)
    ray_join = checker.integer("RAY_JOIN_TIMEOUT", 1)
    grace = checker.integer("SHUTDOWN_GRACE", 0)
    ray_resources = _check_ray_resources(checker)
    needs_tunnel_text = checker.choice("NEEDS_TUNNEL")
    skyrl_check_mode = checker.choice("SKYRL_CHECK") or "auto"
    predownload_mode = checker.choice("PREDOWNLOAD") or "auto"

    # --- entrypoint and interpreters ---------------------------------------------------
    entrypoint = checker.value("SKYRL_ENTRYPOINT")
    if entrypoint is None:
        checker.required("SKYRL_ENTRYPOINT")
    elif not _MODULE.match(entrypoint):
        checker.problem("SKYRL_ENTRYPOINT", "is not a Python module name",
                        "write a dotted module, e.g. skyrl_train.entrypoints.main_base")
        entrypoint = None
    python = checker.path("PYTHON", "file", executable=True) if checker.value("PYTHON") else None
    if checker.value("PYTHON") is None:
        checker.required("PYTHON")
    trainer_python = python
    if checker.value("TRAINER_PYTHON"):
        trainer_python = checker.path("TRAINER_PYTHON", "file", executable=True)

    # --- paths on the shared filesystem ----------------------------------------------
    skyrl_home = checker.path("SKYRL_HOME", "dir")
    env_activate = checker.path("ENV_ACTIVATE", "file")
    secret_path = checker.path("SECRET_ENV_PATH", "file")
    secret_keys: Optional[List[str]] = None
    if secret_path is not None:
        if _group_or_other_readable(secret_path):
            checker.warnings.append(
                f"SECRET_ENV_PATH={secret_path} is readable by group or others: chmod 600 {secret_path}")
        try:
            secret_keys = env_file_keys(secret_path)  # names only: values are never read out
        except (OSError, UnicodeDecodeError) as exc:
            checker.problem("SECRET_ENV_PATH", f"cannot be read ({exc})", "fix its permissions")
    ssh_key = checker.path("SSH_KEY", "file")
    if ssh_key is not None and _group_or_other_readable(ssh_key):
        checker.problem("SSH_KEY", "is readable by group or others: ssh will refuse it",
                        f"chmod 600 {ssh_key}")
    extra_pythonpath = checker.value("EXTRA_PYTHONPATH") or ""
    for item in [p for p in extra_pythonpath.split(":") if p]:
        if not os.path.exists(os.path.expanduser(item)):
            checker.problem("EXTRA_PYTHONPATH", f"{item} does not exist", "fix or remove that entry")
    experiments_text = checker.value("EXPERIMENTS_DIR")
    experiments_dir = None
    if experiments_text is None:
        checker.required("EXPERIMENTS_DIR")
    else:
        experiments_dir = os.path.abspath(os.path.join(checker.cwd, os.path.expanduser(experiments_text)))
        probe = experiments_dir
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
            checker.problem("EXPERIMENTS_DIR", f"{probe} is not a writable directory",
                            "choose a directory you can write on the shared filesystem")
            experiments_dir = None

    # --- tunnel ----------------------------------------------------------------------
    login_node = checker.value("LOGIN_NODE") or (cluster.login_nodes[0] if cluster.login_nodes else None)
    needs_tunnel = {"true": True, "false": False}.get(needs_tunnel_text or "auto")
    if login_node is None and (needs_tunnel is True or (needs_tunnel is None
                                                        and not cluster.compute_has_internet)):
        checker.problem("LOGIN_NODE", f"is needed for the tunnel ({cluster.name} compute nodes "
                        "have no internet)", "set LOGIN_NODE=<login node as compute nodes reach it> "
                        "in the site env file, or NEEDS_TUNNEL=false", value=None)
    egress_probe = checker.value("EGRESS_PROBE") or "huggingface.co:443"
    if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", egress_probe):
        checker.problem("EGRESS_PROBE", "is not host:port", "write e.g. huggingface.co:443")

    # --- job name --------------------------------------------------------------------
    name_text = checker.value("JOB_NAME")
    if name_text is not None:
        job_name = naming.sanitize_job_name(name_text)
        if not job_name:
            checker.problem("JOB_NAME", "has no usable character", "use letters, digits, . _ -")
        elif job_name != name_text:
            checker.warnings.append(f"JOB_NAME={name_text!r} is submitted as {job_name!r}")
    else:
        job_name = naming.generate_job_name(config.config_name, checker.value("MODEL_PATH"),
                                            num_nodes or 0, now)

    # --- overrides -------------------------------------------------------------------
    environment = {k: (e.value or "") for k, e in config.environment.items()}
    user_overrides = _override_map(config.overrides)
    mapped: List[Override] = []
    mapped_values: Dict[str, Tuple[str, ...]] = {}
    for key, make in (("MODEL_PATH", lambda: _check_model(checker)),
                      ("TRAIN_DATA", lambda: _check_data(checker, "TRAIN_DATA")),
                      ("VAL_DATA", lambda: _check_data(checker, "VAL_DATA"))):
        hydra_key = SETTINGS_BY_KEY[key].hydra_key or ""
        if checker.value(key) is None:
            continue
        if hydra_key in user_overrides:
            checker.problem(key, f"is given twice: also as {hydra_key} "
                            f"({user_overrides[hydra_key].source})",
                            f"keep either {key} or {hydra_key}")
            continue
        items = make()
        if items is None:
            continue
        if isinstance(items, str):
            mapped.append(Override("", hydra_key, items, config.source(key)))
            continue
        mapped_values[key] = items
        mapped.append(Override("", hydra_key, hydra_value(key, items), config.source(key)))
    hub_cache = _check_hub_ids(checker, cluster, mapped_values,
                               predownload_enabled(predownload_mode, cluster), environment,
                               os.environ if environ is None else environ)
    added: List[Override] = []
    if max_restarts:
        resume = user_overrides.get(RESUME_OVERRIDE)
        if resume is not None and (resume.value or "").strip().lower() in ("null", "none", "~", ""):
            checker.problems.append(Problem(
                RESUME_OVERRIDE, resume.value, "disables resuming, so every restart starts from scratch",
                "remove it (MAX_RESTARTS adds trainer.resume_mode=latest) or set it to latest",
                resume.source))
        if resume is None:
            added.append(Override("", RESUME_OVERRIDE, "latest", "MAX_RESTARTS"))
        if CKPT_OVERRIDE not in user_overrides and experiments_dir is not None:
            from .skyrl_check import hydra_quote

            ckpt = os.path.join(experiments_dir, "checkpoints", job_name or "job")
            added.append(Override("", CKPT_OVERRIDE, hydra_quote(ckpt), "MAX_RESTARTS"))
    overrides = tuple(mapped) + tuple(config.overrides) + tuple(added)

    is_skyrl = bool(entrypoint and entrypoint.startswith("skyrl_train."))
    if is_skyrl:
        _skyrl_rules(checker, _override_map(overrides), num_nodes, gpus_per_node, secret_keys,
                     secret_path, environment)

    # --- upload of the final policy ---------------------------------------------------
    upload_repo, upload_private, upload_path = _check_upload(
        checker, cluster, python, is_skyrl, overrides, secret_path, secret_keys)

    # --- SkyRL's real Hydra config ----------------------------------------------------
    if run_skyrl_check and is_skyrl and skyrl_check_mode != "false" and trainer_python:
        from . import skyrl_check

        if skyrl_check_mode == "true" or skyrl_check.skyrl_importable(trainer_python):
            result = skyrl_check.compose_overrides(trainer_python, [o.text for o in overrides])
            if not result.available:
                if skyrl_check_mode == "true":
                    checker.problem("SKYRL_CHECK", f"cannot compose with {trainer_python}: "
                                    f"{result.reason}", "point TRAINER_PYTHON at SkyRL's venv, or "
                                    "SKYRL_CHECK=auto")
            by_text = {o.text: o for o in overrides}
            for failure in result.failures:
                culprit = by_text.get(failure.override or "")
                checker.problems.append(Problem(
                    culprit.key if culprit else (failure.key or "overrides"),
                    culprit.value if culprit else failure.override,
                    f"SkyRL's config refuses it: {failure.message}", failure.fix(),
                    culprit.source if culprit else ""))
        elif skyrl_check_mode == "auto":
            checker.warnings.append(
                f"skyrl_train does not import with {trainer_python}: overrides were not checked "
                "against SkyRL's config (set TRAINER_PYTHON to SkyRL's interpreter to check)")

    if checker.problems:
        return ValidationResult(None, tuple(checker.problems), tuple(checker.warnings))

    resolved = {s: (config.value(s) or "") for s in SETTINGS_BY_KEY}
    resolved["JOB_NAME"] = job_name
    job = ValidatedJob(
        cluster=cluster,
        job_name=job_name,
        num_nodes=num_nodes or 1,
        time_limit_minutes=time_limit or 1,
        partition=partition,
        account=account,
        qos=checker.value("QOS"),
        gpus_per_node=gpus_per_node or 0,
        cpus_per_node=cpus_per_node,
        memory_per_node_gb=memory_gb,
        exclude_nodes=exclude,
        experiments_dir=experiments_dir or "",
        max_restarts=max_restarts or 0,
        hold=bool(hold),
        signal_seconds=signal_seconds if signal_seconds is not None else 300,
        entrypoint=entrypoint or "",
        python=python or "",
        trainer_python=trainer_python or "",
        skyrl_home=skyrl_home,
        site_env_file=config.site_env_path,
        secret_env_file=secret_path,
        env_activate=env_activate,
        conda_env=checker.value("CONDA_ENV"),
        modules=checker.value("MODULES") or "",
        extra_pythonpath=extra_pythonpath,
        needs_tunnel=needs_tunnel,
        login_node=login_node,
        ssh_port=ssh_port or 22,
        ssh_user=checker.value("SSH_USER"),
        ssh_key=ssh_key,
        egress_probe=egress_probe,
        ray_join_timeout_seconds=ray_join or 300,
        shutdown_grace_seconds=grace if grace is not None else 15,
        ray_resources=ray_resources,
        overrides=overrides,
        environment=environment,
        resolved_config=resolved,
        created_at=now,
        mapped_values=mapped_values,
        hub_cache=hub_cache,
        upload_repo=upload_repo,
        upload_private=upload_private,
        upload_path=upload_path,
    )
    return ValidationResult(job, (), tuple(checker.warnings))

