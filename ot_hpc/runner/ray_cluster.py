"""Phase 3: a Ray cluster over every node of the allocation.

The head runs on the batch node (a child of the runner); one worker per other node is
started at the same moment through ``srun --overlap --nodes=1 --ntasks=1 -w <node>``
(workers wait for the head's GCS port themselves, see :mod:`.node_agent`; no sleeps).
Ports come from the job's :class:`~.ports.PortPlan`, each node's agent makes its own
private ``--temp-dir``, ``--num-cpus``/``--num-gpus`` come from the allocation and the node
IP from the cluster's interconnect rule. Every process gets the job's token
authentication (:mod:`.raysecurity`); the dashboard binds 127.0.0.1, the Ray Client
server starts only when asked for. Ready when the GCS lists every node alive with the
expected CPUs and GPUs (polled from the batch node by :mod:`.raypoll`).
"""
from __future__ import annotations

import collections
import ipaddress
import json
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from .exit_codes import EXIT_RAY
from .jobenv import JobEnvironment, inner_srun_environment
from .joblog import JobLog, PhaseError
from .ports import PortPlan
from .raysecurity import RaySecurity

FAULT_SKIP_NODES_VAR = "OT_HPC_FAULT_SKIP_NODES"  # tests: never start Ray on these nodes


class Stopped(Exception):
    """A signal asked the job to stop while waiting."""


def node_address(cluster, node: str) -> str:
    """The IP Ray uses for ``node``: its name on the cluster's fast network, resolved.

    The local cluster's nodes resolve through /etc/hosts (tools/local-network.sh): with
    separate hosts to their own fabric addresses, in loopback mode ``nK`` to 127.0.0.(K+1)
    (Ray rewrites 127.0.0.1 to the host's address, other loopback addresses stay as given)."""
    from ..cluster_facts import interconnect_hostname

    host = interconnect_hostname(cluster, node) if cluster is not None else node
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PhaseError(f"cannot resolve {host} (interconnect name of {node}): {exc.strerror}", EXIT_RAY)
    return infos[0][4][0]


def nodes_share_host(cluster, addresses: Sequence[str]) -> bool:
    """True when the nodes share one network stack (every address is a loopback one: the
    local cluster in loopback mode), so each node needs ports of its own."""
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def ray_command(python: str) -> List[str]:
    """The ``ray`` CLI of the given interpreter's environment (the trainer's: one Ray on
    every node and in the driver); the ``ray`` script beside it only when its ``#!`` is
    that interpreter, else ``python -m`` (a script of another Python's Ray never runs)."""
    candidate = os.path.join(os.path.dirname(python), "ray")
    try:
        with open(candidate, "rb") as handle:
            shebang = handle.readline(4096)[2:].decode(errors="replace").split()
        script_python = shebang[0] if shebang else ""
        if os.access(candidate, os.X_OK) and (os.path.abspath(script_python) == os.path.abspath(python) or (
                os.path.dirname(os.path.abspath(script_python)) == os.path.dirname(os.path.abspath(python))
                and os.path.realpath(script_python) == os.path.realpath(python))):
            return [candidate]
    except OSError:
        pass
    return [python, "-m", "ray.scripts.scripts"]


def temp_dir_for(job_id: str, index: int, root: str = "/tmp") -> str:
    """The benchmark's bash recipes' temp dirs (predictable names: never the runner's, whose
    node agents make private ones, see :mod:`.raysecurity`)."""
    return os.path.join(root, f"ot-ray-{job_id}-{index}")


# Resource names Ray sets from its own flags; --resources may not name them.
RAY_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def parse_ray_resources(text: Optional[str]) -> str:
    """The spec's ``ray_resources`` (a JSON object such as ``{"vllm_instance": 1}``) as
    the compact JSON for ``ray start --resources``; "" when unset. Raises PhaseError
    (one line, exit code 4) when it is not an object of non-negative numbers."""
    text = (text or "").strip()
    if not text:
        return ""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise PhaseError(f"RAY_RESOURCES {text!r} is not valid JSON ({exc}): "
                         f"write a JSON object such as '{{\"vllm_instance\": 1}}'", EXIT_RAY)
    if not isinstance(value, dict):
        raise PhaseError(f"RAY_RESOURCES {text!r} must be a JSON object such as "
                         f"'{{\"vllm_instance\": 1}}'", EXIT_RAY)
    for key, amount in value.items():
        if not key or key in RAY_BUILTIN_RESOURCES:
            raise PhaseError(f"RAY_RESOURCES key {key!r} is not a custom resource "
                             f"(CPUs and GPUs come from the allocation)", EXIT_RAY)
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise PhaseError(f"RAY_RESOURCES {key!r} must be a non-negative number, not {amount!r}", EXIT_RAY)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


