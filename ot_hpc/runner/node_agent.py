"""What runs on each node of the Ray cluster (the head: a child of the runner; a worker:
``srun --overlap ... python -m ot_hpc.runner.node_agent``).

1. Workers wait until the head's GCS port accepts connections (polled every 50 ms, so
   ``srun`` and Python start-up overlap the head's start; no sleeps).
2. Checks that this node's Ray ports bind (two jobs on one node never share one).
3. Makes this node's private directory (:func:`.raysecurity.prepare_node`: fresh,
   unpredictable, 0700; inside ``--private-root`` when given), the node-local copy of the
   job's Ray token (0600, from the environment), and Ray's ``--temp-dir`` in it.
4. Runs ``ray start --block`` in its own session, with ``OT_HPC_NODE_MARKER`` set so
   every Ray process of this node can be found again, ``RAY_AUTH_MODE=token`` and
   ``RAY_AUTH_TOKEN_PATH`` (never the token itself).
5. On SIGTERM/SIGINT/SIGHUP/SIGUSR2 (the runner, srun forwarding scancel, the time
   limit) or when Ray exits: SIGTERM Ray's process group, SIGKILL it after a grace
   period, then kill whatever still carries this node's marker (Ray daemons that left
   the group), and remove the private directory. Never ``ray stop``: that would hit
   other users' Ray on a shared node.

Usage: ``python -m ot_hpc.runner.node_agent [--wait-for HOST:PORT] [--wait-timeout S]
[--check-ports A-B,C,...] [--grace S] [--private-root DIR] --node NAME -- <ray argv>``
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
from .exit_codes import AGENT_HEAD_UNREACHABLE, AGENT_PORTS_BUSY, AGENT_PRIVATE_DIR
from .ports import busy_ports
from .private import remove_private_dir
from .raysecurity import NodePrivate, prepare_node

NODE_MARKER_VAR = "OT_HPC_NODE_MARKER"

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


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def dashboard_available() -> bool:
    """Ray's dashboard needs ``ray[default]`` (aiohttp); plain ``pip install ray`` lacks it."""
    return has_module("aiohttp")


def adjust_ray_argv(argv: List[str]) -> List[str]:
    """Drop what this environment's Ray cannot start: ``--ray-client-server-port`` without
    Ray Client's dependency (grpcio), the dashboard without ``ray[default]`` (both are
    refused by ``ray start`` instead of being skipped)."""
    out = [a for a in argv if not a.startswith("--temp-dir")]  # the agent's own, added later
    if not has_module("grpc"):
        out = [a for a in out if not a.startswith("--ray-client-server-port")]
    if not dashboard_available():
        out = [a for a in out if not a.startswith(("--dashboard-host", "--dashboard-port", "--include-dashboard"))]
        if "--head" in out:
            out.append("--include-dashboard=false")
    return out


def preimport_ray():
    """Import Ray's CLI while waiting for the head (about 1 s saved per worker), or None."""
    if os.environ.get("OT_HPC_NODE_AGENT_FORK", "1") == "0":
        return None
    try:
        from ray.scripts.scripts import main as ray_main
    except Exception:  # noqa: BLE001 - fall back to running the ray command
        return None
    return ray_main


class ForkedRay:
    """``ray start`` run by a forked child of this (Ray-preloaded) process, in its own
    session; quacks like the parts of ``subprocess.Popen`` the agent uses."""

    def __init__(self, ray_main, argv, env) -> None:
        args = argv[1:]
        while args and args[0] != "start":  # drop "python -m ray.scripts.scripts" prefixes
            args = args[1:]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: become ``ray start`` (never returns)
            code = 1
            try:
                os.setsid()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
                    signal.signal(sig, signal.SIG_DFL)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.environ.clear()
                os.environ.update(env)
                sys.argv = ["ray"] + list(args)
                ray_main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


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
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--private-root", default=None,
                        help="make this node's private directory in this one (the runner's, "
                             "when the agent shares its host), else under $TMPDIR or /tmp")
    parser.add_argument("--no-preimport", action="store_true",
                        help="run the ray command instead of a Ray-preloaded fork (nodes that share "
                             "a host with the head: the preload would slow the head down)")
    parser.add_argument("ray_argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    ray_argv = [a for a in args.ray_argv if a != "--"] if args.ray_argv[:1] == ["--"] else args.ray_argv
    if not ray_argv:
        parser.error("the ray command is missing after --")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(sig, _on_signal)

    node = args.node
    try:  # first: a Ray imported below reads its authentication settings from the environment
        private = prepare_node(os.environ, args.private_root)
    except OSError as exc:
        say(node, f"cannot make this node's private directory: {exc}")
        return AGENT_PRIVATE_DIR
    os.environ.clear()
    os.environ.update(private.env)  # the token's copy is on disk now: its variable is gone
    try:
        ray_main = preimport_ray() if args.wait_for and not args.no_preimport else None
        code = wait_and_check(node, args)
        if code is not None:
            return code
        return run_ray(node, ray_main, ray_argv, private, args.grace)
    finally:
        if os.environ.get("OT_HPC_KEEP_RAY_TEMP") != "1":
            remove_private_dir(private.directory)


def wait_and_check(node: str, args) -> Optional[int]:
    """Wait for the head's GCS port and check this node's ports; an exit code, or None."""
    if args.wait_for:
        host, _, port = args.wait_for.rpartition(":")
        if not wait_for_port(host, int(port), args.wait_timeout):
            if _stop_signal:
                return 0  # asked to stop before Ray started
            say(node, f"the Ray head {args.wait_for} did not accept connections within {args.wait_timeout:g} s")
            return AGENT_HEAD_UNREACHABLE
    busy = busy_ports(parse_ports(args.check_ports))
    if busy:
        shown = ", ".join(str(p) for p in busy[:5]) + (" ..." if len(busy) > 5 else "")
        say(node, f"Ray ports already in use on this node by another process: {shown}")
        return AGENT_PORTS_BUSY
    return 0 if _stop_signal else None


def run_ray(node: str, ray_main, ray_argv: List[str], private: NodePrivate, grace: float) -> int:
    """``ray start --block`` until it exits or a signal asks us to stop; its exit status."""
    if private.note:
        say(node, private.note)
    say(node, f"private directory {private.directory} (0700), Ray temp dir {private.temp_dir}"
        + ("" if private.authenticated else ", no token"))
    marker = f"{os.environ.get(shutdown.MARKER_VAR, 'none')}:{node}:{os.getpid()}"
    env = dict(private.env)
    env[NODE_MARKER_VAR] = marker
    env["PYTHONUNBUFFERED"] = "1"  # Ray's messages reach the job log as they happen
    final_argv = adjust_ray_argv(ray_argv) + [f"--temp-dir={private.temp_dir}"]
    client = [a for a in ray_argv if a.startswith("--ray-client-server-port")]
    if client and client[0] not in final_argv:
        say(node, "the Ray Client server needs grpcio, which this Python lacks: not started")
    if ray_main is not None:
        proc = ForkedRay(ray_main, final_argv, env)
    else:
        proc = subprocess.Popen(final_argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not _stop_signal:
            time.sleep(0.1)
        if _stop_signal:
            stop_ray(proc, marker, grace)
            return 0  # asked to stop (by the runner, or Slurm ending the job): not an error
        code = proc.returncode
        say(node, f"ray start exited with code {code}")
        stop_ray(proc, marker, 0.5)
        return code if code else 1
    finally:
        if proc.poll() is None:
            stop_ray(proc, marker, grace)


if __name__ == "__main__":
    sys.exit(main())
