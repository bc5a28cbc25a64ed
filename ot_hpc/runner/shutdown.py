"""Stopping what the job started, whatever Slurm's process tracking is.

Every process the runner starts inherits ``OT_HPC_JOB_MARKER=<unique value>``; Ray's
workers, raylets and agents inherit it from ``ray start``. :func:`marked_processes`
finds them on this node by reading ``/proc/<pid>/environ`` (our own processes only),
so the last sweep kills exactly this job's processes and nobody else's (never ``ray
stop``, never a name match).
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable, Iterable, List, Optional, Sequence, Set

MARKER_VAR = "OT_HPC_JOB_MARKER"


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def process_state(pid: int) -> Optional[str]:
    """The one-letter state of ``pid`` (``R``, ``S``, ``Z``...), None when gone."""
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return None
    try:
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3].decode()
    except ValueError:
        return None


def is_running(pid: int) -> bool:
    """Alive and not a zombie (zombies hold nothing and cannot be killed)."""
    state = process_state(pid)
    return state is not None and state not in ("Z", "X")


def ancestors(pid: int) -> Set[int]:
    seen: Set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        data = _read(f"/proc/{pid}/stat")
        if not data:
            break
        try:
            pid = int(data[data.rindex(b")") + 2 :].split()[1])
        except (ValueError, IndexError):
            break
    return seen


def marked_processes(marker: str, exclude: Iterable[int] = ()) -> List[int]:
    """Live pids on this node whose environment carries ``OT_HPC_JOB_MARKER=marker``."""
    return marked_processes_var(MARKER_VAR, marker, exclude)


def marked_processes_var(var: str, marker: str, exclude: Iterable[int] = ()) -> List[int]:
    """Live pids of ours whose environment carries ``var=marker`` (not us, not our parents)."""
    needle = f"{var}={marker}".encode()
    skip = set(exclude) | ancestors(os.getpid())
    uid = os.getuid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in skip:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        environ = _read(f"/proc/{pid}/environ")
        if environ and needle in environ.split(b"\0") and is_running(pid):
            found.append(pid)
    return found


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def group_alive(pgid: int) -> bool:
    """True while any non-zombie process of the group exists."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        data = _read(f"/proc/{entry}/stat")
        if not data:
            continue
        try:
            fields = data[data.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
        except (ValueError, IndexError):
            continue
    return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_group(pgid: int, grace: float, kill_wait: float = 2.0) -> bool:
    """SIGTERM the process group, SIGKILL it after ``grace`` s (then wait at most
    ``kill_wait`` s for it to go). True if it was gone in time."""
    if not group_alive(pgid):
        return True
    signal_group(pgid, signal.SIGCONT)
    signal_group(pgid, signal.SIGTERM)
    if wait_until(lambda: not group_alive(pgid), grace):
        return True
    signal_group(pgid, signal.SIGKILL)
    wait_until(lambda: not group_alive(pgid), kill_wait)
    return False


def sweep(marker: str, grace: float = 1.0, exclude: Sequence[int] = (),
          kill_wait: float = 2.0) -> List[int]:
    """Kill every process of this job left on this node; return the pids found."""
    pids = marked_processes(marker, exclude)
    if not pids:
        return []
    signal_pids(pids, signal.SIGTERM)
    wait_until(lambda: not any(is_running(p) for p in pids), grace)
    left = [p for p in pids if is_running(p)]
    signal_pids(left, signal.SIGKILL)
    wait_until(lambda: not any(is_running(p) for p in left), kill_wait)
    return pids
