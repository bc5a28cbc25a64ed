"""Job settings: one table of every setting, env-file parsing, layering and provenance.

Layers, lowest first: built-in < cluster (:mod:`ot_hpc.clusters`) < site env file
(``envs/jsc.env`` ...) < job config (``--config gsm8k.env``) < command line.

In an env file (parsed by python-dotenv: quotes, ``export``, comments, ``${VAR}`` and
``${VAR:-default}``):

* a key from :data:`SETTINGS` (``NUM_NODES``, ``TIME_LIMIT`` ...) sets a job setting;
* a key containing a dot, optionally prefixed ``+``/``++``/``~``, is a SkyRL/Hydra
  override, passed verbatim (``key=value``) in file order;
* any other key is an environment variable for the job: every such key of the site env
  file; in a job config the ones with a known prefix (``HF_``, ``WANDB_``, ``VLLM_`` ...),
  the ones the site env file also sets, or ``ENV_<NAME>`` (exported as ``<NAME>``).
  Anything else in a job config is an unknown key (reported with a did-you-mean).

Values stay strings here: nothing is coerced (a job named ``123`` stays ``"123"``);
:mod:`ot_hpc.validate` checks and converts them. ``${VAR}`` is resolved after all
layers are merged, against the merged settings, the job environment and then the
process environment, so ``trainer.placement.policy_num_nodes=${NUM_NODES}`` follows
``--num-nodes``. Command-line values are never interpolated.
"""
from __future__ import annotations

import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .clusters import Cluster
from .monitor.dirs import DEFAULT_EXPERIMENTS_DIRNAME

# --------------------------------------------------------------------------------------
# The settings table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: str
    flag: str  # the long command-line flag
    kind: str  # str | int | bool | path | duration | choice | hostlist | module
    help: str
    default: Optional[str] = None  # built-in default (a string, like everything here)
    cluster_field: Optional[str] = None  # default taken from this Cluster attribute
    hydra_key: Optional[str] = None  # mapped SkyRL override, e.g. data.train_data
    choices: Tuple[str, ...] = ()
    required: bool = False
    short: Optional[str] = None  # e.g. "-N"
    group: str = "job"  # job | slurm | trainer | upload | environment | tunnel


