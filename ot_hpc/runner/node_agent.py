"""What runs on each node of the Ray cluster (the head: a child of the runner; a worker:
``srun --overlap ... python -m ot_hpc.runner.node_agent``).

1. Workers wait until the head's GCS port accepts connections (polled every 50 ms, so
   ``srun`` and Python start-up overlap the head's start; no sleeps).
2. Checks that this node's Ray ports bind (two jobs on one node never share one).
3. Runs ``ray start --block`` in its own session, with ``OT_HPC_NODE_MARKER`` set so
   every Ray process of this node can be found again.
4. On SIGTERM/SIGINT/SIGHUP/SIGUSR2 (the runner, srun forwarding scancel, the time
   limit) or when Ray exits: SIGTERM Ray's process group, SIGKILL it after a grace
   period, then kill whatever still carries this node's marker (Ray daemons that left
   the group). Never ``ray stop``: that would hit other users' Ray on a shared node.

Usage: ``python -m ot_hpc.runner.node_agent [--wait-for HOST:PORT] [--wait-timeout S]
[--check-ports A-B,C,...] [--grace S] --node NAME -- <ray argv>``
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

from . import shutdown
from .ports import busy_ports

NODE_MARKER_VAR = "OT_HPC_NODE_MARKER"
EXIT_PORTS_BUSY = 3
EXIT_HEAD_UNREACHABLE = 4
EXIT_STOPPED = 143

_stop_signal: List[int] = []


def _on_signal(signum, _frame) -> None:
    _stop_signal.append(signum)


def parse_ports(text: str) -> List[int]:
    ports: List[int] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        low, _, high = item.partition("-")
        ports.extend(range(int(low), int(high or low) + 1))
    return ports


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _stop_signal:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return False


def adjust_ray_argv(argv: List[str]) -> List[str]:
    """Drop ``--ray-client-server-port`` where Ray Client's dependency (grpcio) is missing:
    plain ``pip install ray`` refuses the flag and starts no client server anyway."""
    if importlib.util.find_spec("grpc") is not None:
        return argv
    return [a for a in argv if not a.startswith("--ray-client-server-port")]


def say(node: str, message: str) -> None:
    sys.stdout.write(f"node-agent {node}: {message}\n")
    sys.stdout.flush()


def stop_ray(proc: subprocess.Popen, marker: str, grace: float) -> None:
    if proc.poll() is None:
        shutdown.stop_group(proc.pid, grace)
    left = shutdown.marked_processes_var(NODE_MARKER_VAR, marker)
    if left:
        shutdown.signal_pids(left, signal.SIGKILL)
        shutdown.wait_until(lambda: not any(shutdown.is_running(p) for p in left), 2.0)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ot_hpc.runner.node_agent")
    parser.add_argument("--node", required=True)
    parser.add_argument("--wait-for", default=None)
    parser.add_argument("--wait-timeout", type=float, default=300.0)
    parser.add_argument("--check-ports", default="")
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("ray_argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    ray_argv = [a for a in args.ray_argv if a != "--"] if args.ray_argv[:1] == ["--"] else args.ray_argv
    if not ray_argv:
        parser.error("the ray command is missing after --")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(sig, _on_signal)

    node = args.node
    if args.wait_for:
        host, _, port = args.wait_for.rpartition(":")
        if not wait_for_port(host, int(port), args.wait_timeout):
            if _stop_signal:
                return EXIT_STOPPED
            say(node, f"the Ray head {args.wait_for} did not accept connections within {args.wait_timeout:g} s")
            return EXIT_HEAD_UNREACHABLE
    busy = busy_ports(parse_ports(args.check_ports))
    if busy:
        shown = ", ".join(str(p) for p in busy[:5]) + (" ..." if len(busy) > 5 else "")
        say(node, f"Ray ports already in use on this node by another process: {shown}")
        return EXIT_PORTS_BUSY
    if _stop_signal:
        return EXIT_STOPPED

    marker = f"{os.environ.get(shutdown.MARKER_VAR, 'none')}:{node}:{os.getpid()}"
    env = dict(os.environ)
    env[NODE_MARKER_VAR] = marker
    proc = subprocess.Popen(adjust_ray_argv(ray_argv), env=env, start_new_session=True,
                            stdin=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not _stop_signal:
            time.sleep(0.1)
        if _stop_signal:
            stop_ray(proc, marker, args.grace)
            return EXIT_STOPPED
        code = proc.returncode
        say(node, f"ray start exited with code {code}")
        stop_ray(proc, marker, 0.5)
        return code if code else 1
    finally:
        if proc.poll() is None:
            stop_ray(proc, marker, args.grace)


if __name__ == "__main__":
    sys.exit(main())
