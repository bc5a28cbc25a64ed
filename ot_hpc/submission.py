"""Build, show, schedule: the only module of ot-submit that touches the world.

torchx style::

    request = build(config)      # validate and assemble; pure apart from reading files
    print(dryrun(request))       # the exact job description, batch script, spec, command
    submitted = schedule(request, scheduler)  # writes the spec (0600) and submits

``schedule`` is the only function that creates files or directories, downloads or talks to
Slurm. Hugging Face ids planned for a login-node pre-download (``PREDOWNLOAD``, see
:mod:`ot_hpc.predownload`) are fetched first, then the spec is written with the local
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

import json
import os
import secrets
import shlex
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .config import MergedConfig, Problem
from .durations import format_minutes
from .monitor.dirs import remember_experiments_dir
from .paths import package_import_root
from .predownload import (INSTALL_HINT, Download, PredownloadError, describe, fetch,  # noqa: F401
                          huggingface_hub_available, localized_overrides, plan_downloads,
                          read_hf_token)
from .scheduler.base import JobRecord, JobRequest, JobState, Scheduler
from .spec import JobSpec, spec_to_json, write_spec
from .validate import PartitionLimits, ValidatedJob, validate

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
        python=job.trainer_python,
        entrypoint_module=job.entrypoint,
        overrides=tuple(o.text for o in job.overrides),
        gpus_per_node=job.gpus_per_node,
        cpus_per_node=job.cpus_per_node,
        site_env_file=job.site_env_file,
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
        resolved_config=dict(job.resolved_config),
        ssh_key=job.ssh_key,
        trainer_working_dir=job.skyrl_home,
        env_activate=job.env_activate,
        conda_env=job.conda_env,
        modules=job.modules,
        extra_pythonpath=job.extra_pythonpath,
        time_limit_minutes=job.time_limit_minutes,
        restart_signal=RESTART_SIGNAL,
        created_at=job.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        upload_repo=job.upload_repo,
        upload_private=job.upload_private,
        upload_path=job.upload_path if job.upload_repo else None,
        ray_resources=job.ray_resources,
    )
    log_pattern = os.path.join(spec.logs_dir, f"{job.job_name}_%j.log")
    seconds = signal_seconds(job)
    request = JobRequest(
        script=batch_script(job.python, spec_path),
        name=job.job_name,
        nodes=job.num_nodes,
        time_limit_minutes=job.time_limit_minutes,
        environment=job_environment(job, environ),
        ntasks_per_node=1,
        cpus_per_task=job.cpus_per_node,
        gpus_per_node=job.gpus_per_node,
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
                             plan_downloads(job, job.cluster))


def with_snapshots(request: SubmissionRequest, snapshots: Mapping[Download, str],
                   replacements: Optional[Mapping[Download, Sequence[str]]] = None,
                   ) -> SubmissionRequest:
    """The request with every downloaded Hugging Face id replaced by its local snapshot
    directory in the overrides (job and spec), or by the ``replacements`` of a download
    (the extracted task directories of a Harbor dataset); the batch script and job
    description are unchanged (they name the spec file, not its contents)."""
    if not request.downloads:
        return request
    overrides = localized_overrides(request.job, request.downloads, snapshots, replacements)
    job = replace(request.job, overrides=overrides)
    spec = replace(request.spec, overrides=tuple(o.text for o in overrides))
    return replace(request, job=job, spec=spec)


def reachable_slurm_cluster_name(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """ClusterName of the slurm.conf this login node's Slurm reads (``$SLURM_CONF``, else
    the usual places); None when there is none. A file read, no Slurm call."""
    from .scheduler.pyslurm_backend import DEFAULT_CONFIG_PATHS  # cheap: no pyslurm import

    environ = os.environ if environ is None else environ
    configured = environ.get("SLURM_CONF")
    for path in ((configured,) if configured else DEFAULT_CONFIG_PATHS):
        try:
            with open(path) as handle:
                for line in handle:
                    key, _, value = line.split("#", 1)[0].partition("=")
                    if key.strip().lower() == "clustername" and value.strip():
                        return value.strip()
        except OSError:
            continue
    return None


def partition_limits(config: MergedConfig, scheduler_factory: Callable[[], Scheduler],
                     environ: Optional[Mapping[str, str]] = None) -> Optional[PartitionLimits]:
    """PARTITION's limits from the scheduler, when the Slurm reachable from here is the
    config's cluster; None (use the cluster registry's numbers) when it is another one,
    or the scheduler is unavailable or cannot tell. Read-only: never submits anything."""
    from .scheduler.base import BackendUnavailable, SchedulerError

    partition = (config.value("PARTITION") or "").strip()
    if not partition:
        return None
    cluster = config.cluster
    reachable = (reachable_slurm_cluster_name(environ) or "").lower()
    if not reachable or reachable not in {cluster.name.lower(),
                                          *(n.lower() for n in cluster.slurm_cluster_names)}:
        return None
    try:
        scheduler = scheduler_factory()
        info = scheduler.get_partition(partition)
        if info is not None:
            return PartitionLimits(partition, info.node_limit, info.max_time_minutes)
        names = scheduler.list_partition_names()
    except (BackendUnavailable, SchedulerError, OSError):
        return None
    if not names:
        return None
    return PartitionLimits(partition, exists=False, available=tuple(names))


def build(
    config: MergedConfig,
    now: Optional[datetime] = None,
    cwd: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    run_skyrl_check: bool = True,
    limits: Optional[PartitionLimits] = None,
) -> SubmissionRequest:
    """Validate and assemble; raises :class:`ValidationFailed` listing every problem.
    ``limits``: PARTITION's limits from the scheduler (see :func:`partition_limits`)."""
    environ = os.environ if environ is None else environ
    result = validate(config, now=now, cwd=cwd, run_skyrl_check=run_skyrl_check, environ=environ,
                      partition_limits=limits)
    if not result.ok or result.job is None:
        raise ValidationFailed(result.problems, result.warnings)
    return build_from_job(result.job, environ, result.warnings)


