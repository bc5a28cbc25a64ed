"""Build, show, schedule: the only module of ot-submit that touches the world.

torchx style::

    request = build(config)      # validate and assemble; pure apart from reading files
    print(dryrun(request))       # the exact job description, batch script, spec, command
    submitted = schedule(request, scheduler)  # writes the spec (0600) and submits

``schedule`` is the only function that creates files or directories, downloads or talks to
Slurm. Hugging Face ids planned for a login-node pre-download (``PREDOWNLOAD``, see
:mod:`ot_hpc.stage`) are fetched first, then the spec is written with the local
snapshot paths; a failed download stops everything before a file is written. The dry run
shows what would be downloaded and the paths SkyRL would get, and downloads nothing.

The restart contract (``MAX_RESTARTS=N``, implemented by the runner): the job is
submitted with ``--requeue``; when the trainer fails, or the job gets USR2 before the
time limit / is preempted, and ``SLURM_RESTART_COUNT`` (0 on the first run) is below
``spec.max_restarts``, the runner asks the scheduler layer to requeue the same job id
(``Scheduler.requeue``) instead of exiting with the failure. A successful trainer never
requeues. ``build`` adds ``trainer.resume_mode=latest`` and a stable
``trainer.ckpt_path=<experiments>/checkpoints/<job_name>`` to the overrides unless the
user set them, so a restart resumes from the latest checkpoint. No dependency chain.
"""
from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .cluster_facts import to_facts
from .config.merge import MergedConfig
from .config.problems import Problem
from .durations import format_minutes
from .monitor.dirs import remember_experiments_dir
from .paths import package_import_root
from .scheduler.base import JobRequest, PartitionLimits, Scheduler, SubmissionUncertain
from .scheduler.commands import sbatch_lines
from .spec import JobSpec, spec_to_json, write_spec
from .stage import run as staging
from .stage.plan import Download, localized_overrides, plan_downloads
from .validate.job import ValidatedJob
from .validate.run import validate

RUNNER_MODULE = "ot_hpc.runner"
RESTART_SIGNAL = "USR2"
# Copied from the submitting environment when set: what the runner needs, nothing else.
PASSTHROUGH_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "SLURM_CONF")
OT_HPC_ENV_PREFIX = "OT_HPC_"


class ValidationFailed(Exception):
    """The input has problems; ``problems`` holds one :class:`Problem` per line."""

    def __init__(self, problems: Sequence[Problem], warnings: Sequence[str] = ()) -> None:
        super().__init__("\n".join(p.line() for p in problems))
        self.problems = tuple(problems)
        self.warnings = tuple(warnings)


@dataclass(frozen=True)
class SubmissionRequest:
    job: ValidatedJob
    job_request: JobRequest
    spec: JobSpec
    spec_path: str
    log_path_pattern: str  # <experiments>/logs/<job_name>_%j.log
    warnings: Tuple[str, ...] = ()
    downloads: Tuple[Download, ...] = ()  # fetched by schedule, before the spec is written

    def log_path(self, job_id: int) -> str:
        return self.spec.log_path(str(job_id))

    def trainer_command(self) -> str:
        return shlex.join(self.spec.trainer_argv())


@dataclass(frozen=True)
class SubmittedJob:
    job_id: int
    spec_path: str
    log_path: str


# ------------------------------------------------------------------------------------
# build
# ------------------------------------------------------------------------------------


def batch_script(python: str, spec_path: str) -> str:
    """The whole batch script: start the runner with the compute nodes' interpreter."""
    return f"#!/bin/bash\nexec {shlex.quote(python)} -m {RUNNER_MODULE} {shlex.quote(spec_path)}\n"


def job_environment(job: ValidatedJob, environ: Mapping[str, str]) -> Dict[str, str]:
    """The job's whole environment: a few login variables, OT_HPC_*, and PYTHONPATH when
    ot_hpc is not installed in site-packages. Never a secret: those stay in the secret file."""
    env: Dict[str, str] = {}
    for key in PASSTHROUGH_ENV:
        if environ.get(key):
            env[key] = environ[key]
    for key, value in environ.items():
        if key.startswith(OT_HPC_ENV_PREFIX):
            env[key] = value
    env["OT_HPC_CLUSTER"] = job.cluster.name
    root = str(package_import_root())
    if os.path.basename(root) not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = root
    return env