SETTINGS: Tuple[Setting, ...] = (
    # --- the job -------------------------------------------------------------------
    Setting("CLUSTER", "--cluster", "str", "cluster name (default: $OT_HPC_CLUSTER, else "
            "detected from the hostname)", group="job"),
    Setting("SITE_ENV", "--site-env", "path", "site env file (default: the cluster's, e.g. "
            "envs/jsc.env); 'none' for no site env file", group="job"),
    Setting("JOB_NAME", "--job-name", "str", "Slurm job name (default: <config>-<model "
            "size>-<N>n-<date>); characters other than A-Z a-z 0-9 . _ - become '-'",
            short="-J"),
    Setting("NUM_NODES", "--num-nodes", "int", "number of nodes", required=True, short="-N"),
    Setting("TIME_LIMIT", "--time-limit", "duration", "time limit: MM, HH:MM:SS or "
            "D-HH:MM:SS", required=True, short="-t"),
    Setting("EXPERIMENTS_DIR", "--experiments-dir", "path", "where specs/ and logs/ go "
            "(on the shared filesystem)", default="${HOME}/" + DEFAULT_EXPERIMENTS_DIRNAME),
    Setting("MAX_RESTARTS", "--max-restarts", "int", "requeue the job at most N times on "
            "failure or preemption, resuming from the latest checkpoint", default="0"),
    Setting("HOLD", "--hold", "bool", "submit held (release with scontrol release <id>)",
            default="false"),
    Setting("SIGNAL_SECONDS", "--signal-seconds", "int", "send USR2 to the runner this "
            "many seconds before the time limit (capped at a quarter of the time limit)",
            default="300"),
    # --- Slurm resources (defaults from the cluster) ------------------------------------
    Setting("ACCOUNT", "--account", "str", "Slurm account (empty: Slurm's default)",
            cluster_field="account", group="slurm", short="-A"),
    Setting("PARTITION", "--partition", "str", "Slurm partition", cluster_field="partition",
            group="slurm", short="-p"),
    Setting("QOS", "--qos", "str", "Slurm QOS (empty: none)", cluster_field="qos",
            group="slurm", short="-q"),
    Setting("GPUS_PER_NODE", "--gpus-per-node", "int", "GPUs per node",
            cluster_field="gpus_per_node", group="slurm"),
    Setting("CPUS_PER_NODE", "--cpus-per-node", "int", "CPUs per node (empty: what the "
            "allocation gives)", cluster_field="cpus_per_node", group="slurm"),
    Setting("MEMORY_PER_NODE_GB", "--memory-per-node-gb", "int", "memory per node in GB "
            "(empty: Slurm's default)", group="slurm"),
    Setting("EXCLUDE_NODES", "--exclude-nodes", "hostlist", "nodes never to use (Slurm "
            "hostlist)", cluster_field="exclude_nodes", group="slurm"),
    # --- the trainer ----------------------------------------------------------------
    Setting("SKYRL_ENTRYPOINT", "--skyrl-entrypoint", "module", "Python module the runner "
            "starts with `python -m` on the head node",
            default="skyrl_train.entrypoints.main_base", group="trainer"),
    Setting("MODEL_PATH", "--model-path", "str", "policy model: a directory or a Hugging "
            "Face id", hydra_key="trainer.policy.model.path", group="trainer"),
    Setting("TRAIN_DATA", "--train-data", "str", "training data file(s), comma-separated, "
            "or a Hydra list", hydra_key="data.train_data", group="trainer"),
    Setting("VAL_DATA", "--val-data", "str", "validation data file(s), comma-separated, "
            "or a Hydra list", hydra_key="data.val_data", group="trainer"),
    Setting("SKYRL_HOME", "--skyrl-home", "path", "SkyRL checkout; the trainer runs in it "
            "(must exist)", group="trainer"),
    Setting("PYTHON", "--python", "path", "interpreter that runs the runner on the compute "
            "nodes (needs ot_hpc, sh, python-dotenv)", default=sys.executable, group="trainer"),
    Setting("TRAINER_PYTHON", "--trainer-python", "path", "interpreter that runs the "
            "entrypoint (default: PYTHON)", group="trainer"),
    Setting("SKYRL_CHECK", "--skyrl-check", "choice", "compose the overrides against "
            "SkyRL's Hydra config before submitting (auto: where skyrl_train imports)",
            default="auto", choices=("auto", "true", "false"), group="trainer"),
    Setting("PREDOWNLOAD", "--predownload", "choice", "download Hugging Face ids named by "
            "MODEL_PATH/TRAIN_DATA/VAL_DATA into HF_HUB_CACHE on the login node before "
            "submitting, and give SkyRL the local snapshots (auto: when the cluster's compute "
            "nodes have no internet; never on --dry-run)", default="auto",
            choices=("auto", "true", "false"), group="trainer"),
    # --- upload of the final policy (the runner, after the trainer exited 0) -------------
    Setting("UPLOAD_REPO", "--upload-repo", "str", "Hugging Face model repo (org/name) the "
            "runner uploads the final policy's HF-format files to after a successful run, "
            "with HF_TOKEN from the secret env file (empty: no upload)", group="upload"),
    Setting("UPLOAD_PRIVATE", "--upload-private", "bool", "create UPLOAD_REPO as a private "
            "repo (UPLOAD_PRIVATE=false in the job config for a public one)", default="true",
            group="upload"),
    Setting("UPLOAD_PATH", "--upload-path", "str", "directory to upload from: a model "
            "directory, or an export directory whose latest global_step_<N>/policy is taken "
            "(default: trainer.export_path, which needs trainer.hf_save_interval>0)",
            group="upload"),
    # --- environment ------------------------------------------------------------------
    Setting("SECRET_ENV_PATH", "--secret-env", "path", "secret env file (HF_TOKEN, "
            "WANDB_API_KEY, ...), read by the runner on the compute node only",
            group="environment"),
    Setting("ENV_ACTIVATE", "--env-activate", "path", "script the runner sources first "
            "(a venv's bin/activate or conda's etc/profile.d/conda.sh)", group="environment"),
    Setting("CONDA_ENV", "--conda-env", "str", "conda environment (name or path) to "
            "activate after ENV_ACTIVATE", group="environment"),
    Setting("MODULES", "--modules", "str", "environment modules to load first "
            "(space-separated)", group="environment"),
    Setting("EXTRA_PYTHONPATH", "--extra-pythonpath", "str", "prepended to PYTHONPATH on "
            "the compute nodes (':'-separated)", group="environment"),
    # --- egress / tunnel --------------------------------------------------------------
    Setting("NEEDS_TUNNEL", "--needs-tunnel", "choice", "open an SSH SOCKS tunnel to "
            "LOGIN_NODE: auto (when the egress probe fails on a cluster without "
            "internet), true, false", default="auto", choices=("auto", "true", "false"),
            group="tunnel"),
    Setting("LOGIN_NODE", "--login-node", "str", "login node as the compute nodes reach it",
            group="tunnel"),
    Setting("SSH_PORT", "--ssh-port", "int", "ssh port of LOGIN_NODE", default="22",
            group="tunnel"),
    Setting("SSH_USER", "--ssh-user", "str", "ssh user (empty: the job's user)",
            group="tunnel"),
    Setting("SSH_KEY", "--ssh-key", "path", "private key for the tunnel (a path; must be "
            "readable by you only)", group="tunnel"),
    Setting("EGRESS_PROBE", "--egress-probe", "str", "host:port the runner connects to to "
            "test internet access", default="huggingface.co:443", group="tunnel"),
    Setting("RAY_JOIN_TIMEOUT", "--ray-join-timeout", "int", "seconds every node has to "
            "join the Ray cluster", default="300", group="tunnel"),
    Setting("RAY_RESOURCES", "--ray-resources", "str", "custom Ray resources every node "
            "registers (`ray start --resources`), a JSON object of name -> non-negative "
            "number, e.g. '{\"vllm_instance\": 1}' (empty: none)", default="", group="tunnel"),
    Setting("SHUTDOWN_GRACE", "--shutdown-grace", "int", "seconds between SIGTERM and "
            "SIGKILL when stopping the trainer; keep it below Slurm's KillWait (commonly "
            "30 s), or Slurm SIGKILLs the runner before it has stopped Ray", default="15",
            group="tunnel"),
)

