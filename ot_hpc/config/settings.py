"""The settings table: every job setting once, with its flag, kind, default and help.

:data:`SETTINGS` drives the command line (``ot-submit --num-nodes`` ...), the env-file keys
(``NUM_NODES=2``), the built-in and cluster defaults of :mod:`ot_hpc.config.merge`, the
checks of :mod:`ot_hpc.validate` and ``ot-submit --list-settings``
(:func:`format_settings_table`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..monitor.dirs import DEFAULT_EXPERIMENTS_DIRNAME


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
            "starts with `python -m` on the head node (default: the installed SkyRL's, "
            "skyrl.train.entrypoints.main_base or skyrl_train.entrypoints.main_base)",
            group="trainer"),
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
            "SkyRL's own config before submitting (auto: where SkyRL is installed)",
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
    Setting("NOT_SECRET", "--not-secret", "str", "names that look like secrets (*_TOKEN, "
            "*_KEY, *_PAT, *_SECRET, *_PASSWORD ...) but are not, comma-separated, e.g. "
            "NOT_SECRET=VLLM_CACHE_KEY: they may then be set in a site env file or job config",
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
    Setting("RAY_AUTH", "--ray-auth", "choice", "Ray token authentication (a fresh token "
            "per run): auto = on where the trainer's Ray has it (>= 2.52), else the job runs "
            "without it after a warning; required = refuse a Ray without it",
            default="auto", choices=("auto", "required"), group="tunnel"),
    Setting("RAY_CLIENT_SERVER", "--ray-client-server", "bool", "start Ray's Client server "
            "(ray://, token-authenticated, needs grpcio) on the head node", default="false",
            group="tunnel"),
    Setting("SHUTDOWN_GRACE", "--shutdown-grace", "int", "seconds between SIGTERM and "
            "SIGKILL when stopping the trainer; keep it below Slurm's KillWait (commonly "
            "30 s), or Slurm SIGKILLs the runner before it has stopped Ray (checked against "
            "the cluster's KillWait at submission: at most KillWait - 5)", default="15",
            group="tunnel"),
    Setting("TRAINER_IDLE_TIMEOUT", "--trainer-idle-timeout", "duration", "stop the trainer "
            "and fail the job (exit 7) when it has printed nothing at all for this long: "
            "minutes (60), MM:SS or HH:MM:SS; 0 = never. SkyRL prints every step, and vLLM "
            "start-up and checkpoints print too: an hour of silence is a hang (a dead NCCL "
            "peer), which would otherwise hold the allocation until the time limit",
            default="60", group="trainer"),
    Setting("TUNNEL_DOWN_LIMIT", "--tunnel-down-limit", "duration", "fail the job (exit 3) "
            "when the SSH tunnel has been down and could not be restarted for this long: "
            "minutes (10), MM:SS or HH:MM:SS; 0 = never. The watchdog keeps retrying (1, 2, "
            "4 ... 30 s apart) until then", default="10", group="tunnel"),
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