DASHBOARD_HOST = "127.0.0.1"  # reached from elsewhere only through ssh -L to the head node


def head_args(plan: PortPlan, ip: str, cpus: int, gpus: int, temp_dir: Optional[str] = None,
              resources: str = "", client_server: bool = False) -> List[str]:
    """``ray start --head``; without ``temp_dir`` the node agent adds its private one."""
    return [
        "start", "--head", "--block", "--disable-usage-stats",
        f"--node-ip-address={ip}", f"--port={plan.gcs}",
        "--include-dashboard=true", f"--dashboard-host={DASHBOARD_HOST}",
        f"--dashboard-port={plan.dashboard}",
        *([f"--ray-client-server-port={plan.client_server}"] if client_server else []),
        *plan.node(0).ray_args(),
        f"--num-cpus={cpus}", f"--num-gpus={gpus}",
        *([f"--temp-dir={temp_dir}"] if temp_dir else []),
        *([f"--resources={resources}"] if resources else []),
    ]


def worker_args(plan: PortPlan, index: int, head: str, ip: str, cpus: int, gpus: int,
                temp_dir: Optional[str] = None, resources: str = "") -> List[str]:
    return [
        "start", "--block", "--disable-usage-stats", f"--address={head}",
        f"--node-ip-address={ip}", *plan.node(index).ray_args(),
        f"--num-cpus={cpus}", f"--num-gpus={gpus}",
        *([f"--temp-dir={temp_dir}"] if temp_dir else []),
        *([f"--resources={resources}"] if resources else []),
    ]


def srun_args(node: str, cpus: int) -> List[str]:
    return [
        "--overlap", "--nodes=1", "--ntasks=1", f"--cpus-per-task={cpus}", "-w", node,
        "--export=ALL", "--kill-on-bad-exit=0", f"--job-name=ray-{node}",
    ]


@dataclass
class NodeSpec:
    index: int
    name: str
    ip: str
    cpus: int
    gpus: int


def _exit_code(proc) -> Optional[int]:
    try:
        code = proc.process.exit_code
    except Exception:
        return None
    if code is None:
        return None
    return 128 - code if code < 0 else code


# `ray start` prints a how-to banner at INFO level ("Next steps", "To terminate the Ray
# runtime, run ray stop", ...) from these modules; it says nothing about this job.
_RAY_BANNER = re.compile(r"\s(INFO|SUCC)\s+(scripts|cli_output_helpers|usage_lib)\.py:\d+ -- ")
_RAY_BANNER_KEEP = ("Local node IP", "Ray runtime started")


def is_ray_banner(line: str) -> bool:
    """True for the informational lines of Ray's start-up banner (warnings never are)."""
    return bool(_RAY_BANNER.search(line)) and not any(keep in line for keep in _RAY_BANNER_KEEP)


