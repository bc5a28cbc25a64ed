"""ot-rmlogs: what to delete (pure planning) and the deleting step.

Only files that are ours are ever candidates:

* in ``<experiments>/logs/``: ``<name>_<jobid>.log``, ``<name>_<jobid>.out``,
  ``<name>_<jobid>.state.json`` and Slurm's ``slurm-<jobid>.out``;
* in ``<experiments>/specs/``: ``<name>_<YYYYmmddTHHMMSSZ>_<6 hex>.json`` (ot-submit's
  specs; older ones have no hex suffix);

regular files only (a symbolic link is never followed nor deleted, nor is a ``logs`` or
``specs`` directory that is a link), owned by the user running ot-rmlogs, not in a
subdirectory. A file is deleted when it is older (mtime) than the cutoff and does not
belong to a job that is still pending or running (logs and run-state files by job id,
specs by job name). Directories are opened once and files removed relative to them
(``dir_fd``), so a directory swapped for a link during the run is not followed either.
"""
from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field, replace
from typing import FrozenSet, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from .dirs import LOGS, SPECS
from .shared_fs import keep_for_other_cluster, spec_facts

_LOG = re.compile(r"^(?:(?P<name>.+)_|slurm-)(?P<id>\d+)(?:\.log|\.out|\.state\.json)$")
# <name>_<UTC stamp>_<6 hex>.json, and the older <name>_<UTC stamp>.json.
_SPEC = re.compile(r"^(?P<name>.+)_\d{8}T\d{6}Z(?:_[0-9a-f]{6})?\.json$")
_LOG_SUFFIXES = (".log", ".out", ".state.json")


FILE, LINK, OTHER = "file", "link", "other"


class Entry(NamedTuple):
    """One directory entry as the planner sees it (a NamedTuple: 100,000 of them are cheap)."""

    name: str
    type: str  # FILE (a regular file), LINK (a symbolic link) or OTHER
    mtime: float
    size: int
    uid: int


@dataclass(frozen=True)
class Active:
    """What must be kept: the job ids and job names of pending/running jobs."""

    job_ids: FrozenSet[int] = frozenset()
    job_names: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class OtherClusters:
    """For a filesystem shared by several clusters (:mod:`.shared_fs`): the lower-case
    names of the cluster whose controller said which jobs are active, and the time now."""

    here: FrozenSet[str]
    now: float


@dataclass(frozen=True)
class DirectoryPlan:
    directory: str
    delete: Tuple[Tuple[str, int, float], ...] = ()  # (file name, size, mtime)
    kept_active: int = 0
    kept_recent: int = 0
    links: Tuple[str, ...] = ()  # names that are symbolic links (never followed)
    not_ours: int = 0  # other names, other owners, directories
    kept_other_cluster: int = 0  # files of jobs that may be queued on another cluster

    @property
    def bytes(self) -> int:
        return sum(size for _, size, _ in self.delete)


@dataclass(frozen=True)
class Plan:
    directories: Tuple[DirectoryPlan, ...] = ()
    notes: Tuple[str, ...] = field(default=())  # e.g. a logs dir that is a link

    @property
    def files(self) -> int:
        return sum(len(d.delete) for d in self.directories)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.directories)

    @property
    def kept_active(self) -> int:
        return sum(d.kept_active for d in self.directories)

    @property
    def links(self) -> int:
        return sum(len(d.links) for d in self.directories)

    @property
    def kept_other_cluster(self) -> int:
        return sum(d.kept_other_cluster for d in self.directories)


def owner_of(kind: str, name: str) -> Optional[Tuple[Optional[int], Optional[str]]]:
    """(job id, job name) when ``name`` is one of our files in a ``kind`` directory
    (``logs`` or ``specs``), else None. Specs carry no job id; Slurm's default
    ``slurm-<id>.out`` carries no job name."""
    if kind == LOGS:
        if not name.endswith(_LOG_SUFFIXES):
            return None
        match = _LOG.match(name)
        return (int(match.group("id")), match.group("name")) if match else None
    if kind == SPECS:
        if not name.endswith(".json"):
            return None
        match = _SPEC.match(name)
        return (None, match.group("name")) if match else None
    return None


