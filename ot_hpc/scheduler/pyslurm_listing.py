"""Which of ``pyslurm.Jobs.load()``'s jobs a listing keeps, and whose they are: pure.

``Jobs.load()`` returns every user's jobs (core/job/job.pyx:75); a real queue holds
thousands of other users' jobs for a handful of ours. ``Job.user_name`` asks the passwd
database on every read (``uid_to_name``, utils/helpers.pyx:46: ``getpwuid``), which is
what made filtering by it slow (36 ms for 6,149 jobs on pyslurm 25.11, against 0.3 ms
for ``user_id``). So here the user's name is resolved to a uid once, jobs are compared on
``Job.user_id`` (the struct's int, job.pyx:689) and then on ``Job.account`` (a plain
string: Slurm has no account id to compare instead; a job's ``association_id`` would
need slurmdbd to map back to its account). Only the jobs kept are converted; their
owners' names come from the name asked for, else from passwd once per distinct uid,
never for the jobs dropped.

Works for live jobs (``pyslurm.Job``) and accounting records (``pyslurm.db.Job``, whose
``user_id`` and ``account`` are the same kind of attribute, db/job.pyx:840, 575).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional


def uid_of_user(user: str, getpwnam: Callable[[str], Any]) -> Optional[int]:
    """The uid of login name ``user``; None when passwd has no such name.

    ``squeue -u`` (the cli backend) lists nothing for a name it cannot resolve, a number
    included (``squeue -u 99999``: "Invalid user"), and the cli backend then keeps only
    records whose user *name* is ``user``: a uid given as digits lists nothing there
    either. None here means the same empty listing."""
    try:
        return int(getpwnam(user).pw_uid)
    except (KeyError, TypeError, ValueError):
        return None


def name_lookup(getpwuid: Callable[[int], Any]) -> Callable[[Any], str]:
    """``uid -> user name``, asking passwd once per uid: what ``Job.user_name`` gives
    (``uid_to_name``: the name, else the uid as a string; "" for NO_VAL/INFINITE, which
    ``Job.user_id`` returns as None/"UNLIMITED")."""
    names: Dict[int, str] = {}

    def name_of(uid: Any) -> str:
        if isinstance(uid, bool) or not isinstance(uid, int):
            return ""
        name = names.get(uid)
        if name is None:
            try:
                name = str(getpwuid(uid).pw_name)
            except KeyError:
                name = str(uid)
            names[uid] = name
        return name

    return name_of


def select_jobs(jobs: Iterable[Any], uid: Optional[int] = None,
                account: Optional[str] = None) -> List[Any]:
    """The jobs of ``uid`` in ``account`` (None: any). Reads ``user_id``, then
    ``account`` only for the jobs of ``uid``; nothing else, and never ``user_name``."""
    kept = list(jobs)
    if uid is not None:
        kept = [job for job in kept if job.user_id == uid]
    if account is not None:
        kept = [job for job in kept if (job.account or "") == account]
    return kept
