"""The job-unique port plan for Ray (and the SOCKS tunnel).

Two jobs that share a node must never share a port: every port Ray opens is set
explicitly (GCS, dashboard, client server, node manager, object manager, dashboard agent
HTTP/gRPC, metrics, runtime-env agent, the worker port range), inside one block of ports
per job. The block is chosen from the job id (consecutive job ids get consecutive
blocks, so jobs running side by side do not meet), then checked: every port must bind on
this host (IPv4 and IPv6, any address: another user's socket counts), and the block's
100-port chunks are claimed by binding abstract Unix socket names (Linux;
``@ot-hpc-ports/<first port>`` in ``ss -x``), so two ot-hpc jobs starting at the same
instant cannot both take it. An abstract name is no file: nothing in ``/tmp`` can be
pre-created, replaced or linked elsewhere by another user, and the kernel releases it when
the job's process dies. A block with a busy port or a claimed chunk is skipped (the
runner logs it) and the next one tried, at most ``max_attempts`` times: never a wait.

Layout of a block (offsets from ``base``)::

    0 GCS   1 dashboard   2 Ray client server   3 SOCKS tunnel
    4 + i*(6+W): node i's node manager, object manager, agent HTTP, agent gRPC,
                 metrics export, runtime-env agent, then W worker ports

When the job's nodes are separate hosts every node uses node block 0 (the same ports
on different machines do not meet); when they share a host (the local cluster),
each node gets its own block.
"""
from __future__ import annotations

import errno
import socket
import zlib
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

LOW_PORT = 20000  # above Ray's defaults (6379, 8265, 10001, 10002-19999)
HIGH_PORT = 32700  # below Linux's ephemeral range (32768-60999)
CHUNK = 100
HEAD_PORTS = 4
NODE_FIXED_PORTS = 6
LOCK_NAMESPACE = "ot-hpc-ports"  # abstract socket names, one per chunk


@dataclass(frozen=True)
class NodePorts:
    node_manager: int
    object_manager: int
    dashboard_agent_listen: int
    dashboard_agent_grpc: int
    metrics_export: int
    runtime_env_agent: int
    min_worker: int
    max_worker: int

    def ports(self) -> List[int]:
        return [
            self.node_manager, self.object_manager, self.dashboard_agent_listen,
            self.dashboard_agent_grpc, self.metrics_export, self.runtime_env_agent,
        ] + list(range(self.min_worker, self.max_worker + 1))

    def ray_args(self) -> List[str]:
        return [
            f"--node-manager-port={self.node_manager}",
            f"--object-manager-port={self.object_manager}",
            f"--dashboard-agent-listen-port={self.dashboard_agent_listen}",
            f"--dashboard-agent-grpc-port={self.dashboard_agent_grpc}",
            f"--metrics-export-port={self.metrics_export}",
            f"--runtime-env-agent-port={self.runtime_env_agent}",
            f"--min-worker-port={self.min_worker}",
            f"--max-worker-port={self.max_worker}",
        ]