def plan_directory(directory: str, kind: str, entries: Iterable[Entry], cutoff: float,
                   active: Active, uid: Optional[int],
                   other_cluster_names: FrozenSet[str] = frozenset()) -> DirectoryPlan:
    """Decide for each entry of one ``kind`` directory (pure). ``uid=None``: any owner.
    ``other_cluster_names``: job names whose logs are kept (their specs say another cluster).

    The hot loop of ot-rmlogs (100,000 files must cost little more than ``find``): the
    entries are unpacked as tuples and each name is matched once.
    """
    if kind == LOGS:
        match, key, keep = _LOG.match, "id", {str(job_id) for job_id in active.job_ids}
    elif kind == SPECS:
        match, key, keep = _SPEC.match, "name", set(active.job_names)
    else:
        raise ValueError(f"unknown directory kind {kind!r}")
    delete: List[Tuple[str, int, float]] = []
    links: List[str] = []
    kept_active = kept_recent = not_ours = kept_other = 0
    append = delete.append
    for name, kind_of_file, mtime, size, owner in entries:
        found = match(name)
        if found is None:
            not_ours += 1
        elif kind_of_file != FILE:
            if kind_of_file == LINK:
                links.append(name)
            else:
                not_ours += 1
        elif uid is not None and owner != uid:
            not_ours += 1
        elif found.group(key) in keep:
            kept_active += 1
        elif mtime >= cutoff:
            kept_recent += 1
        elif other_cluster_names and found.group("name") in other_cluster_names:
            kept_other += 1
        else:
            append((name, size, mtime))
    return DirectoryPlan(directory, tuple(delete), kept_active, kept_recent, tuple(links), not_ours,
                         kept_other)


def read_small(fd: int, name: str, limit: int = 1 << 20) -> str:
    """A spec's text, read relative to its directory (never through a link); "" if unreadable."""
    try:
        handle = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=fd)
    except OSError:
        return ""
    try:
        return os.read(handle, limit).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(handle)


def keep_other_clusters(plan: DirectoryPlan, fd: int, others: OtherClusters
                        ) -> Tuple[DirectoryPlan, FrozenSet[str]]:
    """The specs plan without the specs of jobs that may be queued on another cluster (read
    only for specs about to be deleted), and those jobs' names (their logs are kept too)."""
    delete, names = [], set()
    for item in plan.delete:
        facts = spec_facts(read_small(fd, item[0]))
        if keep_for_other_cluster(facts, others.here, others.now, item[2]):
            match = _SPEC.match(item[0])
            names.add(facts.job_name or (match.group("name") if match else item[0]))
        else:
            delete.append(item)
    kept = len(plan.delete) - len(delete)
    return (replace(plan, delete=tuple(delete), kept_other_cluster=plan.kept_other_cluster + kept),
            frozenset(names))


# -- I/O ---------------------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def open_subdirectory(experiments_dir: str, kind: str) -> Tuple[Optional[int], Optional[str]]:
    """(fd, None) for ``<experiments_dir>/<kind>``, or (None, why not) when it is missing
    (why: None) or a symbolic link."""
    path = os.path.join(experiments_dir, kind)
    try:
        return os.open(path, _DIR_FLAGS), None
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            return None, f"not following {path}: it is a symbolic link"
        if exc.errno == errno.ENOTDIR:
            return None, f"skipping {path}: not a directory"
        raise


