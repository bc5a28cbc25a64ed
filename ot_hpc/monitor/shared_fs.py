"""ot-rmlogs on a filesystem several clusters share (JSC's ``$HOME`` and scratch): which
specs, and so which logs, belong to a job that may still be queued on *another* cluster.

The controller ot-rmlogs asks knows only its own cluster's jobs. A spec records the
cluster it was submitted to (``cluster`` and ``cluster_facts.slurm_cluster_names``), when
(``created_at``), its time limit, its partition's (``cluster_facts.max_time_minutes``) and
how often it may run again (``max_restarts``). A spec of another cluster — or one that does
not say, or cannot be read — is kept, with the logs of its job name, until it is older
than :func:`horizon_seconds`: every run at the longest time limit the spec records, plus
:data:`PENDING_MARGIN_SECONDS` for the time it may have waited in that cluster's queue.
Pure: the deciding step reads nothing (:mod:`.rmlogs` reads the specs).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AbstractSet, Any, Mapping, Optional, Tuple

PENDING_MARGIN_SECONDS = 7 * 86400  # a week in another cluster's queue: far past any wait seen
UNKNOWN_LIMIT_MINUTES = 48 * 60  # the longest default partition limit of the built-in clusters
MAX_RESTARTS_COUNTED = 100  # a bound for the horizon, whatever a spec claims


@dataclass(frozen=True)
class SpecFacts:
    """What a spec says about where and how long its job may live (None: does not say)."""

    job_name: Optional[str] = None
    cluster: Optional[str] = None
    slurm_cluster_names: Tuple[str, ...] = ()
    created: Optional[float] = None  # epoch seconds (``created_at``)
    time_limit_minutes: Optional[int] = None
    max_time_minutes: Optional[int] = None
    max_restarts: int = 0


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _epoch(text: Any) -> Optional[float]:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def spec_facts(text: str) -> SpecFacts:
    """The facts of a spec's JSON text; an empty :class:`SpecFacts` for anything unreadable
    (any schema version: only these few fields are looked at)."""
    try:
        data = json.loads(text)
    except ValueError:
        return SpecFacts()
    if not isinstance(data, Mapping):
        return SpecFacts()
    facts = data.get("cluster_facts")
    facts = facts if isinstance(facts, Mapping) else {}
    names = facts.get("slurm_cluster_names")
    cluster = data.get("cluster")
    name = data.get("job_name")
    return SpecFacts(
        job_name=name if isinstance(name, str) else None,
        cluster=cluster if isinstance(cluster, str) and cluster else None,
        slurm_cluster_names=tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else (),
        created=_epoch(data.get("created_at")),
        time_limit_minutes=_int(data.get("time_limit_minutes")),
        max_time_minutes=_int(facts.get("max_time_minutes")),
        max_restarts=min(_int(data.get("max_restarts")) or 0, MAX_RESTARTS_COUNTED),
    )


def is_here(facts: SpecFacts, here: AbstractSet[str]) -> bool:
    """Whether the spec's job was submitted to the cluster whose controller was asked
    (``here``: lower-case names of that cluster: slurm.conf's ClusterName, registry name)."""
    names = {n.lower() for n in (facts.cluster, *facts.slurm_cluster_names) if n}
    return bool(names & set(here))


def horizon_seconds(facts: SpecFacts) -> float:
    """How long after submission the job may still be pending or running, at most."""
    limit = max(facts.time_limit_minutes or 0, facts.max_time_minutes or 0) or UNKNOWN_LIMIT_MINUTES
    return (facts.max_restarts + 1) * limit * 60.0 + PENDING_MARGIN_SECONDS


def keep_for_other_cluster(facts: SpecFacts, here: AbstractSet[str], now: float, mtime: float) -> bool:
    """True: keep this spec (and its job's logs) although the controller asked does not list
    its job — it is, or may be, another cluster's, and young enough to still be queued."""
    if is_here(facts, here):
        return False  # the controller asked knows this job: its answer decides
    submitted = facts.created if facts.created is not None else mtime
    return now - submitted < horizon_seconds(facts)
