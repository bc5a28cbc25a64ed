"""Could other users' processes run on this allocation's nodes? (one WARNING line)

Slurm gives a job its nodes to itself when the job asked for it (``--exclusive``: the
job's ``OverSubscribe=NO``; ``--exclusive=user``: ``USER``, shared with our own jobs only)
or when its partition does (``OverSubscribe=EXCLUSIVE``, ``ExclusiveUser=YES``). Anything
else (``OverSubscribe=OK``, ``MCS``, a question Slurm did not answer) may put other
users' processes on our nodes, where 127.0.0.1 is not private to the job.

At most two ``scontrol`` calls, once per run, each with a short time-out; never fatal.
"""
from __future__ import annotations

import subprocess
from typing import Callable, Mapping, Optional, Sequence

from ..scheduler.slurm_text import parse_scontrol_fields

TIMEOUT = 5.0
ALONE = ("NO", "USER")  # the job's OverSubscribe when no other user can be on its nodes

Run = Callable[[Sequence[str]], Optional[str]]


def _scontrol(argv: Sequence[str]) -> Optional[str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def decide(job: Mapping[str, str], partition: Optional[Mapping[str, str]]) -> Optional[str]:
    """None when no other user can share the nodes, else why they may (pure)."""
    job_mode = (job.get("OverSubscribe") or job.get("Shared") or "").strip().upper()
    if job_mode in ALONE:
        return None
    if partition is not None:
        if (partition.get("OverSubscribe") or "").strip().upper().startswith("EXCLUSIVE"):
            return None
        if (partition.get("ExclusiveUser") or "").strip().upper() == "YES":
            return None
    where = f"partition {job.get('Partition', '?')}"
    if partition is not None:
        where += (f": OverSubscribe={partition.get('OverSubscribe', '?')}, "
                  f"ExclusiveUser={partition.get('ExclusiveUser', '?')}")
    return f"the job's OverSubscribe={job_mode or '?'} ({where}; --exclusive would give whole nodes)"


def shared_nodes(job_id: str, run: Optional[Run] = None) -> Optional[str]:
    """None when the allocation's nodes are ours alone, else one phrase saying why not."""
    run = run or _scontrol
    text = run(["scontrol", "show", "job", "-o", str(job_id)])
    if not text or not text.strip():
        return "Slurm did not say whether the nodes are the job's alone (scontrol show job failed)"
    job = parse_scontrol_fields(text.strip().splitlines()[0])
    if (job.get("OverSubscribe") or "").strip().upper() in ALONE:
        return None
    partition = None
    name = (job.get("Partition") or "").split(",")[0].strip()
    if name:
        ptext = run(["scontrol", "show", "partition", "-o", name])
        if ptext and ptext.strip():
            partition = parse_scontrol_fields(ptext.strip().splitlines()[0])
    return decide(job, partition)
