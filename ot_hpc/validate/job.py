"""What validation returns: the typed job, or every problem found."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Optional, Tuple

from ..cluster_facts import Cluster
from ..config.merge import Override
from ..config.problems import Problem


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
    runner_python: str  # PYTHON: runs the runner (the batch script's interpreter)
    trainer_python: str  # TRAINER_PYTHON (default PYTHON): runs the entrypoint and Ray
    skyrl_home: Optional[str]
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
    # not set or given as a verbatim Hydra list); what ot_hpc.stage.plan plans from.
    mapped_values: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    # The HF hub cache the login-node pre-download uses (None: nothing to download).
    hub_cache: Optional[str] = None
    # UPLOAD_*: see ot_hpc.upload (upload_path: where the runner looks for the export).
    upload_repo: Optional[str] = None
    upload_private: bool = True
    upload_path: Optional[str] = None
    # RAY_RESOURCES: custom Ray resources, a JSON object text ("" = none).
    ray_resources: str = ""
    # RAY_AUTH (auto | required) and RAY_CLIENT_SERVER: see ot_hpc.rayauth.
    ray_auth: str = "auto"
    ray_client_server: bool = False
    # The SkyRL line the overrides are checked and quoted for (ot_hpc.skyrl_lines), and
    # what was detected in TRAINER_PYTHON (lines for --show-config and the dry run).
    skyrl_line: str = "skyrl"
    skyrl_summary: Tuple[str, ...] = ()
    # The cluster's KillWait as its Slurm reported it at submission (None: unknown), and
    # the hang and tunnel limits (seconds, 0 = never): see ot_hpc.shutdown_budget.
    kill_wait_seconds: Optional[int] = None
    trainer_idle_timeout_seconds: int = 0
    tunnel_down_limit_seconds: int = 0


@dataclass(frozen=True)
class ValidationResult:
    job: Optional[ValidatedJob]
    problems: Tuple[Problem, ...]
    warnings: Tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.job is not None
