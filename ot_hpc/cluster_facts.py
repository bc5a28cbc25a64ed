"""One cluster's facts: Slurm defaults, hardware, hostnames and network rules.

A :class:`Cluster` is plain data. ot-submit resolves it on the login node (built-in
table + the user's cluster files, :mod:`ot_hpc.clusters`) and writes it into the job
spec (:func:`to_facts`); the runner rebuilds it from the spec (:func:`from_facts`) and
never reads a cluster file itself, so a requeued job runs with what was submitted.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

SITES = ("jsc", "tacc", "leonardo", "local", "other")
TUPLE_FIELDS = frozenset({"exclude_nodes", "login_nodes", "login_patterns", "compute_patterns",
                          "slurm_cluster_names"})
# How a job asks for GPUs: "gres" (--gres=gpu:N, as on JSC and Leonardo) or "none" (whole
# nodes whose GPUs come with them, as on TACC: -p gh --nodes N, never --gres).
GPU_REQUESTS = ("gres", "none")


@dataclass(frozen=True)
class Cluster:
    name: str
    site: str  # jsc / tacc / leonardo / local / other
    account: Optional[str]  # None: do not pass --account (Slurm picks the user's default)
    partition: Optional[str]
    qos: Optional[str]
    gpus_per_node: int
    cpus_per_node: Optional[int]  # None: take what the allocation gives
    memory_per_node_gb: Optional[int]  # the node's memory: upper bound for MEMORY_PER_NODE_GB
    gpu_type: str
    cpu_arch: str  # x86_64 / aarch64
    max_nodes: int  # size of the default partition (or the most one job may have)
    max_time_minutes: int  # the default partition's (or QOS's) time limit
    exclude_nodes: Tuple[str, ...] = ()  # Slurm hostlist items, e.g. "jwb[0059,0067]"
    gpu_request: str = "gres"  # one of GPU_REQUESTS
    # The node's GPU device files (a glob): what Ray is given on a "none" cluster, where
    # Slurm sets no GPU variables because none were requested.
    gpu_devices: str = "/dev/nvidia[0-9]*"
    compute_has_internet: bool = True
    login_nodes: Tuple[str, ...] = ()  # login nodes as compute nodes reach them (tunnel target)
    interconnect_suffix: str = ""  # JSC: "jrc0123" is "jrc0123i" on InfiniBand
    nccl_socket_ifname: Optional[str] = None  # JSC: "ib0"
    env_file: Optional[str] = None  # the site env file in envs/, e.g. "jsc.env"
    login_patterns: Tuple[str, ...] = ()  # regexes, matched against the whole name
    compute_patterns: Tuple[str, ...] = ()
    slurm_cluster_names: Tuple[str, ...] = ()  # $SLURM_CLUSTER_NAME values inside a job
    account_required: bool = False  # the site refuses jobs without --account
    description: str = ""
    source: str = "built-in"  # "built-in" or the cluster file that defined/overrode it

    def matches_host(self, name: str) -> bool:
        """True when ``name`` (a hostname or FQDN) is a login or compute node of this cluster."""
        return bool(name) and any(
            re.fullmatch(pattern, name.strip().lower(), flags=re.IGNORECASE)
            for pattern in self.login_patterns + self.compute_patterns
        )

    def is_login_host(self, name: str) -> bool:
        return bool(name) and any(
            re.fullmatch(p, name.strip().lower(), flags=re.IGNORECASE) for p in self.login_patterns
        )



def to_facts(cluster: Cluster) -> Dict[str, Any]:
    """The cluster as JSON-ready data (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cluster).items()}


def from_facts(facts: Mapping[str, Any]) -> Cluster:
    """The inverse of :func:`to_facts`; raises ValueError naming unknown or missing fields."""
    names = {f.name for f in dataclasses.fields(Cluster)}
    unknown = sorted(set(facts) - names)
    if unknown:
        raise ValueError(f"cluster facts have unknown fields {unknown}")
    values = {k: tuple(v) if k in TUPLE_FIELDS else v for k, v in facts.items()}
    if values.get("gpu_request", "gres") not in GPU_REQUESTS:
        raise ValueError(f"cluster facts have gpu_request {values['gpu_request']!r}, not one of "
                         f"{', '.join(GPU_REQUESTS)}")
    try:
        return Cluster(**values)
    except TypeError as exc:
        raise ValueError(f"cluster facts are incomplete: {exc}") from None


def match_cluster(candidates: Iterable[Cluster], hostname: str, fqdn: str,
                  slurm_cluster_name: str = "") -> Optional[Cluster]:
    """The first cluster whose ``slurm_cluster_names`` hold ``slurm_cluster_name``, else
    the first whose login/compute patterns match the FQDN, then the hostname."""
    candidates = tuple(candidates)
    wanted = (slurm_cluster_name or "").strip().lower()
    if wanted:
        for cluster in candidates:
            if wanted in (n.lower() for n in cluster.slurm_cluster_names):
                return cluster
    for name in (fqdn, hostname):
        for cluster in candidates:
            if name and cluster.matches_host(name):
                return cluster
    return None


def interconnect_hostname(cluster: Cluster, node: str) -> str:
    """The name of ``node`` on the cluster's fast network (JSC: ``jrc0123`` -> ``jrc0123i``)."""
    short = node.strip().split(".")[0]
    suffix = cluster.interconnect_suffix
    if not suffix:
        return short
    stem = short[: -len(suffix)]
    if short.endswith(suffix) and stem[-1:].isdigit():
        return short  # already the interconnect name
    return short + suffix
