"""A job's stdout path, the same on every Slurm and both backends: Slurm's filename
pattern expanded and made absolute against the job's working directory.

Slurm reports it differently by version and command: ``squeue -O STDOUT`` keeps the pattern
(22.05 made absolute, 25.11 as given, e.g. ``slurm-%j.out``), ``scontrol show job`` and
pyslurm's ``Job.standard_output`` (libslurm's ``slurm_get_job_stdout``) expand most of it,
but leave ``%N`` of a pending job and ``%%``. :func:`job_output_path` finishes the job for
all of them, so ``ot-status`` and the log lookup agree.
"""
from __future__ import annotations

import os
from typing import Optional

from ..hostlist import expand_hostlist

NO_ARRAY_TASK = "4294967294"  # what Slurm writes for %a of a job that is not an array task


def expand_output_pattern(pattern: Optional[str], job_id: int, name: str, user: str,
                          node_list: str) -> Optional[str]:
    """Slurm's filename pattern (``%j %J %A %a %x %u %N %n %t %s %%``, with an optional
    zero-padded width such as ``%5j``) for a batch job that is not an array task.
    ``%N`` stays as written while the job has no node (it is pending: no log yet)."""
    if not pattern:
        return None
    first_node = expand_hostlist(node_list)[0] if node_list else None
    table = {"j": str(job_id), "J": str(job_id), "A": str(job_id), "a": NO_ARRAY_TASK,
             "x": name, "u": user, "n": "0", "t": "0", "s": "batch", "%": "%"}
    if first_node:
        table["N"] = first_node
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%" and i + 1 < len(pattern):
            j = i + 1
            while j < len(pattern) and pattern[j].isdigit():
                j += 1
            if j < len(pattern) and pattern[j] in table:
                value = table[pattern[j]]
                width = pattern[i + 1:j]
                out.append(value.zfill(int(width)) if width and value.isdigit() else value)
                i = j + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def job_output_path(pattern: Optional[str], job_id: int, name: str, user: str,
                    node_list: str, work_dir: Optional[str]) -> Optional[str]:
    """The expanded pattern, joined to ``work_dir`` when relative (Slurm's rule)."""
    path = expand_output_pattern(pattern, job_id, name, user, node_list)
    if path and work_dir and not os.path.isabs(path):
        path = os.path.join(work_dir, path)
    return path