def signal_seconds(job: ValidatedJob) -> int:
    """USR2 this many seconds before the end: SIGNAL_SECONDS, at most a quarter of the job."""
    return max(0, min(job.signal_seconds, job.time_limit_minutes * 60 // 4))


def spec_path_for(job: ValidatedJob, suffix: Optional[str] = None) -> str:
    """``<experiments>/specs/<job_name>_<UTC stamp>_<6 hex>.json``: the random suffix keeps
    two submissions of one name in one second apart (``write_spec`` never overwrites)."""
    stamp = job.created_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = secrets.token_hex(3) if suffix is None else suffix
    return os.path.join(job.experiments_dir, "specs", f"{job.job_name}_{stamp}_{suffix}.json")


def build_from_job(job: ValidatedJob, environ: Mapping[str, str],
                   warnings: Sequence[str] = ()) -> SubmissionRequest:
    spec_path = spec_path_for(job)
    spec = JobSpec(
        job_name=job.job_name,
        cluster=job.cluster.name,
        num_nodes=job.num_nodes,
        experiments_dir=job.experiments_dir,
        trainer_python=job.trainer_python,
        entrypoint_module=job.entrypoint,
        overrides=tuple(o.text for o in job.overrides),
        gpus_per_node=job.gpus_per_node,
        cpus_per_node=job.cpus_per_node,
        secret_env_file=job.secret_env_file,
        environment=dict(job.environment),
        max_restarts=job.max_restarts,
        needs_tunnel=job.needs_tunnel,
        egress_probe=job.egress_probe,
        login_node=job.login_node,
        ssh_port=job.ssh_port,
        ssh_user=job.ssh_user,
        ray_join_timeout_seconds=job.ray_join_timeout_seconds,
        shutdown_grace_seconds=job.shutdown_grace_seconds,
        kill_wait_seconds=job.kill_wait_seconds,
        trainer_idle_timeout_seconds=job.trainer_idle_timeout_seconds,
        tunnel_down_limit_seconds=job.tunnel_down_limit_seconds,
        resolved_config=dict(job.resolved_config),
        ssh_key=job.ssh_key,
        trainer_working_dir=job.skyrl_home,
        env_activate=job.env_activate,
        conda_env=job.conda_env,
        modules=job.modules,
        extra_pythonpath=job.extra_pythonpath,
        time_limit_minutes=job.time_limit_minutes,
        created_at=job.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        upload_repo=job.upload_repo,
        upload_private=job.upload_private,
        upload_path=job.upload_path if job.upload_repo else None,
        ray_resources=job.ray_resources,
        ray_auth=job.ray_auth,
        ray_client_server=job.ray_client_server,
        cluster_facts=to_facts(job.cluster),
    )
    log_pattern = os.path.join(spec.logs_dir, f"{job.job_name}_%j.log")
    seconds = signal_seconds(job)
    request = JobRequest(
        script=batch_script(job.runner_python, spec_path),
        name=job.job_name,
        nodes=job.num_nodes,
        time_limit_minutes=job.time_limit_minutes,
        environment=job_environment(job, environ),
        ntasks_per_node=1,
        cpus_per_task=job.cpus_per_node,
        # GRES only where the cluster schedules GPUs so; whole nodes bring their own.
        gpus_per_node=job.gpus_per_node if job.cluster.gpu_request == "gres" else 0,
        memory_per_node_mb=job.memory_per_node_gb * 1024 if job.memory_per_node_gb else None,
        partition=job.partition,
        account=job.account,
        qos=job.qos,
        exclude_nodes=job.exclude_nodes,
        output_path=log_pattern,
        working_directory=job.experiments_dir,
        signal_name=RESTART_SIGNAL if seconds else None,
        signal_seconds_before_end=seconds,
        signal_batch_only=True,
        requeue=job.max_restarts > 0,
        append_output=job.max_restarts > 0,  # every run of a requeued job in one log
        hold=job.hold,
    )
    return SubmissionRequest(job, request, spec, spec_path, log_pattern, tuple(warnings),
                             plan_downloads(job.mapped_values, job.hub_cache, job.environment,
                                            job.resolved_config.get("PREDOWNLOAD"), job.cluster))


def with_snapshots(request: SubmissionRequest, snapshots: Mapping[Download, str],
                   replacements: Optional[Mapping[Download, Sequence[str]]] = None,
                   ) -> SubmissionRequest:
    """The request with every downloaded Hugging Face id replaced by its local snapshot
    directory in the overrides (job and spec), or by the ``replacements`` of a download
    (the extracted task directories of a Harbor dataset); the batch script and job
    description are unchanged (they name the spec file, not its contents)."""
    if not request.downloads:
        return request
    overrides = localized_overrides(request.job.overrides, request.job.mapped_values,
                                    request.downloads, snapshots, replacements,
                                    request.job.skyrl_line)
    job = replace(request.job, overrides=overrides)
    spec = replace(request.spec, overrides=tuple(o.text for o in overrides))
    return replace(request, job=job, spec=spec)


def build(
    config: MergedConfig,
    now: Optional[datetime] = None,
    cwd: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    run_skyrl_check: bool = True,
    limits: Optional[PartitionLimits] = None,
) -> SubmissionRequest:
    """Validate and assemble; raises :class:`ValidationFailed` listing every problem.
    ``limits``: PARTITION's limits from the scheduler (``Scheduler.partition_limits``)."""
    environ = os.environ if environ is None else environ
    result = validate(config, now=now, cwd=cwd, run_skyrl_check=run_skyrl_check, environ=environ,
                      partition_limits=limits)
    if not result.ok or result.job is None:
        raise ValidationFailed(result.problems, result.warnings)
    return build_from_job(result.job, environ, result.warnings)


# ------------------------------------------------------------------------------------
# dryrun
# ------------------------------------------------------------------------------------


def predownload_lines(request: SubmissionRequest) -> List[str]:
    """Comment lines: what ``schedule`` would download first, and the paths SkyRL would get
    (:func:`ot_hpc.stage.run.predownload_lines` for this request)."""
    job = request.job
    return staging.predownload_lines(request.downloads, job.resolved_config.get("PREDOWNLOAD"),
                                     job.cluster.name)


def upload_lines(request: SubmissionRequest) -> List[str]:
    """Comment lines: the upload the runner would do after a successful run (UPLOAD_REPO)."""
    spec = request.spec
    if not spec.upload_repo:
        return []
    from .upload import SKYRL_DEFAULT_EXPORT, describe_plan

    return ["#", "# Upload (UPLOAD_REPO): " + describe_plan(
        spec.upload_repo, spec.upload_private, spec.upload_path or SKYRL_DEFAULT_EXPORT)]


def dryrun(request: SubmissionRequest, scheduler: Optional[Scheduler] = None) -> str:
    """Exactly what ``schedule`` would write and submit, as text. Touches nothing: planned
    downloads are shown (with the snapshot paths they would give), not done. The job
    description is the one ``scheduler`` would hand Slurm (``describe_submission``);
    without one, the command-line backend's ``#SBATCH`` lines."""
    planned = predownload_lines(request)
    request = with_snapshots(request, *staging.expected_paths(request.downloads))
    jr = request.job_request
    script_lines = jr.script.rstrip("\n").split("\n")
    out: List[str] = [script_lines[0]]
    out.append("# ot-submit --dry-run: nothing was written and nothing was submitted.")
    out.append(f"# cluster {request.job.cluster.name}, time limit "
               f"{format_minutes(jr.time_limit_minutes)}, log {request.log_path_pattern}")
    out.extend(f"# {line}" for line in request.job.skyrl_summary)
    out.extend(scheduler.describe_submission(jr) if scheduler is not None else sbatch_lines(jr))
    out.append("#")
    out.append("# The job's environment (exactly these variables, nothing else from this shell):")
    for key in sorted(jr.environment):
        out.append(f"#   {key}={shlex.quote(jr.environment[key])}")
    out.extend(planned)
    out.extend(upload_lines(request))
    out.append("#")
    out.extend(script_lines[1:])
    out.append("#")
    out.append(f"# Job spec, written with mode 0600 to {request.spec_path}:")
    for line in spec_to_json(request.spec).rstrip("\n").split("\n"):
        out.append(f"#   {line}")
    out.append("#")
    out.append("# Trainer command, run by the runner on the first node:")
    out.append(f"#   {request.trainer_command()}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------
# schedule
# ------------------------------------------------------------------------------------


def uncertain_message(exc: BaseException, request: SubmissionRequest) -> str:
    """One line for a submission that may or may not have created the job."""
    why = str(exc) or "interrupted"
    return (f"the submission of {request.job.job_name} did not finish ({why}); the job may "
            f"exist, so its spec is kept at {request.spec_path}: check with `ot-status` (a job "
            f"named {request.job_request.name}); if none is listed, nothing was submitted and "
            f"the spec can be removed")


def schedule(request: SubmissionRequest, scheduler: Scheduler,
             report: Optional[Callable[[str], None]] = None) -> SubmittedJob:
    """Pre-download (when planned), create logs/ and specs/, write the spec (0600,
    atomically), submit.

    A failed download raises :class:`~ot_hpc.stage.errors.StageError` before anything
    is written or submitted. When the submission fails the spec is removed again and the
    error propagates; when it may have created the job (a time-out after sending, Ctrl-C)
    the spec is kept and :class:`SubmissionUncertain` says how to check.
    """
    job = request.job
    request = with_snapshots(request, *staging.fetch_and_extract(
        request.downloads, job.secret_env_file, job.environment.get("HF_ENDPOINT") or None, report,
        job.environment))
    os.makedirs(os.path.dirname(request.log_path_pattern), exist_ok=True)
    write_spec(request.spec_path, request.spec)
    try:
        job_id = scheduler.submit(request.job_request)
    except (SubmissionUncertain, KeyboardInterrupt) as exc:
        # The job may exist: it needs its spec. Keep it and say how to find out.
        raise SubmissionUncertain(uncertain_message(exc, request)) from None
    except BaseException:
        try:  # Slurm refused, or nothing reached it: no job, so no spec either
            os.unlink(request.spec_path)
        except OSError:
            pass
        raise
    try:  # so ot-status/ot-sfail/ot-rmlogs find this directory without being told
        remember_experiments_dir(request.spec.experiments_dir)
    except OSError as exc:
        if report:
            report(f"warning: could not remember {request.spec.experiments_dir} for the "
                   f"monitoring commands ({exc}); pass them --experiments-dir")
    return SubmittedJob(job_id, request.spec_path, request.log_path(job_id))