class RayCluster:
    def __init__(
        self,
        job: JobEnvironment,
        plan: PortPlan,
        addresses: Mapping[str, str],
        env: Mapping[str, str],
        log: JobLog,
        ray_python: str,
        join_timeout: float,
        shared_host: bool,
        security: RaySecurity,
        poll_interval: float = 0.2,
        on_progress: Optional[Callable[[int, int], None]] = None,
        resources: str = "",
    ) -> None:
        self.job = job
        self.resources = resources  # compact JSON for --resources (see parse_ray_resources), or ""
        self.plan = plan
        self.security = security
        self.env = security.agent_environment(env)  # the node agents'
        self.driver_env = security.driver_environment(env)  # the poller's (and the trainer's)
        self.log = log
        self.ray_python = ray_python  # the trainer's interpreter: its Ray runs every node
        self.join_timeout = join_timeout
        self.shared_host = shared_host
        self.poll_interval = poll_interval
        self.on_progress = on_progress
        self.nodes = [
            NodeSpec(i, name, addresses[name], job.cpus_on(name), job.gpus_per_node)
            for i, name in enumerate(job.ordered_nodes)
        ]
        self.head = self.nodes[0]
        self.head_process = None
        self.workers: Dict[str, object] = {}
        self.poller = None
        self.tail: Dict[str, Deque[str]] = collections.defaultdict(lambda: collections.deque(maxlen=8))
        self._table: List[dict] = []
        self._table_lock = threading.Lock()
        self._reported_dead: set = set()

    # ---- addresses -------------------------------------------------------------------
    @property
    def gcs_address(self) -> str:
        return f"{self.head.ip}:{self.plan.gcs}"

    @property
    def dashboard_url(self) -> Optional[str]:
        from .node_agent import dashboard_available

        if not dashboard_available():
            return None
        return f"http://{DASHBOARD_HOST}:{self.plan.dashboard}"  # on the head node

    def expected(self) -> Dict[str, dict]:
        return {n.ip: {"node": n.name, "CPU": n.cpus, "GPU": n.gpus} for n in self.nodes}

    # ---- processes -------------------------------------------------------------------
    def _sink(self, node: str):
        """Ray's output into the job log, less its generic start-up banner (every line,
        banner included, still goes to the tail kept for error messages)."""
        tag = f"ray:{node}"
        tail = self.tail[node]

        def write(line: str) -> None:
            for piece in str(line).splitlines():
                if piece.strip():
                    tail.append(piece.strip())
                    if not is_ray_banner(piece):
                        self.log.line(tag, piece)

        return write

    def _agent(self, node: NodeSpec, wait_for: Optional[str]) -> List[str]:
        argv = [self.ray_python, "-m", "ot_hpc.runner.node_agent", "--node", node.name,
                "--wait-timeout", str(self.join_timeout)]
        if wait_for:
            argv += ["--wait-for", wait_for]
            if self.shared_host:
                argv.append("--no-preimport")
        if node.index == 0 or self.shared_host:  # on the runner's host: inside its private dir
            argv += ["--private-root", self.security.private_dir]
        if not self.shared_host and node.index > 0:
            ports = self.plan.node(node.index)
            argv += ["--check-ports", f"{ports.node_manager}-{ports.runtime_env_agent},"
                                       f"{ports.min_worker}-{ports.max_worker}"]
        ray = ray_command(self.ray_python)
        if node.index == 0:
            args = head_args(self.plan, node.ip, node.cpus, node.gpus, None, self.resources,
                             self.security.client_server)
        else:
            args = worker_args(self.plan, node.index, self.gcs_address, node.ip, node.cpus, node.gpus,
                               None, self.resources)
        return argv + ["--"] + ray + args

    def _spawn(self, argv: List[str], env: Mapping[str, str], sink):
        import sh  # only the code that drives processes imports it

        return sh.Command(argv[0])(
            *argv[1:], _bg=True, _bg_exc=False, _new_session=True, _tty_out=False,
            _env=dict(env), _out=sink, _err_to_out=True, _ok_code=list(range(256)),
            _decode_errors="replace",
        )

    def start(self, stop_event: threading.Event) -> float:
        """Start everything and wait until ready; return the seconds it took."""
        start = time.monotonic()
        skip = {s.strip() for s in self.env.get(FAULT_SKIP_NODES_VAR, "").split(",") if s.strip()}
        self.log.line("ray", f"head on {self.head.name} ({self.gcs_address}), "
                             f"{len(self.nodes) - 1} worker(s), ports {self.plan.describe()}")
        self.head_process = self._spawn(self._agent(self.head, None), self.env, self._sink(self.head.name))
        srun_env = inner_srun_environment(self.env)
        for node in self.nodes[1:]:
            if node.name in skip:
                self.log.line("ray", f"fault injection ({FAULT_SKIP_NODES_VAR}): not starting Ray on {node.name}")
                continue
            argv = ["srun", *srun_args(node.name, node.cpus), *self._agent(node, self.gcs_address)]
            self.workers[node.name] = self._spawn(argv, srun_env, self._sink(node.name))
        poll_argv = [self.ray_python, "-m", "ot_hpc.runner.raypoll", self.gcs_address,
                     str(self.poll_interval), "2", str(len(self.nodes))]
        self.poller = self._spawn(poll_argv, self.driver_env, self._on_poll)
        return self._wait_ready(start, stop_event)

    def _on_poll(self, line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            self.log.line("ray", f"poller: {line.strip()}")
            return
        if "error" in data:
            return  # the GCS is not up yet, or restarting: the timeout decides
        with self._table_lock:
            self._table = data.get("nodes", [])

    def table(self) -> List[dict]:
        with self._table_lock:
            return list(self._table)

    def readiness(self) -> Tuple[List[NodeSpec], List[str]]:
        """(ready nodes, problems such as wrong resources)."""
        alive = {n["ip"]: n for n in self.table() if n.get("alive")}
        ready, problems = [], []
        for node in self.nodes:
            seen = alive.get(node.ip)
            if seen is None:
                continue
            if int(seen.get("CPU", 0)) != node.cpus or int(seen.get("GPU", 0)) != node.gpus:
                problems.append(f"node {node.name} joined with CPU={seen.get('CPU', 0):g} GPU={seen.get('GPU', 0):g}, "
                                f"expected CPU={node.cpus} GPU={node.gpus}")
            else:
                ready.append(node)
        return ready, problems

    def _process_failure(self) -> Optional[str]:
        if self.head_process is not None and not self.head_process.is_alive():
            return self._died(self.head.name, self.head_process, "Ray head")
        for name, proc in self.workers.items():
            if not proc.is_alive():
                return self._died(name, proc, "Ray worker")
        return None

    def _died(self, node: str, proc, what: str) -> str:
        code = _exit_code(proc)
        lines = [l for l in self.tail[node] if not l.startswith(("node-agent", "srun:"))]
        agent = [l for l in self.tail[node] if l.startswith("node-agent")]
        last = (agent[-1:] if agent and "ray start exited" not in agent[-1] else lines[-1:]) or ["no output"]
        return f"{what} on {node} exited with code {code}: {last[0]}"

    def _wait_ready(self, start: float, stop_event: threading.Event) -> float:
        reported = -1
        while True:
            if stop_event.is_set():
                raise Stopped("stopped by a signal while Ray was starting")
            ready, problems = self.readiness()
            if len(ready) != reported:
                reported = len(ready)
                if self.on_progress:
                    self.on_progress(len(ready), len(self.nodes))
                if ready:
                    self.log.line("ray", f"{len(ready)}/{len(self.nodes)} nodes ready after "
                                         f"{time.monotonic() - start:.2f} s ({', '.join(n.name for n in ready)})")
            if problems:
                raise PhaseError(problems[0], EXIT_RAY)
            if len(ready) == len(self.nodes):
                return time.monotonic() - start
            failure = self._process_failure()
            if failure:
                raise PhaseError(failure, EXIT_RAY)
            if time.monotonic() - start > self.join_timeout:
                ready_names = {n.name for n in ready}
                missing = [n for n in self.nodes if n.name not in ready_names]
                names = ", ".join(f"{n.name} ({n.ip})" for n in missing)
                noun = "node" if len(missing) == 1 else "nodes"
                raise PhaseError(f"{noun} {names} did not join the Ray cluster within "
                                 f"{self.join_timeout:g} s", EXIT_RAY)
            time.sleep(0.05)

    def health_problems(self) -> List[str]:
        """New problems since the last call (a node that left, an agent that exited)."""
        problems = []
        alive_ips = {n["ip"] for n in self.table() if n.get("alive")}
        for node in self.nodes:
            proc = self.head_process if node.index == 0 else self.workers.get(node.name)
            gone = proc is not None and not proc.is_alive()
            if (gone or node.ip not in alive_ips) and node.name not in self._reported_dead:
                if gone:
                    problems.append(self._died(node.name, proc, "Ray head" if node.index == 0 else "Ray worker"))
                elif self.table():
                    problems.append(f"node {node.name} ({node.ip}) is no longer alive in the Ray cluster")
                else:
                    continue
                self._reported_dead.add(node.name)
        return problems

    # ---- shutdown --------------------------------------------------------------------
    def stop(self, grace: float = 5.0) -> List[str]:
        """Stop workers and head (their agents clean their nodes); return what had to be killed."""
        procs = [(name, proc) for name, proc in self.workers.items()]
        if self.head_process is not None:
            procs.append((self.head.name, self.head_process))
        for name, proc in procs:
            if proc.is_alive():
                try:
                    # USR2: srun forwards it to the agent as is (SIGTERM would make srun
                    # cancel the step at once, leaving the agent no time to clean up).
                    proc.signal(signal.SIGUSR2 if name in self.workers else signal.SIGTERM)
                except Exception:
                    pass
        if self.poller is not None and self.poller.is_alive():
            try:
                self.poller.signal_group(signal.SIGKILL)
            except Exception:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.is_alive() for _n, p in procs):
            time.sleep(0.05)
        killed = []
        for name, proc in procs:
            if proc.is_alive():
                killed.append(name)
                try:
                    proc.signal_group(signal.SIGKILL)
                except Exception:
                    pass
        return killed
