"""The Slurm request: partition limits, nodes, time, GPUs, CPUs, memory, account,
excluded nodes; and the job's numeric knobs (restarts, signals, ports, timeouts)."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from ..durations import parse_time_limit_minutes
from ..hostlist import expand_hostlist, split_hostlist_items
from ..shutdown_budget import grace_problem, max_grace, signal_problem
from .fields import Context, Fields, Section, int_of

MAX_SIGNAL_SECONDS = 65535  # Slurm's limit for --signal ...@<seconds>


def partition_limits(context: Context, fields: Fields) -> Tuple[Optional[int], Optional[int]]:
    """(max nodes, max minutes) of PARTITION: the scheduler's (any partition) when given,
    else the cluster registry's numbers, which describe only its default partition."""
    cluster = context.config.cluster
    partition = fields.value("PARTITION")
    limits = context.partition_limits
    if limits is not None and partition is not None and limits.name == partition:
        if limits.exists:
            return limits.max_nodes, limits.max_time_minutes
        if limits.available:
            fields.problem("PARTITION", "no such partition on this cluster",
                           f"choose one of {', '.join(limits.available)}")
        return None, None
    if partition is not None and partition == cluster.partition:
        return cluster.max_nodes, cluster.max_time_minutes
    return None, None


def _time_limit(fields: Fields, partition: Optional[str], max_time: Optional[int]) -> Optional[int]:
    if not fields.required("TIME_LIMIT"):
        return None
    text = fields.value("TIME_LIMIT") or ""
    try:
        if re.fullmatch(r"\d+:\d+", text):
            raise ValueError("ambiguous")
        minutes = parse_time_limit_minutes(text)
        if minutes is None or minutes < 1:
            raise ValueError("not limited")
    except ValueError as exc:
        hint = "Slurm reads A:B as minutes:seconds; " if "ambiguous" in str(exc) else ""
        fields.problem("TIME_LIMIT", "is not a time limit",
                       f"{hint}write minutes (90), HH:MM:SS (01:30:00) or D-HH:MM:SS")
        return None
    if max_time is not None and minutes > max_time:
        fields.problem("TIME_LIMIT", f"is longer than partition {partition}'s "
                       f"{max_time // 60}h{max_time % 60:02d}", f"ask for at most {max_time} minutes")
        return None
    return minutes


def _exclude_nodes(fields: Fields) -> Tuple[str, ...]:
    text = fields.value("EXCLUDE_NODES")
    if not text:
        return ()
    try:
        expand_hostlist(text)
        return tuple(split_hostlist_items(text))
    except ValueError as exc:
        fields.problem("EXCLUDE_NODES", f"is not a Slurm hostlist ({exc})",
                       "write e.g. jwb[0059,0067],jwb0100")
        return ()


def check_resources(context: Context, found: Mapping[str, Any]) -> Section:
    """What is asked of Slurm, against the partition's and the node type's limits."""
    cluster = context.config.cluster
    fields = Fields(context.config, context.cwd)
    partition = fields.value("PARTITION")
    max_nodes, max_time = partition_limits(context, fields)
    num_nodes = None
    if fields.required("NUM_NODES"):
        reason = f"partition {partition}'s {max_nodes} nodes" if max_nodes is not None else ""
        num_nodes = fields.integer("NUM_NODES", 1, max_nodes, reason)
    time_limit = _time_limit(fields, partition, max_time)
    gpus = fields.integer("GPUS_PER_NODE", 0, cluster.gpus_per_node,
                          f"the {cluster.gpus_per_node} GPUs of a {cluster.name} node")
    if fields.value("GPUS_PER_NODE") is None:
        gpus = 0
    cpus = fields.integer("CPUS_PER_NODE", 1, cluster.cpus_per_node,
                          f"the {cluster.cpus_per_node} CPUs of a {cluster.name} node")
    memory = fields.integer("MEMORY_PER_NODE_GB", 1, cluster.memory_per_node_gb,
                            f"the {cluster.memory_per_node_gb} GB of a {cluster.name} node")
    account = fields.value("ACCOUNT")
    if account is None and cluster.account_required:
        fields.problem("ACCOUNT", f"is required on {cluster.name}",
                       "set ACCOUNT=<your project> in the site env file or --account", value=None)
    return fields.section(dict(
        partition=partition, num_nodes=num_nodes, time_limit_minutes=time_limit,
        gpus_per_node=gpus, cpus_per_node=cpus, memory_per_node_gb=memory, account=account,
        qos=fields.value("QOS"), exclude_nodes=_exclude_nodes(fields)))


