"""``validate()``: every section checker in order, then the typed job."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..config.merge import MergedConfig
from ..config.problems import Problem
from ..config.settings import SETTINGS_BY_KEY
from ..scheduler.base import PartitionLimits
from .fields import Context, Section
from .job import ValidatedJob, ValidationResult
from .overrides import check_job_name, check_overrides
from .paths import check_interpreters, check_paths, check_tunnel
from .rayauth_check import check_ray_auth
from .skyrl import check_skyrl_config, check_skyrl_rules
from .skyrl_install import check_skyrl_install
from .slurm import check_controls, check_resources
from .upload_check import check_upload

Checker = Callable[[Context, Mapping[str, Any]], Section]

# In this order: a later checker may use what an earlier one found, and the problems
# are listed in this order.
SECTIONS: Tuple[Checker, ...] = (
    check_resources,
    check_controls,
    check_interpreters,
    check_paths,
    check_skyrl_install,
    check_ray_auth,
    check_tunnel,
    check_job_name,
    check_overrides,
    check_skyrl_rules,
    check_upload,
    check_skyrl_config,
)

# Values a field falls back to when its setting is empty (the settings table's defaults
# normally fill them; these keep a typed job whole when a layer blanked one).
FALLBACKS: Mapping[str, Any] = {
    "num_nodes": 1, "time_limit_minutes": 1, "gpus_per_node": 0, "experiments_dir": "",
    "max_restarts": 0, "hold": False, "signal_seconds": 300, "entrypoint": "",
    "runner_python": "", "trainer_python": "", "ssh_port": 22,
    "ray_join_timeout_seconds": 300, "shutdown_grace_seconds": 15,
    "trainer_idle_timeout_seconds": 0, "tunnel_down_limit_seconds": 0,
}
_NOT_JOB_FIELDS = ("secret_keys", "skyrl_own_entrypoint", "trainer_ray", "needs_tunnel_mode", "skyrl_check_mode", "predownload_mode")


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
    context = Context(config=config, cwd=cwd or os.getcwd(),
                      now=now or datetime.now(timezone.utc),
                      environ=os.environ if environ is None else environ,
                      partition_limits=partition_limits, run_skyrl_check=run_skyrl_check)
    problems: List[Problem] = list(config.problems)
    warnings: List[str] = []
    found: Dict[str, Any] = {}
    for check in SECTIONS:
        section = check(context, found)
        problems.extend(section.problems)
        warnings.extend(section.warnings)
        found.update(section.values)
    if problems:
        return ValidationResult(None, tuple(problems), tuple(warnings))
    return ValidationResult(assemble(context, found), (), tuple(warnings))


def assemble(context: Context, found: Mapping[str, Any]) -> ValidatedJob:
    """The typed job from what the sections found (only called without problems)."""
    config = context.config
    values = {k: v for k, v in found.items() if k not in _NOT_JOB_FIELDS}
    for key, fallback in FALLBACKS.items():
        if values.get(key) is None:
            values[key] = fallback
    resolved = {s: (config.value(s) or "") for s in SETTINGS_BY_KEY}
    resolved["JOB_NAME"] = values["job_name"]
    return ValidatedJob(cluster=config.cluster, resolved_config=resolved, created_at=context.now,
                        **values)