SETTINGS_BY_KEY: Dict[str, Setting] = {s.key: s for s in SETTINGS}
HYDRA_KEY_TO_SETTING: Dict[str, str] = {s.hydra_key: s.key for s in SETTINGS if s.hydra_key}

# Job-config keys that are environment variables for the job without an ENV_ prefix.
ENV_PREFIXES = (
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "WANDB_", "VLLM_", "NCCL_", "GLOO_", "RAY_",
    "TORCH_", "TORCHINDUCTOR_", "PYTORCH_", "CUDA_", "TRITON_", "FLASHINFER_", "UV_", "DAYTONA_",
    "AIOHTTP_", "OMP_", "MKL_", "TOKENIZERS_", "XDG_", "SKYRL_", "HARBOR_", "LITELLM_",
)
ENV_PREFIX_EXPLICIT = "ENV_"

# Whole ``_``-separated words only: HF_TOKEN, WANDB_API_KEY, GITHUB_TOKEN are secrets,
# TOKENIZERS_PARALLELISM is not. A name with a DISABLE/ENABLE word is a switch, not a
# secret (HF_HUB_DISABLE_IMPLICIT_TOKEN=1).
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:TOKEN|API_?KEY|SECRET|PASSW(?:OR)?D|PRIVATE_KEY)(?:_|$)", re.I)
_SWITCH_NAME = re.compile(r"(?:^|_)(?:DISABLE|ENABLE)(?:_|$)", re.I)
_SECRET_HINT = ("secrets reach the job only through SECRET_ENV_PATH; the runner exports them "
                "on the compute node")
