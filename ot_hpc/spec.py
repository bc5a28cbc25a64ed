"""The job spec: the contract between ot-submit (login node) and the runner (compute node).

ot-submit resolves the whole configuration on the login node and writes it as JSON
(mode 0600) under the experiments directory; the batch script runs
``python -m ot_hpc.runner <spec.json>``. The spec is the job's only input besides the
secret env file: the site env file's variables (resolved on the login node), the
activation settings and the cluster's facts are all in it, so an edit made after
submission never changes a running or requeued job. The spec holds no secret *values*:
only the path of the secret env file, which the runner reads on the compute node.

Compatibility rule: the spec carries :data:`SPEC_VERSION`; a runner reads exactly its
own version and refuses any other in one line (:class:`SpecVersionError`). Within a
version, fields are only ever added, optional and with a default that keeps the old
behaviour: a runner reads the older specs of its version (a requeued job keeps running),
and an older runner refuses a newer spec's unknown fields in one line.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

SPEC_VERSION = 2


class SpecVersionError(ValueError):
    """The spec was written by another ot-hpc (another schema version)."""


@dataclass(frozen=True)
class JobSpec:
    job_name: str
    cluster: str  # registry name, e.g. "jsc_jureca", "local"
    num_nodes: int
    experiments_dir: str
    # The trainer: ``<trainer_python> -m <entrypoint_module> <*overrides>``; argv, no shell.
    # (The runner's own interpreter is the batch script's, PYTHON.)
    trainer_python: str
    entrypoint_module: str
    overrides: Tuple[str, ...] = ()
    gpus_per_node: int = 0
    cpus_per_node: Optional[int] = None  # None: take it from the allocation
    secret_env_file: Optional[str] = None
    # Non-secret environment the runner exports to Ray and the trainer: the site env
    # file's variables with the job config's on top, resolved on the login node.
    environment: Mapping[str, str] = field(default_factory=dict)
    max_restarts: int = 0
    # Egress / tunnel (the runner probes first and tunnels only when needed).
    needs_tunnel: Optional[bool] = None  # None: decide from the cluster and the probe
    egress_probe: str = "huggingface.co:443"
    login_node: Optional[str] = None
    ssh_port: int = 22
    ssh_user: Optional[str] = None
    # Ray readiness: fail the job if a node has not joined after this many seconds.
    ray_join_timeout_seconds: int = 300
    # Seconds between SIGTERM and SIGKILL when stopping the trainer.
    # Below Slurm's KillWait (commonly 30 s), or Slurm SIGKILLs the runner first.
    shutdown_grace_seconds: int = 15
    # Resolved configuration, for humans (ot-status, debugging): key -> value.
    resolved_config: Mapping[str, str] = field(default_factory=dict)
    version: int = SPEC_VERSION
    # The cluster as ot-submit resolved it (ot_hpc.cluster_facts.to_facts); empty only
    # in hand-made specs, where the built-in cluster of that name is used.
    cluster_facts: Mapping[str, Any] = field(default_factory=dict)
    ssh_key: Optional[str] = None  # path of the tunnel's private key (never its content)
    trainer_working_dir: Optional[str] = None  # SKYRL_HOME: cwd of the trainer
    env_activate: Optional[str] = None  # script to source first (venv activate / conda.sh)
    conda_env: Optional[str] = None  # conda env (name or path) to activate after env_activate
    modules: str = ""  # space-separated environment modules to `module load`
    extra_pythonpath: str = ""  # ':'-separated, prepended to PYTHONPATH for the trainer
    time_limit_minutes: Optional[int] = None
    created_at: Optional[str] = None  # UTC ISO 8601, when ot-submit built the spec
    # --- upload of the final policy (ot_hpc.upload); all optional ---
    upload_repo: Optional[str] = None  # HF repo id org/name; None: no upload
    upload_private: bool = True
    # Model directory, or export directory whose latest global_step_<N>/policy is taken;
    # may hold ${HOME} (expanded on the compute node). None: SkyRL's default export path.
    upload_path: Optional[str] = None
    # Custom Ray resources every node registers (``ray start --resources``): a JSON object
    # text such as '{"vllm_instance": 1}'; "" = none.
    ray_resources: str = ""
    # Ray token authentication (ot_hpc.rayauth): "auto" or "required"; the Ray Client
    # server (ray://) only when asked for.
    ray_auth: str = "auto"
    ray_client_server: bool = False
    # The cluster's KillWait as its Slurm reported it at submission (None: unknown, the
    # runner then assumes Slurm's default 30 s): the deadline of the runner's shutdown
    # (ot_hpc.shutdown_budget).
    kill_wait_seconds: Optional[int] = None
    # Stop a trainer that printed nothing for this long (exit 7), fail the job when the
    # tunnel stayed down this long (exit 3); seconds, 0 = never.
    trainer_idle_timeout_seconds: int = 0
    tunnel_down_limit_seconds: int = 0

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.experiments_dir, "logs")

    def log_path(self, job_id: str) -> str:
        return os.path.join(self.logs_dir, f"{self.job_name}_{job_id}.log")

    def state_path(self, job_id: str) -> str:
        """The run-state file (see ot_hpc.runstate) next to the log."""
        return os.path.join(self.logs_dir, f"{self.job_name}_{job_id}.state.json")

    def trainer_argv(self) -> List[str]:
        return [self.trainer_python, "-m", self.entrypoint_module, *self.overrides]

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["overrides"] = list(self.overrides)
        data["environment"] = dict(self.environment)
        data["resolved_config"] = dict(self.resolved_config)
        data["cluster_facts"] = dict(self.cluster_facts)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        if not isinstance(data, Mapping):
            raise ValueError("job spec is not a JSON object (truncated or edited?)")
        check_version(data.get("version"))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"job spec has unknown fields {unknown}: written by a newer ot-hpc?")
        values = dict(data)
        values["overrides"] = tuple(values.get("overrides", ()))
        return cls(**values)


def check_version(version: object) -> None:
    """Raise :class:`SpecVersionError` (one line, with the fix) unless ``version`` is ours."""
    if version == SPEC_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > SPEC_VERSION:
        raise SpecVersionError(
            f"job spec schema version {version} is newer than this runner's {SPEC_VERSION}: "
            "install the ot-hpc that submitted it into the compute nodes' PYTHON")
    raise SpecVersionError(
        f"job spec schema version {version!r} is not this runner's {SPEC_VERSION} (written by "
        "another ot-hpc): submit the job again with this ot-hpc's ot-submit")


def spec_to_json(spec: JobSpec) -> str:
    return json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n"


def write_spec(path: str, spec: JobSpec) -> None:
    """Write atomically with mode 0600 (created so, never chmod-ed after the fact), never
    replacing an existing file: the complete spec is written to a temporary file, then
    hard-linked to ``path``, which raises :class:`FileExistsError` when ``path`` exists
    (another submission's spec is never overwritten)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".spec-", dir=directory)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(spec_to_json(spec))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:
            # A filesystem without hard links: exclusive create, then copy the content.
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(out, "w") as handle:
                handle.write(spec_to_json(spec))
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def spec_problem(exc: BaseException) -> str:
    """What :func:`read_spec`'s error means, in one line ending with the fix."""
    again = "submit the job again with ot-submit"
    if isinstance(exc, SpecVersionError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"no such file; {again} (ot-rmlogs keeps the specs of queued jobs)"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}; fix its permissions or {again}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not a text file (byte {exc.start + 1} is not UTF-8); {again}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not complete JSON ({exc.msg}, line {exc.lineno}: truncated?); {again}"
    return f"{exc}; {again}"


def read_spec(path: str) -> JobSpec:
    with open(path) as handle:
        return JobSpec.from_dict(json.load(handle))
