"""Stopping and restoring the local cluster's daemons for the fault tests (tests marked
``faults``), and running the ot-* commands as whole processes, timed.

A daemon is stopped with ``tools/local-cluster.sh stop-daemon`` and always started again
(``start-daemon``, which waits until it answers) when the ``with`` block ends, also on a
failure. Only a cluster that tools/local-cluster.sh started (its pid files) is touched.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from .conftest import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "tools" / "local-cluster.sh"
RUN_DIR = Path("/run/ot-hpc-local-cluster")
STANDIN_DIR = REPO / "tests" / "standin"
BACKENDS = ("cli", "pyslurm")  # pyslurm: the strict stand-in driving the real cluster


def fault_problem() -> Optional[str]:
    """Why this machine's cluster may not be stopped here, or None."""
    if os.environ.get("OT_HPC_FAULT_TESTS") != "1":
        return ("fault tests stop this machine's slurmctld/slurmdbd: set OT_HPC_FAULT_TESTS=1 "
                "only on a cluster of your own (the lanes of tools/debian13-lane.sh set it)")
    if os.geteuid() != 0:
        return "fault tests stop Slurm daemons: they need root"
    if not (RUN_DIR / "slurmctld.pid").exists():
        return "the cluster was not started by tools/local-cluster.sh (no pid files)"
    return None


def require_faults() -> None:
    problem = fault_problem()
    if problem and os.environ.get("OT_HPC_FAULT_TESTS") != "1":
        pytest.skip(problem)  # not asked for: never a failure, never a stopped daemon
    skip_or_fail(problem)


def _cluster(action: str, daemon: str) -> None:
    result = subprocess.run(["bash", str(CLUSTER_SCRIPT), action, daemon], capture_output=True,
                            text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"local-cluster.sh {action} {daemon}: {result.stderr.strip()}")


def controller_up() -> bool:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return "UP" in ping.stdout


def restore(daemon: str) -> None:
    """Start ``daemon`` again and wait until it answers (idempotent; start-daemon waits
    for slurmdbd through sacct, and here for slurmctld through ``scontrol ping``)."""
    _cluster("start-daemon", daemon)
    if daemon != "slurmctld":
        return
    deadline = time.monotonic() + 90
    while not controller_up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"slurmctld does not answer after starting {daemon} again")
        time.sleep(0.5)


@contextlib.contextmanager
def stopped(daemon: str) -> Iterator[None]:
    """``daemon`` (slurmctld or slurmdbd) stopped inside the block, running after it."""
    _cluster("stop-daemon", daemon)
    try:
        yield
    finally:
        restore(daemon)


def controller_pid() -> int:
    return int((RUN_DIR / "slurmctld.pid").read_text().split()[0])


@contextlib.contextmanager
def frozen_controller() -> Iterator[int]:
    """slurmctld stopped with SIGSTOP (it accepts connections, answers nothing) inside the
    block; SIGCONT after it, also on a failure. Yields its pid."""
    pid = controller_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while not controller_up() and time.monotonic() < deadline:
            time.sleep(0.5)


def command_env(backend: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_HPC_")}
    path = [str(REPO)] + ([str(STANDIN_DIR)] if backend == "pyslurm" else [])
    env.update({"PYTHONPATH": os.pathsep.join(path), "OT_HPC_BACKEND": backend})
    env.update(extra or {})
    return env


def timed(argv: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
          timeout: float = 300) -> Tuple["subprocess.CompletedProcess[str]", float]:
    started = time.monotonic()
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=timeout)
    return result, time.monotonic() - started


def ot(command: str, args: Sequence[str], backend: str, cwd: str,
       extra: Optional[Dict[str, str]] = None) -> Tuple["subprocess.CompletedProcess[str]", float]:
    """An ot-* command as a fresh process (bin/<command>), timed."""
    return timed([sys.executable, str(REPO / "bin" / command), *args], command_env(backend, extra),
                 cwd=cwd)


def error_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def jobs_named(name: str) -> List[int]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True,
                         timeout=60).stdout
    return [int(word) for word in out.split()]


def cancel_named(name: str) -> None:
    ids = jobs_named(name)
    if ids:
        subprocess.run(["scancel", *map(str, ids)], capture_output=True, timeout=60)


def node_state(node: str) -> str:
    out = subprocess.run(["sinfo", "-h", "-N", "-n", node, "-o", "%t"], capture_output=True,
                         text=True, timeout=30).stdout.split()
    return out[0] if out else ""


@contextlib.contextmanager
def dead_node(node: str) -> Iterator[float]:
    """Node ``node`` (separate hosts only) killed inside the block: its slurmd and every
    process in its namespace (``local-cluster.sh stop-node``); yields the monotonic time of
    the kill. After the block, also on a failure, its slurmd runs again and the node takes
    jobs (``start-node`` waits until sinfo says idle/mix/alloc)."""
    _cluster("stop-node", node)
    killed = time.monotonic()
    try:
        yield killed
    finally:
        _cluster("start-node", node)