def scan(fd: int, kind: str) -> Iterator[Tuple[str, str, float, int, int]]:
    """The entries of an open directory that may be ours, lazily (so each file is looked
    at once, while its inode is warm). Names with a foreign suffix are not even stat-ed;
    links are reported as links (from the directory entry), never followed."""
    suffixes = _LOG_SUFFIXES if kind == LOGS else (".json",)
    is_regular = stat.S_ISREG
    with os.scandir(fd) as listing:
        for item in listing:
            name = item.name
            if not name.endswith(suffixes):
                continue
            try:
                if item.is_symlink():
                    yield (name, LINK, 0.0, 0, -1)
                    continue
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_regular(info.st_mode):  # plain tuples: Entry-shaped, cheaper to make
                yield (name, FILE, info.st_mtime, info.st_size, info.st_uid)
            else:
                yield (name, LINK if stat.S_ISLNK(info.st_mode) else OTHER, info.st_mtime, 0,
                       info.st_uid)


def make_plan(experiments: Iterable[str], cutoff: float, active: Active, uid: Optional[int],
              others: Optional[OtherClusters] = None) -> Tuple[Plan, List[Tuple[str, int]]]:
    """Scan every experiments directory; returns the plan and the open (path, fd) pairs
    the deleting step works through (close them with :func:`close_all`). With ``others``,
    the specs (read first) of jobs that may be queued on another cluster are kept, and so
    are the logs of their job names."""
    plans, notes, fds = [], [], []
    try:
        for experiments_dir in experiments:
            found: List[DirectoryPlan] = []
            names: FrozenSet[str] = frozenset()
            for kind in (SPECS, LOGS):
                fd, why = open_subdirectory(experiments_dir, kind)
                if why:
                    notes.append(why)
                if fd is None:
                    continue
                path = os.path.join(experiments_dir, kind)
                fds.append((path, fd))
                plan = plan_directory(path, kind, scan(fd, kind), cutoff, active, uid, names)
                if kind == SPECS and others is not None:
                    plan, names = keep_other_clusters(plan, fd, others)
                found.append(plan)
            plans += reversed(found)  # logs first, as listed
    except BaseException:
        close_all(fds)
        raise
    return Plan(tuple(plans), tuple(notes)), fds


def close_all(fds: Iterable[Tuple[str, int]]) -> None:
    for _, fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


@dataclass(frozen=True)
class Outcome:
    files: int
    bytes: int
    errors: Tuple[str, ...]


PARALLEL_MIN_FILES = 2000  # below this one thread is as fast
MAX_WORKERS = 4


def _unlink_all(fd: int, directory: str, names: List[Tuple[str, int, float]]) -> Tuple[int, int, List[str]]:
    files = freed = 0
    errors = []
    unlink = os.unlink
    for name, size, _ in names:
        try:
            unlink(name, dir_fd=fd)
        except FileNotFoundError:
            continue  # gone meanwhile: nothing to do
        except OSError as exc:
            errors.append(f"{os.path.join(directory, name)}: {exc.strerror or exc}")
            continue
        files += 1
        freed += size
    return files, freed, errors


def delete(plan: Plan, fds: Iterable[Tuple[str, int]], workers: Optional[int] = None) -> Outcome:
    """Unlink the planned files relative to their directory's fd (never follows a link).

    Many files are unlinked by a few threads: the system calls release the GIL, and on
    fast filesystems Python's own overhead would otherwise show.
    """
    by_path = dict(fds)
    jobs = []
    if workers is None:
        workers = min(MAX_WORKERS, os.cpu_count() or 1)
    for directory in plan.directories:
        fd, names = by_path[directory.directory], list(directory.delete)
        parts = workers if len(names) >= PARALLEL_MIN_FILES and workers > 1 else 1
        step = -(-len(names) // parts) if names else 0
        jobs += [(fd, directory.directory, names[i:i + step]) for i in range(0, len(names), step or 1)]
    if len(jobs) <= 1:
        results = [_unlink_all(*job) for job in jobs]
    else:
        from concurrent.futures import ThreadPoolExecutor  # lazily: only for big deletions

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda job: _unlink_all(*job), jobs))
    errors: List[str] = []
    for _, _, problems in results:
        errors += problems
    return Outcome(sum(r[0] for r in results), sum(r[1] for r in results), tuple(errors))


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"  # pragma: no cover