# ------------------------------------------------------------------------------------
# dryrun
# ------------------------------------------------------------------------------------


def sbatch_lines(request: JobRequest) -> List[str]:
    """The job description as ``#SBATCH`` lines (what the scheduler layer receives)."""
    try:
        from .scheduler.cli import sbatch_arguments
    except ImportError:  # pragma: no cover - the CLI backend is part of the package
        sbatch_arguments = None  # type: ignore[assignment]
    if sbatch_arguments is not None:
        arguments = sbatch_arguments(request)
    else:  # pragma: no cover
        arguments = [f"--job-name={request.name}", f"--nodes={request.nodes}"]
    return [f"#SBATCH {argument}" for argument in arguments]


def predownload_lines(request: SubmissionRequest) -> List[str]:
    """Comment lines: what ``schedule`` would download first, and the paths SkyRL would get."""
    if not request.downloads:
        return []
    job = request.job
    mode = (job.resolved_config.get("PREDOWNLOAD") or "auto").strip().lower()
    why = (f"PREDOWNLOAD=auto: compute nodes of {job.cluster.name} have no internet"
           if mode == "auto" else f"PREDOWNLOAD={mode}")
    out = ["#", f"# Pre-download ({why}):",
           f"# on submission (not now) ot-submit downloads into {request.downloads[0].cache_dir}"
           " and gives SkyRL the local snapshots:"]
    pending = False
    for download in request.downloads:
        cached = download.cached_snapshot()
        pending = pending or cached is None
        out.append(f"#   {describe(download, download.expected_snapshot(), cached is not None)}")
    if pending:
        out.append("#   (<main>: the commit `main` points to when it is downloaded)")
    if not huggingface_hub_available():
        out.append(f"# Note: huggingface_hub does not import here, so the submission would stop: "
                   f"{INSTALL_HINT}")
    out.extend(harbor_lines(request))
    return out


def planned_harbor(request: SubmissionRequest) -> Dict[Download, Tuple[Tuple[str, str], ...]]:
    """Datasets already in the cache whose snapshot holds Harbor task parquets: per
    download, (parquet, extraction directory) pairs. Reads only (the parquet footers)."""
    from .harbor import extraction_dir, harbor_parquets

    found: Dict[Download, Tuple[Tuple[str, str], ...]] = {}
    for download in request.downloads:
        snapshot = download.cached_snapshot() if download.kind == "dataset" else None
        if snapshot is not None:
            pairs = tuple((p, extraction_dir(snapshot, p)) for p in harbor_parquets(snapshot))
            if pairs:
                found[download] = pairs
    return found