_OVERRIDE_KEY = re.compile(r"^(\+\+|\+|~)?([A-Za-z_][\w-]*(?:\.[\w-]+)+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_secret_name(key: str) -> bool:
    """Looks like a secret (HF_TOKEN, WANDB_API_KEY ...): such values belong in the secret file."""
    return (key not in SETTINGS_BY_KEY and bool(_SECRET_NAME.search(key))
            and not _SWITCH_NAME.search(key))


def _secret_cli_text(text: str) -> bool:
    """``-S`` text whose key part looks like a secret (``hf_token=...``, ``a.api_key=...``)."""
    key = text.partition("=")[0].strip().lstrip("+~")
    return bool(key) and any(is_secret_name(part) for part in re.split(r"[.\-]", key))


def is_secret_override_key(key: str) -> bool:
    """An override key one of whose dotted parts looks like a secret (``trainer.hf_token``,
    ``+generator.api_key``): its value must not be on the command line or in a spec."""
    return "." in key and any(is_secret_name(part)
                              for part in re.split(r"[.\-]", key.lstrip("+~")))


# --------------------------------------------------------------------------------------
# Values with provenance
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One value and where it came from (``built-in``, ``cluster local``,
    ``envs/jsc.env:12``, ``--num-nodes`` ...). ``raw`` is the value before ``${}``."""

    key: str
    value: Optional[str]
    source: str
    raw: Optional[str] = None
    interpolate: bool = False  # file values are interpolated; CLI/built-in ones are not


@dataclass(frozen=True)
class Override:
    """A SkyRL/Hydra override ``<prefix><key>=<value>``; ``text`` is the argv element."""

    prefix: str  # "", "+", "++" or "~"
    key: str
    value: Optional[str]  # None only for "~key" deletions without a value
    source: str
    from_file: bool = False  # file values get ${VAR} interpolation; -S values do not

    @property
    def text(self) -> str:
        if self.value is None:
            return f"{self.prefix}{self.key}"
        return f"{self.prefix}{self.key}={self.value}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: ``field=value (source): message; fix``."""

    field: str
    value: Optional[str]
    message: str
    fix: str
    source: str = ""

    def line(self) -> str:
        value = self.value
        if value is not None and value != "<hidden>" and (
                is_secret_override_key(self.field) or is_secret_name(self.field)
                or self.field.startswith("-S") and _secret_cli_text(value)):
            value = "<hidden>"  # never print what may be a secret value
        shown = "" if value is None else f"={value!r}"
        where = f" ({self.source})" if self.source else ""
        return f"{self.field}{shown}{where}: {self.message}; {self.fix}"


@dataclass(frozen=True)
class EnvFile:
    """A parsed env file: bindings in file order, with line numbers and parse errors."""

    path: str
    bindings: Tuple[Tuple[str, Optional[str], int], ...]  # key, raw value, line
    errors: Tuple[Tuple[int, str], ...]  # line, text that did not parse


@dataclass(frozen=True)
class MergedConfig:
    cluster: Cluster
    cluster_source: str
    settings: Mapping[str, Entry]  # every key of SETTINGS
    environment: Mapping[str, Entry]  # environment variables for the job
    overrides: Tuple[Override, ...]
    problems: Tuple[Problem, ...]  # found while reading (parse errors, unknown keys ...)
    site_env_path: Optional[str] = None
    job_config_path: Optional[str] = None
    config_name: Optional[str] = None  # the job config's stem, for generated job names

    def value(self, key: str) -> Optional[str]:
        entry = self.settings.get(key)
        return None if entry is None else entry.value

    def source(self, key: str) -> str:
        entry = self.settings.get(key)
        return "" if entry is None else entry.source


# --------------------------------------------------------------------------------------
# Env files
# --------------------------------------------------------------------------------------


def parse_env_text(text: str, path: str) -> EnvFile:
    """Parse with python-dotenv's parser, keeping order, line numbers and errors."""
    from dotenv.parser import parse_stream

    bindings, errors = [], []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        leading = original[: len(original) - len(original.lstrip())]
        line = binding.original.line + leading.count("\n")
        if binding.error:
            errors.append((line, original.strip().splitlines()[0] if original.strip() else ""))
        elif binding.key is not None:
            bindings.append((binding.key, binding.value, line))
    return EnvFile(path=path, bindings=tuple(bindings), errors=tuple(errors))


def read_env_file(path: str) -> EnvFile:
    with open(path, encoding="utf-8") as handle:
        return parse_env_text(handle.read(), path)


def env_file_keys(path: str) -> List[str]:
    """The keys an env file defines (never its values): for the secret file check."""
    return [key for key, _value, _line in read_env_file(path).bindings]


def _variables(value: str):
    from dotenv.variables import Variable, parse_variables

    return [(atom, isinstance(atom, Variable)) for atom in parse_variables(value)]


def variable_names(value: Optional[str]) -> List[str]:
    if not value or "${" not in value:
        return []
    return [atom.name for atom, is_variable in _variables(value) if is_variable]


def interpolate(value: str, lookup: Mapping[str, Optional[str]]) -> Tuple[str, List[str]]:
    """Resolve ``${VAR}``/``${VAR:-default}`` like python-dotenv; also return the names
    that were neither defined nor given a default. An undefined dotted name
    (``${trainer.ckpt_path}``) is left as written, for Hydra to resolve."""
    missing: List[str] = []
    parts = []
    for atom, is_variable in _variables(value):
        if is_variable and lookup.get(atom.name) is None:
            if "." in atom.name:
                default = "" if atom.default is None else f":-{atom.default}"
                parts.append("${" + atom.name + default + "}")
                continue
            if atom.default is None:
                missing.append(atom.name)
        parts.append(atom.resolve(lookup))
    return "".join(parts), missing


# --------------------------------------------------------------------------------------
# Layering
# --------------------------------------------------------------------------------------


def short_path(path: str, cwd: Optional[str] = None) -> str:
    """A file path as shown in sources: relative to cwd when below it."""
    try:
        rel = os.path.relpath(path, cwd or os.getcwd())
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def cluster_value(cluster: Cluster, attribute: str) -> Optional[str]:
    """A cluster attribute as a setting string (tuples joined with ',', bools lower-case)."""
    value = getattr(cluster, attribute)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) or None
    return str(value)


