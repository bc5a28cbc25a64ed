"""Phase 1's cluster: the spec's record, checked against the host the job landed on.

The cluster's facts come from the spec (ot-submit resolved them on the login node); the
runner never reads a cluster file (only the registry's built-in table, which is code). The
host check compares ``$SLURM_CLUSTER_NAME`` and the hostname with that record, and with
the built-in table only to name a wrong cluster.
"""
from __future__ import annotations

from typing import Mapping

from ..clusters import BUILTIN_CLUSTERS
from ..cluster_facts import Cluster, from_facts, match_cluster
from ..spec import JobSpec
from .exit_codes import EXIT_ENV
from .joblog import PhaseError


def cluster_of(spec: JobSpec) -> Cluster:
    """The spec's cluster record; a hand-made spec without facts gets the built-in
    cluster of its name. Raises PhaseError (exit 2) when neither exists."""
    if spec.cluster_facts:
        try:
            return from_facts(spec.cluster_facts)
        except ValueError as exc:
            raise PhaseError(f"the job spec's cluster_facts are unusable ({exc}): submit the "
                             "job again", EXIT_ENV) from None
    for cluster in BUILTIN_CLUSTERS:
        if cluster.name == spec.cluster:
            return cluster
    raise PhaseError(f"the job spec names cluster {spec.cluster!r} without its facts: submit the "
                     "job again with ot-submit", EXIT_ENV)


def check_host(cluster: Cluster, environ: Mapping[str, str], hostname: str, fqdn: str) -> str:
    """One log line saying how the host relates to the spec's cluster; raises PhaseError
    (exit 2) when the host is recognisably a built-in cluster of another site."""
    slurm_name = environ.get("SLURM_CLUSTER_NAME") or ""
    if match_cluster((cluster,), hostname, fqdn, slurm_name) is cluster:
        return f"cluster {cluster.name} (detected on {hostname}, matches the spec)"
    other = match_cluster((c for c in BUILTIN_CLUSTERS if c.name != cluster.name),
                          hostname, fqdn, slurm_name)
    if other is None:
        return f"cluster {cluster.name} (from the spec; host {hostname} not recognised)"
    if other.site == cluster.site:
        return f"cluster {cluster.name} (from the spec; {hostname} looks like {other.name}, same site)"
    raise PhaseError(
        f"the spec is for cluster {cluster.name} but this job runs on {other.name} "
        f"(host {hostname}): submit with --cluster {other.name}", EXIT_ENV)