def ray_resources(fields: Fields) -> str:
    """RAY_RESOURCES: "" or a JSON object of resource name -> non-negative number; returned
    as compact JSON (what ``ray start --resources`` takes)."""
    text = fields.value("RAY_RESOURCES")
    if text is None:
        return ""
    fix = "write a JSON object of name -> number, e.g. RAY_RESOURCES='{\"vllm_instance\": 1}'"
    try:
        data = json.loads(text)
    except ValueError as exc:
        fields.problem("RAY_RESOURCES", f"is not JSON ({exc.args[0].split(':')[0]})", fix)
        return ""
    if not isinstance(data, dict):
        fields.problem("RAY_RESOURCES", "is not a JSON object", fix)
        return ""
    for name, amount in data.items():
        if not name.strip():
            fields.problem("RAY_RESOURCES", "has an empty resource name", fix)
            return ""
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                or amount < 0 or amount != amount or amount == float("inf"):
            fields.problem("RAY_RESOURCES", f"resource {name!r} is not a non-negative number", fix)
            return ""
    return json.dumps(data, separators=(", ", ": ")) if data else ""


def shutdown_controls(context: Context, fields: Fields, found: Mapping[str, Any]) -> Dict[str, Any]:
    """SHUTDOWN_GRACE and SIGNAL_SECONDS against the cluster's KillWait (as its Slurm
    reported it: ``partition_limits.kill_wait_seconds``), which the spec then carries. The
    built-in grace shrinks to what KillWait leaves; a grace the user set that does not fit
    is a problem."""
    limits = context.partition_limits
    kill_wait = limits.kill_wait_seconds if limits is not None else None
    grace = fields.integer("SHUTDOWN_GRACE", 0)
    signal = fields.integer("SIGNAL_SECONDS", 0, MAX_SIGNAL_SECONDS)
    restarts = int_of(fields.value("MAX_RESTARTS")) or 0
    if grace is not None and kill_wait is not None and context.config.source("SHUTDOWN_GRACE") == "built-in":
        grace = min(grace, max_grace(kill_wait))  # the default fits the cluster; a chosen value must
    if grace is not None:
        problem = grace_problem(grace, kill_wait)
        if problem:
            fields.problem("SHUTDOWN_GRACE", *problem)
            grace = None
        elif kill_wait is None and grace > max_grace(None):
            fields.warnings.append(f"SHUTDOWN_GRACE {grace} s: this cluster's KillWait is not "
                                   f"known here, and Slurm's default (30 s) leaves room for "
                                   f"at most {max_grace(None)} s")
    minutes = found.get("time_limit_minutes")
    if grace is not None and signal is not None:
        effective = min(signal, minutes * 60 // 4) if minutes else signal
        problem = signal_problem(effective, grace, kill_wait, restarts)
        if problem:
            cut = f" (capped at a quarter of TIME_LIMIT: {effective} s)" if effective < signal else ""
            fields.problem("SIGNAL_SECONDS", problem[0] + cut, problem[1])
            signal = None
    return dict(signal_seconds=signal, shutdown_grace_seconds=grace, kill_wait_seconds=kill_wait)


def check_controls(context: Context, found: Mapping[str, Any]) -> Section:
    """Restarts, hold, signals, ports, timeouts and the auto/true/false switches."""
    fields = Fields(context.config, context.cwd)
    return fields.section(dict(
        max_restarts=fields.integer("MAX_RESTARTS", 0, 100),
        hold=fields.boolean("HOLD"),
        ssh_port=fields.integer("SSH_PORT", 1, 65535),
        ray_join_timeout_seconds=fields.integer("RAY_JOIN_TIMEOUT", 1),
        trainer_idle_timeout_seconds=fields.duration_seconds("TRAINER_IDLE_TIMEOUT"),
        tunnel_down_limit_seconds=fields.duration_seconds("TUNNEL_DOWN_LIMIT"),
        **shutdown_controls(context, fields, found),
        ray_resources=ray_resources(fields),
        needs_tunnel_mode=fields.choice("NEEDS_TUNNEL"),
        skyrl_check_mode=fields.choice("SKYRL_CHECK") or "auto",
        predownload_mode=fields.choice("PREDOWNLOAD") or "auto",
    ))
