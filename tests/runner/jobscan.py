"""What a job runs and listens on, read from /proc as root (for the attack tests).

- :func:`node_namespaces`: one pid per network namespace of the local cluster's nodes (its
  slurmd), to run the attacker inside a node (separate hosts) or beside it (loopback mode);
- :func:`job_processes`: the processes carrying the job's marker and all their descendants
  (Ray's agents and workers overwrite their environment with their title, so the marker
  alone misses them);
- :func:`listeners`: their LISTEN sockets, from ``/proc/<pid>/net/tcp*`` (the process's own
  network namespace) matched to ``/proc/<pid>/fd``.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ot_hpc.runner import shutdown


def node_namespaces() -> Dict[str, int]:
    """node name -> a pid in that node's network namespace (its slurmd), one per namespace."""
    found: Dict[str, int] = {}
    seen = set()
    for entry in os.listdir("/proc"):
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            netns = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"slurmd" and b"-N" in argv and netns not in seen:
            seen.add(netns)
            found[argv[argv.index(b"-N") + 1].decode()] = int(entry)
    return found


def job_processes(marker: str) -> List[int]:
    """Every process carrying the job's marker, and all their descendants (Ray's agents and
    workers overwrite their environment with their title, so the marker alone misses them)."""
    parents: Dict[int, int] = {}
    for entry in [e for e in os.listdir("/proc") if e.isdigit()]:
        try:
            data = open(f"/proc/{entry}/stat", "rb").read()
            parents[int(entry)] = int(data[data.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found = set(shutdown.marked_processes(marker))
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


def _listen_table(pid: int) -> Dict[int, Tuple[str, int]]:
    """inode -> (address, port) of the LISTEN sockets in ``pid``'s network namespace."""
    table = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = open(f"/proc/{pid}/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":
                continue
            raw, port = fields[1].split(":")
            data = bytes.fromhex(raw)
            data = b"".join(data[i:i + 4][::-1] for i in range(0, len(data), 4))
            table[int(fields[9])] = (socket.inet_ntop(family, data), int(port, 16))
    return table


@dataclass(frozen=True)
class Listener:
    pid: int
    command: str
    address: str
    port: int


def listeners(pids: List[int]) -> List[Listener]:
    found = []
    for pid in pids:
        table = _listen_table(pid)
        try:
            command = os.path.basename(open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode())
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in table:
                found.append(Listener(pid, command, *table[int(link[8:-1])]))
    return found