@dataclass(frozen=True)
class PortPlan:
    base: int
    size: int  # ports reserved (a multiple of CHUNK)
    gcs: int
    dashboard: int
    client_server: int
    tunnel: int
    nodes: Tuple[NodePorts, ...]  # one per node (all equal unless the nodes share a host)

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    def node(self, index: int) -> NodePorts:
        return self.nodes[index]

    def head_ports(self) -> List[int]:
        return [self.gcs, self.dashboard, self.client_server, self.tunnel]

    def host_ports(self, shared_host: bool) -> List[int]:
        """Every port this plan opens on the batch node's host."""
        ports = self.head_ports()
        for ports_of_node in (self.nodes if shared_host else self.nodes[:1]):
            ports.extend(ports_of_node.ports())
        return ports

    def chunks(self) -> List[int]:
        return list(range(self.base // CHUNK, self.last // CHUNK + 1))

    def describe(self) -> str:
        return f"{self.base}-{self.last}"


def worker_port_count(cpus_per_node: int) -> int:
    """Worker ports per node: Ray needs one per worker process (tasks, actors)."""
    return max(100, min(1000, 8 * cpus_per_node + 64))


def job_number(job_id: str) -> int:
    text = str(job_id).split("_")[0].split(".")[0]
    return int(text) if text.isdigit() else zlib.crc32(str(job_id).encode())


def block_size(num_nodes: int, shared_host: bool, workers: int) -> int:
    raw = HEAD_PORTS + (num_nodes if shared_host else 1) * (NODE_FIXED_PORTS + workers)
    return -(-raw // CHUNK) * CHUNK


def plan_ports(
    job_id: str,
    num_nodes: int,
    shared_host: bool,
    workers: int = 100,
    attempt: int = 0,
    low: int = LOW_PORT,
    high: int = HIGH_PORT,
) -> PortPlan:
    """The plan for ``job_id`` (pure). ``attempt`` moves to the next block."""
    size = block_size(num_nodes, shared_host, workers)
    slots = (high - low) // size
    if slots < 1:
        raise ValueError(f"{num_nodes} nodes need {size} ports: more than {low}-{high} holds")
    base = low + ((job_number(job_id) + attempt) % slots) * size
    nodes = []
    for index in range(num_nodes):
        start = base + HEAD_PORTS + (index if shared_host else 0) * (NODE_FIXED_PORTS + workers)
        nodes.append(NodePorts(
            node_manager=start, object_manager=start + 1, dashboard_agent_listen=start + 2,
            dashboard_agent_grpc=start + 3, metrics_export=start + 4, runtime_env_agent=start + 5,
            min_worker=start + NODE_FIXED_PORTS, max_worker=start + NODE_FIXED_PORTS + workers - 1,
        ))
    return PortPlan(base=base, size=size, gcs=base, dashboard=base + 1, client_server=base + 2,
                    tunnel=base + 3, nodes=tuple(nodes))


def _bind_socket(host: str) -> socket.socket:
    """A TCP socket for the bind check: dual-stack ``::`` for "" (so IPv4 and IPv6
    listeners both count, as Ray binds ``::``), IPv4 where IPv6 is missing."""
    if not host and socket.has_ipv6:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            return sock
        except OSError:
            pass
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def busy_ports(ports: Iterable[int], host: str = "") -> List[int]:
    """Ports some process listens on (or holds bound) on ``host`` ("" = every address,
    IPv4 and IPv6, so any user's socket counts). SO_REUSEADDR, as every server sets it:
    connections in TIME_WAIT left by a finished job do not make a port busy."""
    busy = []
    for port in ports:
        sock = _bind_socket(host)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or ("::" if sock.family == socket.AF_INET6 else ""), port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                busy.append(port)
            else:
                raise
        finally:
            sock.close()
    return busy


class PortLock:
    """Claims on the plan's chunks: one abstract Unix socket name per chunk, held until
    :meth:`release` or the process's exit. Where abstract names do not exist (not Linux)
    nothing is claimed and the bind check alone decides."""

    def __init__(self, chunks: Sequence[int], namespace: str = LOCK_NAMESPACE) -> None:
        self.chunks = list(chunks)
        self.namespace = namespace
        self.sockets: List[socket.socket] = []

    def name(self, chunk: int) -> str:
        return f"\0{self.namespace}/{chunk * CHUNK}"

    def acquire(self) -> bool:
        for chunk in self.chunks:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inherited by children
            try:
                sock.bind(self.name(chunk))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    self.release()
                    return False  # claimed by another ot-hpc job (or another user)
                continue  # no abstract names here: the bind check still holds
            self.sockets.append(sock)
        return True

    def release(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def choose_plan(
    job_id: str,
    num_nodes: int,
    shared_host: bool,
    workers: int = 100,
    max_attempts: int = 20,
    lock_namespace: str = LOCK_NAMESPACE,
) -> Tuple[PortPlan, PortLock, Dict[int, List[int]]]:
    """The first plan whose ports all bind here and whose chunks we could lock.

    Returns (plan, lock, skipped) with ``skipped`` = {attempt: busy ports} for the log."""
    skipped: Dict[int, List[int]] = {}
    for attempt in range(max_attempts):
        plan = plan_ports(job_id, num_nodes, shared_host, workers, attempt)
        lock = PortLock(plan.chunks(), lock_namespace)
        if not lock.acquire():
            skipped[attempt] = [-1]  # claimed by another ot-hpc job (or squatted)
            continue
        busy = busy_ports(plan.host_ports(shared_host))
        if busy:
            lock.release()
            skipped[attempt] = busy[:5]
            continue
        return plan, lock, skipped
    raise RuntimeError(
        f"no free block of Ray ports in {LOW_PORT}-{HIGH_PORT} after {max_attempts} tries"
    )