def first_pass_value(env: Optional[EnvFile], key: str) -> Optional[str]:
    """A key's last raw value in a file, before interpolation (for CLUSTER/SITE_ENV)."""
    if env is None:
        return None
    found = None
    for name, value, _line in env.bindings:
        if name == key:
            found = value
    return found


def split_override(text: str) -> Optional[Tuple[str, str, Optional[str]]]:
    """``+a.b=c`` -> ("+", "a.b", "c"); None when ``text`` is not an override."""
    key, sep, value = text.partition("=")
    match = _OVERRIDE_KEY.match(key.strip())
    if not match:
        return None
    prefix = match.group(1) or ""
    if not sep and prefix != "~":
        return None
    return prefix, match.group(2), value if sep else None


def _did_you_mean(key: str, candidates: Iterable[str]) -> Optional[str]:
    import difflib

    matches = difflib.get_close_matches(key.upper(), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class _Builder:
    """Accumulates layers; later layers win."""

    def __init__(self) -> None:
        self.settings: Dict[str, Entry] = {}
        self.environment: Dict[str, Entry] = {}
        self.overrides: List[Override] = []
        self.override_index: Dict[str, int] = {}
        self.override_layer: Dict[str, str] = {}
        self.problems: List[Problem] = []

    def set_setting(self, entry: Entry) -> None:
        self.settings[entry.key] = entry

    def add_override(self, override: Override, layer: str) -> None:
        previous = self.override_index.get(override.key)
        if previous is None:
            self.override_index[override.key] = len(self.overrides)
            self.override_layer[override.key] = layer
            self.overrides.append(override)
            return
        if self.override_layer[override.key] == layer:
            earlier = self.overrides[previous]
            self.problems.append(Problem(
                override.key, override.value, f"given twice (also {earlier.source})",
                "keep one of them", override.source))
        self.overrides[previous] = override  # later layer wins, first position kept
        self.override_layer[override.key] = layer


def _apply_file(builder: _Builder, env: EnvFile, kind: str, cwd: Optional[str]) -> None:
    """kind: "site" or "job"."""
    shown = short_path(env.path, cwd)
    for line, text in env.errors:
        builder.problems.append(Problem(
            f"{shown}:{line}", None, f"cannot parse {text[:60]!r}",
            "write KEY=value (quote values with spaces or '#')", ""))
    site_env_keys = set(builder.environment)
    seen: Dict[str, int] = {}
    for key, raw, line in env.bindings:
        source = f"{shown}:{line}"
        if key in seen and "." not in key:
            builder.problems.append(Problem(
                key, raw, f"set twice in {shown} (lines {seen[key]} and {line})",
                "keep one of them", source))
        seen[key] = line
        if key in SETTINGS_BY_KEY:
            if raw is None:
                builder.problems.append(Problem(key, None, "has no '='", f"write {key}=<value>", source))
                continue
            builder.set_setting(Entry(key, raw, source, raw=raw, interpolate=True))
            continue
        parsed = split_override(f"{key}={raw}" if raw is not None else key)
        if "." in key:
            if parsed is None:
                builder.problems.append(Problem(
                    key, raw, "is not a valid Hydra override key",
                    "write section.key=value, +section.key=value or ++section.key=value",
                    source))
                continue
            prefix, okey, value = parsed
            if is_secret_override_key(okey):
                builder.problems.append(_secret_override_problem(key, source))
                continue
            builder.add_override(Override(prefix, okey, value, source, from_file=True),
                                 layer=env.path)
            continue
        name = key
        if kind == "job" and key.startswith(ENV_PREFIX_EXPLICIT):
            name = key[len(ENV_PREFIX_EXPLICIT):]
        if not _ENV_NAME.match(name):
            builder.problems.append(Problem(
                key, raw, "is not a valid environment variable name",
                "use letters, digits and '_'", source))
            continue
        if is_secret_name(name):
            builder.problems.append(Problem(
                key, "<hidden>", f"looks like a secret and must not be in {shown}",
                "move it to the secret env file named by SECRET_ENV_PATH (the runner reads "
                "it on the compute node)", source))
            continue
        if raw is None:
            builder.problems.append(Problem(key, None, "has no '='", f"write {key}=<value>", source))
            continue
        known_env = (
            kind == "site"
            or key.startswith(ENV_PREFIX_EXPLICIT)
            or name.startswith(ENV_PREFIXES)
            or name in site_env_keys
        )
        if not known_env:
            guess = _did_you_mean(key, SETTINGS_BY_KEY)
            hint = f"did you mean {guess}? " if guess else ""
            builder.problems.append(Problem(
                key, raw, "is not a known setting",
                f"{hint}(an environment variable for the job: name it ENV_{key}; "
                "an override: section.key=value; `ot-submit --list-settings` lists settings)",
                source))
            continue
        builder.environment[name] = Entry(name, raw, source, raw=raw, interpolate=True)


def _secret_override_problem(key: str, source: str) -> Problem:
    return Problem(key, "<hidden>", "looks like a secret and must not be passed as an "
                   "override (it would be on the trainer's command line and in the spec)",
                   _SECRET_HINT, source)


class _Cycle(Exception):
    pass


def _secret_file_keys(path: Optional[str], cwd: Optional[str]) -> List[str]:
    """The key NAMES of the secret env file (never its values); [] when it cannot be read
    (validation reports that)."""
    if not path or not path.strip():
        return []
    full = os.path.join(cwd or os.getcwd(), os.path.expanduser(path.strip()))
    try:
        return env_file_keys(full)
    except (OSError, UnicodeDecodeError, ValueError):
        return []


def _resolve_interpolations(builder: _Builder, environ: Mapping[str, str],
                            cwd: Optional[str] = None) -> None:
    """Resolve ``${VAR}`` in file values against the merged view, then the process env.

    ``FOO=${FOO}:x`` extends the process environment's FOO (as python-dotenv does).
    A secret (a name that looks like one, or a key of the secret env file) is never
    interpolated: the reference stays as written and is reported."""
    raw: Dict[str, Tuple[Optional[str], bool]] = {}
    for entries in (builder.environment, builder.settings):
        for key, entry in entries.items():
            raw[key] = (entry.value, entry.interpolate)
    for override in builder.overrides:
        raw[override.key] = (override.value, override.from_file)
    cache: Dict[str, Optional[str]] = {}
    secret_names = set()  # keys of the secret env file, known once SECRET_ENV_PATH is
    refused: List[str] = []  # secret names referenced during the current expansion

    def is_secret(name: str) -> bool:
        return is_secret_name(name) or name in secret_names

    def value_of(name: str, chain: Tuple[str, ...]) -> Optional[str]:
        if is_secret(name):
            refused.append(name)
            return None
        if name == chain[-1]:
            return environ.get(name)
        if name in chain:
            raise _Cycle(" -> ".join(chain + (name,)))
        if name not in raw:
            return environ.get(name)
        if name in cache:
            return cache[name]
        value, needs = raw[name]
        if value is not None and needs and "${" in value:
            value = expand(value, chain + (name,))[0]
        cache[name] = value
        return value

    def expand(value: str, chain: Tuple[str, ...]) -> Tuple[str, List[str]]:
        local = {name: value_of(name, chain) for name in variable_names(value)}
        return interpolate(value, {k: v for k, v in local.items() if v is not None})

    def finish(key: str, value: Optional[str], source: str,
               report: bool = True) -> Optional[str]:
        if value is None or "${" not in value:
            return value
        del refused[:]
        try:
            text, missing = expand(value, (key,))
        except _Cycle as exc:
            if report:
                builder.problems.append(Problem(
                    key, value, f"refers to itself through ${{}} ({exc})", "break the cycle",
                    source))
            return value
        if refused:
            # Leave the value as written (no secret in it), report each reference once.
            for name in dict.fromkeys(refused):
                if report:
                    builder.problems.append(Problem(
                        key, None, f"uses ${{{name}}}, a secret, which is never interpolated",
                        _SECRET_HINT, source))
            return value
        if not report:
            return text
        for name in missing:
            builder.problems.append(Problem(
                key, value, f"uses ${{{name}}}, which is not defined",
                f"define {name} in the site env or job config, or write ${{{name}:-default}}",
                source))
        return text

    path_entry = builder.settings.get("SECRET_ENV_PATH")
    if path_entry is not None:
        path = finish("SECRET_ENV_PATH", path_entry.value, path_entry.source, report=False) \
            if path_entry.interpolate else path_entry.value
        secret_names.update(_secret_file_keys(path, cwd))
        cache.clear()
    for entries in (builder.settings, builder.environment):
        for key, entry in list(entries.items()):
            if entry.interpolate:
                entries[key] = Entry(key, finish(key, entry.value, entry.source), entry.source,
                                     raw=entry.raw, interpolate=True)
    builder.overrides = [
        Override(o.prefix, o.key, finish(o.key, o.value, o.source), o.source, True)
        if o.from_file else o
        for o in builder.overrides
    ]


def merge(
    cluster: Cluster,
    cluster_source: str,
    site_env: Optional[EnvFile],
    job_config: Optional[EnvFile],
    cli_settings: Mapping[str, str],
    cli_overrides: Sequence[str],
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    site_env_source: str = "",
) -> MergedConfig:
    """Merge every layer into one :class:`MergedConfig` (reading problems included)."""
    env = os.environ if environ is None else environ
    builder = _Builder()
    for setting in SETTINGS:
        if setting.cluster_field:
            builder.set_setting(Entry(setting.key, cluster_value(cluster, setting.cluster_field),
                                      f"cluster {cluster.name}"))
        else:
            builder.set_setting(Entry(setting.key, setting.default, "built-in",
                                      raw=setting.default,
                                      interpolate=setting.default is not None
                                      and "${" in setting.default))
    if site_env is not None:
        _apply_file(builder, site_env, "site", cwd)
    if job_config is not None:
        _apply_file(builder, job_config, "job", cwd)
    for key, value in cli_settings.items():
        setting = SETTINGS_BY_KEY[key]
        builder.set_setting(Entry(key, value, setting.flag, raw=value))
    # How the cluster and the site env file were chosen (the caller decided both).
    builder.set_setting(Entry("CLUSTER", cluster.name, cluster_source))
    builder.set_setting(Entry("SITE_ENV", site_env.path if site_env is not None else None,
                              site_env_source))
    for index, text in enumerate(cli_overrides, start=1):
        parsed = split_override(text)
        if parsed is None:
            builder.problems.append(Problem(
                "-S", text, "is not a Hydra override",
                "write -S section.key=value (or +section.key=value for a new key)", f"-S #{index}"))
            continue
        prefix, key, value = parsed
        if is_secret_override_key(key):
            builder.problems.append(_secret_override_problem(
                f"{prefix}{key}", f"-S {text.split('=')[0]}"))
            continue
        builder.add_override(Override(prefix, key, value, f"-S {text.split('=')[0]}"), layer="cli")
    _resolve_interpolations(builder, env, cwd)
    config_name = Path(job_config.path).stem if job_config is not None else None
    return MergedConfig(
        cluster=cluster,
        cluster_source=cluster_source,
        settings=dict(builder.settings),
        environment=dict(builder.environment),
        overrides=tuple(builder.overrides),
        problems=tuple(builder.problems),
        site_env_path=site_env.path if site_env is not None else None,
        job_config_path=job_config.path if job_config is not None else None,
        config_name=config_name,
    )


def format_config(config: MergedConfig) -> str:
    """``--show-config``: every value with the place it came from."""
    lines = [f"# cluster {config.cluster.name} ({config.cluster_source})"]
    if config.site_env_path:
        lines.append(f"# site env file: {config.site_env_path}")
    if config.job_config_path:
        lines.append(f"# job config:    {config.job_config_path}")
    width = max(len(s.key) for s in SETTINGS) + 1
    lines.append("")
    lines.append("# settings")
    for setting in SETTINGS:
        entry = config.settings[setting.key]
        shown = "" if entry.value is None else entry.value
        lines.append(f"{setting.key:<{width}}= {shown!s:<40}  # {entry.source}")
    lines.append("")
    lines.append("# environment for the job")
    for key in sorted(config.environment):
        entry = config.environment[key]
        lines.append(f"{key}={entry.value}  # {entry.source}")
    lines.append("")
    lines.append("# SkyRL overrides, in order")
    for override in config.overrides:
        lines.append(f"{override.text}  # {override.source}")
    return "\n".join(lines) + "\n"


def format_settings_table() -> str:
    """``--list-settings``: key, flag, default, mapped Hydra key, help."""
    rows = []
    for s in SETTINGS:
        default = f"cluster.{s.cluster_field}" if s.cluster_field else (s.default or "")
        if s.key == "PYTHON":
            default = "the python running ot-submit"
        mapped = f" -> {s.hydra_key}" if s.hydra_key else ""
        required = " (required)" if s.required else ""
        rows.append(f"{s.key:<20} {s.flag:<22} default: {default or '-'}{mapped}{required}\n"
                    f"{'':<20} {s.help}")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------
# Loading: find files, choose the cluster and site env, merge
# --------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """A file cannot be found or read; ``str()`` is one line with the fix."""


def list_configs(cwd: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The job configs ``--config NAME`` finds: ``*.env`` in the current directory, then in
    ``envs/`` (a name once, the first found wins), without the built-in clusters' site env
    files (``jsc.env`` ...). Sorted names, as ``--config`` takes them."""
    from . import clusters, paths

    site_files = {c.env_file for c in clusters.BUILTIN_CLUSTERS if c.env_file}
    found: Dict[str, None] = {}
    directories = [Path(cwd or os.getcwd())] + list(paths.envs_dirs(environ))
    for directory in directories:
        try:
            entries = sorted(p for p in directory.iterdir()
                             if p.suffix == ".env" and p.is_file())
        except OSError:
            continue
        in_envs = directory != directories[0]
        for path in entries:
            if in_envs and path.name in site_files:
                continue
            found.setdefault(path.name, None)
    return sorted(found)


def load_config(
    config_name: Optional[str],
    cli_settings: Mapping[str, str],
    cli_overrides: Sequence[str] = (),
    hostname: str = "",
    fqdn: str = "",
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
) -> MergedConfig:
    """Read the job config and site env file and merge every layer.

    Cluster: ``--cluster`` > the job config's ``CLUSTER`` > ``$OT_HPC_CLUSTER`` >
    ``$SLURM_CLUSTER_NAME`` > hostname/FQDN. Site env file: ``--site-env`` > the job
    config's ``SITE_ENV`` > the cluster's ``env_file`` found in ``envs/`` (``none``: no file).
    Raises :class:`ConfigError` or :class:`ot_hpc.clusters.ClusterError`.
    """
    from . import clusters, paths

    env = os.environ if environ is None else environ
    job_config: Optional[EnvFile] = None
    if config_name:
        found = paths.find_env_file(config_name, cwd, env)
        if found is None:
            where = ", ".join(str(d) for d in paths.envs_dirs(env)) or "no envs/ directory found"
            names = list_configs(cwd, env)
            known = f"one of: {', '.join(names)}" if names else "no job config was found there"
            raise ConfigError(
                f"--config {config_name}: no such file in the current directory or envs/ "
                f"({where}); give a path, or {known}"
            )
        job_config = _read(str(found))

    cli_cluster = (cli_settings.get("CLUSTER") or "").strip()
    file_cluster = (first_pass_value(job_config, "CLUSTER") or "").strip()
    if cli_cluster:
        cluster, cluster_source = clusters.get_cluster(cli_cluster, env), "--cluster"
    elif file_cluster:
        cluster = clusters.get_cluster(file_cluster, env)
        cluster_source = f"{short_path(job_config.path, cwd)} CLUSTER"  # type: ignore[union-attr]
    else:
        cluster = clusters.detect_cluster(hostname, fqdn, env)
        if (env.get(clusters.CLUSTER_ENV_VAR) or "").strip():
            cluster_source = f"${clusters.CLUSTER_ENV_VAR}"
        elif (env.get("SLURM_CLUSTER_NAME") or "").strip() and cluster.slurm_cluster_names:
            cluster_source = "$SLURM_CLUSTER_NAME"
        else:
            cluster_source = f"detected from host {fqdn or hostname}"

    site_choice = (cli_settings.get("SITE_ENV") or "").strip()
    site_source = "--site-env"
    if not site_choice:
        site_choice = (first_pass_value(job_config, "SITE_ENV") or "").strip()
        site_source = f"{short_path(job_config.path, cwd)} SITE_ENV" if job_config else ""
    if not site_choice:
        site_choice = cluster.env_file or ""
        site_source = f"cluster {cluster.name}"
        if site_choice and paths.find_env_file(site_choice, environ=env,
                                               search_cwd=False) is None:
            site_choice = ""  # the cluster's default file is optional
    site_env: Optional[EnvFile] = None
    if site_choice and site_choice.lower() != "none":
        if site_source == f"cluster {cluster.name}":
            found = paths.find_env_file(site_choice, environ=env, search_cwd=False)
        else:
            found = paths.find_env_file(site_choice, cwd, env)
        if found is None:
            raise ConfigError(
                f"SITE_ENV={site_choice} ({site_source}): no such file in the current directory "
                "or envs/; give an existing path or 'none'"
            )
        site_env = _read(str(found))
    return merge(cluster, cluster_source, site_env, job_config, cli_settings, cli_overrides,
                 environ=env, cwd=cwd, site_env_source=site_source)


def _read(path: str) -> EnvFile:
    try:
        return read_env_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; check the path and its permissions") from None