def harbor_lines(request: SubmissionRequest) -> List[str]:
    """Comment lines: Harbor task parquets that ``schedule`` would extract (never now)."""
    datasets = [d for d in request.downloads if d.kind == "dataset"]
    if not datasets:
        return []
    from .harbor import EXTRACT_DIR, PYARROW_HINT, is_extracted, pyarrow_available

    found = planned_harbor(request)
    pending = any(d.cached_snapshot() is None for d in datasets)
    if not found and not pending:
        return []
    out = ["# Harbor task parquets (columns path, task_binary) in a downloaded dataset are "
           "extracted on submission (not now)",
           f"# to <repo folder>/{EXTRACT_DIR}/<commit>/<parquet name>/ and SkyRL gets those "
           "directories instead of the snapshot:"]
    for download, pairs in found.items():
        for parquet, dest in pairs:
            done = "  (already extracted)" if is_extracted(parquet, dest) else ""
            out.append(f"#   {download.target_setting}: {parquet} -> {dest}{done}")
    if pending:
        out.append("#   (datasets not in the cache yet are checked after their download)")
    if found and not pyarrow_available():
        out.append(f"# Note: pyarrow does not import here, so the submission would stop: {PYARROW_HINT}")
    return out


def harbor_replacements(found: Mapping[Download, Tuple[Tuple[str, str], ...]]
                        ) -> Dict[Download, Tuple[str, ...]]:
    return {download: tuple(dest for _p, dest in pairs) for download, pairs in found.items()}


def upload_lines(request: SubmissionRequest) -> List[str]:
    """Comment lines: the upload the runner would do after a successful run (UPLOAD_REPO)."""
    spec = request.spec
    if not spec.upload_repo:
        return []
    from .upload import SKYRL_DEFAULT_EXPORT, describe_plan

    return ["#", "# Upload (UPLOAD_REPO): " + describe_plan(
        spec.upload_repo, spec.upload_private, spec.upload_path or SKYRL_DEFAULT_EXPORT)]


def dryrun(request: SubmissionRequest) -> str:
    """Exactly what ``schedule`` would write and submit, as text. Touches nothing: planned
    downloads are shown (with the snapshot paths they would give), not done."""
    planned = predownload_lines(request)
    request = with_snapshots(request, {d: d.expected_snapshot() for d in request.downloads},
                             harbor_replacements(planned_harbor(request)))
    jr = request.job_request
    script_lines = jr.script.rstrip("\n").split("\n")
    out: List[str] = [script_lines[0]]
    out.append("# ot-submit --dry-run: nothing was written and nothing was submitted.")
    out.append(f"# cluster {request.job.cluster.name}, time limit "
               f"{format_minutes(jr.time_limit_minutes)}, log {request.log_path_pattern}")
    out.extend(sbatch_lines(jr))
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


def fetch_planned(request: SubmissionRequest,
                  report: Optional[Callable[[str], None]] = None) -> SubmissionRequest:
    """Fetch the planned downloads; return the request with the local snapshot paths.

    The token is HF_TOKEN of the secret env file, read here and passed to huggingface_hub
    only; the endpoint is the job environment's HF_ENDPOINT (default: the library's).
    Raises :class:`~ot_hpc.predownload.PredownloadError` (one line)."""
    if not request.downloads:
        return request
    job = request.job
    snapshots = fetch(request.downloads, token=read_hf_token(job.secret_env_file),
                      endpoint=job.environment.get("HF_ENDPOINT") or None, report=report)
    return with_snapshots(request, snapshots, extract_harbor(request.downloads, snapshots, report))


