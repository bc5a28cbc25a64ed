"""The allocation as the job sees it, built from a plain dict of SLURM_* variables.

A submitit-style ``JobEnvironment``: pure (no scontrol, no I/O), so it is unit-tested from
dicts. CPUs and GPUs per node come from the allocation, never from a table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import List, Mapping, Optional, Sequence, Tuple

from ..hostlist import expand_hostlist

_REPEAT = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


class NotInSlurmJob(Exception):
    """The process is not inside a Slurm allocation."""


def expand_counts(text: str) -> List[int]:
    """Slurm's compressed per-node counts: ``"2(x3),1"`` -> ``[2, 2, 2, 1]``."""
    counts: List[int] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        match = _REPEAT.match(item)
        if not match:
            raise ValueError(f"bad per-node count {item!r} in {text!r}")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


def _gpu_count_from_gres(text: str) -> Optional[int]:
    """``"4"``, ``"gpu:4"``, ``"gpu:a100:4"``, ``"a100:4"`` -> 4; None when not a count."""
    text = (text or "").strip()
    if not text:
        return None
    last = text.split(",")[0].split(":")[-1]
    last = last.split("(")[0]
    return int(last) if last.isdigit() else None


def count_visible_gpus(environ: Mapping[str, str]) -> int:
    """GPUs this node was given: CUDA_VISIBLE_DEVICES, else SLURM_GPUS_ON_NODE,
    SLURM_JOB_GPUS, SLURM_GPUS_PER_NODE; 0 when none of them says anything."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in ("", "NoDevFiles"):
        return len([d for d in visible.split(",") if d.strip()])
    on_node = (environ.get("SLURM_GPUS_ON_NODE") or "").strip()
    if on_node.isdigit():
        return int(on_node)
    job_gpus = (environ.get("SLURM_JOB_GPUS") or environ.get("SLURM_STEP_GPUS") or "").strip()
    if job_gpus:
        return len([g for g in job_gpus.split(",") if g.strip()])
    per_node = _gpu_count_from_gres(environ.get("SLURM_GPUS_PER_NODE", ""))
    if per_node is not None:
        return per_node
    return 0


_GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS",
                  "SLURM_GPUS_PER_NODE")


def gpus_for_ray(environ: Mapping[str, str], gpu_request: str, device_files: Sequence[str]) -> int:
    """Ray's ``--num-gpus``: what the node really has, never what was requested.

    ``gres`` clusters: the GPUs Slurm gave the job (:func:`count_visible_gpus`; a job that
    asked for none has none). ``none`` clusters (whole nodes, no GRES request, so Slurm
    sets no GPU variable): the same variables when a site sets them anyway, else the
    node's GPU device files (``device_files``: the cluster's ``gpu_devices`` glob expanded).
    """
    if gpu_request != "none" or any(environ.get(name, "").strip() for name in _GPU_VARIABLES):
        return count_visible_gpus(environ)
    return len(set(device_files))


@dataclass(frozen=True)
class JobEnvironment:
    job_id: str
    job_name: str
    nodes: Tuple[str, ...]
    batch_node: str
    cpus_per_node: Tuple[int, ...]  # one entry per node, in node order
    gpus_per_node: int  # the batch node's count (Slurm allocates GPUs per node uniformly)
    restart_count: int
    cluster_name: Optional[str] = None  # $SLURM_CLUSTER_NAME
    partition: Optional[str] = None

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def worker_nodes(self) -> Tuple[str, ...]:
        """Every node but the batch node (where the Ray head runs)."""
        return tuple(n for n in self.nodes if n != self.batch_node)

    @property
    def ordered_nodes(self) -> Tuple[str, ...]:
        """The batch node first, then the others in allocation order."""
        return (self.batch_node,) + self.worker_nodes

    def cpus_on(self, node: str) -> int:
        return self.cpus_per_node[self.nodes.index(node)]

    def with_node_gpus(self, environ: Mapping[str, str], cluster) -> "JobEnvironment":
        """This job with Ray's GPU count for ``cluster`` (its ``gpu_request`` and
        ``gpu_devices`` glob): :func:`gpus_for_ray`, the device files looked up here."""
        import glob

        gpus = gpus_for_ray(environ, cluster.gpu_request, glob.glob(cluster.gpu_devices))
        return self if gpus == self.gpus_per_node else replace(self, gpus_per_node=gpus)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "JobEnvironment":
        job_id = (environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID") or "").strip()
        if not job_id:
            raise NotInSlurmJob("SLURM_JOB_ID is not set: the runner must run inside a Slurm job")
        nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST") or ""
        nodes = tuple(expand_hostlist(nodelist))
        if not nodes:
            raise NotInSlurmJob(f"job {job_id}: SLURM_JOB_NODELIST is empty")
        batch_node = (environ.get("SLURMD_NODENAME") or "").strip() or nodes[0]
        if batch_node not in nodes:
            raise ValueError(f"batch node {batch_node} is not in the node list {nodelist}")
        cpus = expand_counts(environ.get("SLURM_JOB_CPUS_PER_NODE", ""))
        if len(cpus) != len(nodes):
            on_node = (environ.get("SLURM_CPUS_ON_NODE") or "").strip()
            if not on_node.isdigit():
                raise ValueError(
                    f"cannot tell CPUs per node: SLURM_JOB_CPUS_PER_NODE="
                    f"{environ.get('SLURM_JOB_CPUS_PER_NODE')!r} for {len(nodes)} nodes"
                )
            cpus = [int(on_node)] * len(nodes)
        restart = (environ.get("SLURM_RESTART_COUNT") or "0").strip()
        return cls(
            job_id=job_id,
            job_name=environ.get("SLURM_JOB_NAME", ""),
            nodes=nodes,
            batch_node=batch_node,
            cpus_per_node=tuple(cpus),
            gpus_per_node=count_visible_gpus(environ),
            restart_count=int(restart) if restart.isdigit() else 0,
            cluster_name=(environ.get("SLURM_CLUSTER_NAME") or None),
            partition=(environ.get("SLURM_JOB_PARTITION") or None),
        )


# Variables an inner ``srun`` would take from the batch step and that contradict the
# one-task-on-one-node step we ask for (e.g. SLURM_MEM_PER_CPU vs --mem, SLURM_NTASKS
# vs --ntasks, or SLURM_EXPORT_ENV silently replacing --export=ALL).
INNER_SRUN_CONFLICTS = (
    "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
    "SLURM_NNODES", "SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_GPU",
    "SLURM_MEM_PER_NODE", "SLURM_GPUS_PER_TASK", "SLURM_CPUS_PER_GPU", "SLURM_DISTRIBUTION",
    "SLURM_CPU_BIND", "SLURM_CPU_BIND_TYPE", "SLURM_CPU_BIND_LIST", "SLURM_CPU_BIND_VERBOSE",
    "SLURM_EXPORT_ENV", "SLURM_NTASKS_PER_SOCKET", "SLURM_NTASKS_PER_CORE",
    "SLURM_NTASKS_PER_GPU", "SLURM_GPU_BIND", "SLURM_HINT", "SLURM_THREADS_PER_CORE",
    "SLURM_OVERLAP", "SLURM_EXCLUSIVE", "SLURM_EXACT", "SLURM_STEP_ID", "SLURM_STEPID",
)


def inner_srun_environment(environ: Mapping[str, str]) -> dict:
    """``environ`` without the SLURM_* variables that confuse an srun inside the job."""
    return {k: v for k, v in environ.items() if k not in INNER_SRUN_CONFLICTS}
