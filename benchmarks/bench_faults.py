"""How long each ot-* command takes to give up on a stopped slurmctld, against the plain
Slurm clients' own give-up time (the ratio is what counts: the bound is 1.5x).

Stops slurmctld of the local cluster (tools/local-cluster.sh stop-daemon), times plain
``squeue`` and ``sbatch``, then whole-process ot-status, ot-sfail and ot-submit on each
backend (pyslurm: the strict stand-in), optionally also an older tree's ot_hpc
(``--before DIR``: a directory holding that tree's ``ot_hpc`` and ``bin``), and starts
slurmctld again (also on an error or Ctrl-C). It stops the controller: run it only on a
cluster of your own (tools/debian13-lane.sh with OT_LANE_NETNS), as root:

    OT_HPC_FAULT_TESTS=1 python benchmarks/bench_faults.py [--before /path/to/old-tree] [--backends cli,pyslurm]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests import faultkit  # noqa: E402

COMMANDS = ("ot-status", "ot-sfail", "ot-submit")


def time_command(argv: List[str], env: Optional[Dict[str, str]], cwd: str) -> Tuple[int, float, str]:
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    return result.returncode, time.monotonic() - started, last


def ot_argv(tree: str, command: str, name: str, exp: str) -> List[str]:
    args = [sys.executable, os.path.join(tree, "bin", command)]
    if command == "ot-submit":
        args += ["--config", "demo.env", "--cluster", "local", "--hold", "--job-name", name,
                 "--experiments-dir", exp]
    return args


def measure(trees: Dict[str, str], backends: List[str], workdir: str, name: str) -> None:
    plain = {}
    for argv in (["squeue", "-h"], ["sbatch", "--hold", "-J", name, "--wrap", "true"]):
        code, plain[argv[0]], _ = time_command(argv, None, workdir)
        print(f"plain {argv[0]:<9} exit {code}  {plain[argv[0]]:5.1f} s")
    give_up = max(plain.values())
    print(f"bound: 1.5 x {give_up:.1f} s = {1.5 * give_up:.1f} s")
    for label, tree in trees.items():
        for backend in backends:
            env = faultkit.command_env(backend)
            env["PYTHONPATH"] = os.pathsep.join([tree] + env["PYTHONPATH"].split(os.pathsep)[1:])
            for command in COMMANDS:
                code, seconds, last = time_command(
                    ot_argv(tree, command, name, os.path.join(workdir, label)), env, workdir)
                print(f"{label:<7} {backend:<8} {command:<10} exit {code}  {seconds:5.1f} s  "
                      f"{seconds / give_up:4.2f}x plain  | {last[:90]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="an older tree (with ot_hpc/ and bin/) to time too")
    parser.add_argument("--backends", default="cli,pyslurm")
    args = parser.parse_args()
    problem = faultkit.fault_problem()
    if problem:
        raise SystemExit(problem)
    trees = {"now": REPO}
    if args.before:
        trees = {"before": os.path.abspath(args.before), **trees}
    name = f"benchfault-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as workdir:
        try:
            with faultkit.stopped("slurmctld"):
                measure(trees, args.backends.split(","), workdir, name)
        finally:
            faultkit.cancel_named(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
