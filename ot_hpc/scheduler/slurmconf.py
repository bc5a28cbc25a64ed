"""Which Slurm this login node reaches: its slurm.conf, read as a file (no Slurm call).

``$SLURM_CONF`` names it, else libslurm's usual places. ot-submit asks Slurm for a
partition's limits only when this Slurm serves the job's cluster (:func:`serves_cluster`).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Tuple

# Where libslurm looks for slurm.conf when $SLURM_CONF is unset: the usual compiled
# defaults (distribution packages, source builds) and the configless cache of
# slurmd/sackd.
DEFAULT_CONFIG_PATHS: Tuple[str, ...] = (
    "/etc/slurm/slurm.conf",
    "/usr/local/etc/slurm.conf",
    "/etc/slurm-llnl/slurm.conf",
    "/run/slurm/conf/slurm.conf",
)


def config_paths(environ: Optional[Mapping[str, str]] = None) -> Tuple[str, ...]:
    """The slurm.conf libslurm reads: ``$SLURM_CONF`` alone when set, else the defaults."""
    environ = os.environ if environ is None else environ
    configured = environ.get("SLURM_CONF")
    return (configured,) if configured else DEFAULT_CONFIG_PATHS


def configured_value(name: str, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The value of ``name`` (matched case-blind) in the slurm.conf this login node's Slurm
    reads (``$SLURM_CONF``, else the first of the usual places that sets it); None when
    unset or no file. A file read, no Slurm call."""
    for path in config_paths(environ):
        try:
            with open(path) as handle:
                for line in handle:
                    key, _, value = line.split("#", 1)[0].partition("=")
                    if key.strip().lower() == name.lower() and value.strip():
                        return value.strip()
        except OSError:
            continue
    return None


def configured_cluster_name(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """ClusterName of this login node's slurm.conf; None when there is none."""
    return configured_value("ClusterName", environ)


def configured_kill_wait(environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """KillWait of this login node's slurm.conf in seconds (Slurm's default 30 when the file
    sets none); None without a readable slurm.conf."""
    if not any(os.path.isfile(p) for p in config_paths(environ)):
        return None
    value = configured_value("KillWait", environ)
    if value is None:
        return 30
    return int(value) if value.isdigit() else None


def serves_cluster(cluster: Any, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the Slurm reachable from here is ``cluster``'s (a registry cluster: its
    ``name`` or one of its ``slurm_cluster_names`` is slurm.conf's ClusterName)."""
    reachable = (configured_cluster_name(environ) or "").lower()
    names = {cluster.name.lower(), *(name.lower() for name in cluster.slurm_cluster_names)}
    return bool(reachable) and reachable in names