def extract_harbor(downloads: Sequence[Download], snapshots: Mapping[Download, str],
                   report: Optional[Callable[[str], None]] = None) -> Dict[Download, Tuple[str, ...]]:
    """Extract the Harbor task parquets of every downloaded dataset (each snapshot once);
    per download, the extracted directories SkyRL gets instead of the snapshot.
    Raises :class:`~ot_hpc.harbor.HarborError` (a PredownloadError, one line)."""
    from .harbor import extract_snapshot

    done: Dict[str, Tuple[str, ...]] = {}
    result: Dict[Download, Tuple[str, ...]] = {}
    for download in downloads:
        if download.kind != "dataset":
            continue
        snapshot = snapshots[download]
        if snapshot not in done:
            done[snapshot] = extract_snapshot(snapshot, f"{download.target_setting}={download.item}",
                                              report)
        if done[snapshot]:
            result[download] = done[snapshot]
            if report is not None:
                dropped = f" (split {download.split!r} does not apply to task folders)" \
                    if download.split else ""
                report(f"harbor: {download.target_setting}: {download.item} -> "
                       f"{', '.join(done[snapshot])}{dropped}")
    return result


def schedule(request: SubmissionRequest, scheduler: Scheduler,
             report: Optional[Callable[[str], None]] = None) -> SubmittedJob:
    """Pre-download (when planned), create logs/ and specs/, write the spec (0600,
    atomically), submit.

    A failed download raises :class:`~ot_hpc.predownload.PredownloadError` before anything
    is written or submitted. When the submission fails the spec is removed again and the
    error propagates.
    """
    request = fetch_planned(request, report)
    os.makedirs(os.path.dirname(request.log_path_pattern), exist_ok=True)
    write_spec(request.spec_path, request.spec)
    try:
        job_id = scheduler.submit(request.job_request)
    except BaseException:
        try:
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


# ------------------------------------------------------------------------------------
# wait
# ------------------------------------------------------------------------------------


def exit_code_for(record: JobRecord) -> int:
    """0 on COMPLETED, else the job's non-zero exit code, else 1."""
    if record.state is JobState.COMPLETED:
        return 0
    if record.exit_code:
        return int(record.exit_code)
    return 1


def wait_for_job(
    scheduler: Scheduler,
    job_id: int,
    requeue: bool = False,
    on_change: Optional[Callable[[JobRecord], None]] = None,
    first_delay: float = 2.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    timeout_seconds: Optional[float] = None,
    clock: Callable[[], float] = time.monotonic,
) -> JobRecord:
    """Poll ``get_job`` with exponential backoff (2 s, x1.5, at most 60 s) until the job
    has finished; return its last record. With ``requeue``, PREEMPTED/NODE_FAIL are not
    final while the job may come back (polled three more times)."""
    delay = first_delay
    last_state: Optional[JobState] = None
    unknown_polls = 0
    not_final_polls = 0
    started = clock()
    while True:
        record = scheduler.get_job(job_id)
        if record is None:
            unknown_polls += 1
            if unknown_polls >= 5:
                from .scheduler.base import SchedulerError

                raise SchedulerError(f"job {job_id} is unknown to the controller and accounting")
        else:
            unknown_polls = 0
            if record.state != last_state:
                last_state = record.state
                if on_change is not None:
                    on_change(record)
                delay = first_delay  # something moved: look again soon
            if record.state.is_finished:
                comes_back = requeue and record.state in (JobState.PREEMPTED, JobState.NODE_FAIL)
                if not comes_back or not_final_polls >= 3:
                    return record
                not_final_polls += 1
        if timeout_seconds is not None and clock() - started > timeout_seconds:
            from .scheduler.base import SchedulerError

            raise SchedulerError(f"gave up waiting for job {job_id} after {timeout_seconds:.0f} s")
        sleep(delay)
        delay = min(max_delay, delay * 1.5)


def describe_record(record: JobRecord) -> str:
    parts = [f"job {record.job_id}: {record.state.value}"]
    if record.reason and record.state is JobState.PENDING:
        parts.append(f"({record.reason})")
    if record.node_list:
        parts.append(f"on {record.node_list}")
    if record.state.is_finished and record.exit_code is not None:
        parts.append(f"exit code {record.exit_code}")
    return " ".join(parts)


def spec_json(request: SubmissionRequest) -> Dict[str, object]:
    return json.loads(spec_to_json(request.spec))
