"""Submit-and-query latency of the scheduler backends against Slurm's plain commands.

Baseline: ``sbatch`` and ``squeue`` run as whole processes (what the legacy bash did).
For each backend: median in-process latency of submit, get_job (load one job) and
list_jobs (my jobs), printed with the ratio to the baseline.

Targets (issue 2): the cli backend adds under 20% over the plain commands; the pyslurm
backend is at least 3x faster than ``sbatch`` (where pyslurm imports: Slurm 25.11).

Run against the local cluster:  .venv/bin/python benchmarks/bench_scheduler.py [--repeat 30]
Jobs are submitted held (they never run) and cancelled at the end.
"""
from __future__ import annotations

import argparse
import getpass
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ot_hpc.scheduler import BackendUnavailable, JobRequest  # noqa: E402
from ot_hpc.scheduler.commands import CommandScheduler  # noqa: E402

NAME = "bench-scheduler"
SCRIPT = "#!/bin/bash\ntrue\n"


def median_ms(samples):
    return statistics.median(samples) * 1000.0


def timed(call, repeat):
    samples, results = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        results.append(call())
        samples.append(time.perf_counter() - start)
    return samples, results


def plain_commands(repeat, user, env):
    def sbatch():
        out = subprocess.run(["sbatch", "--parsable", "--hold", f"--job-name={NAME}", "--time=1",
                              "--output=/dev/null"], input=SCRIPT, capture_output=True, text=True,
                             env=env, check=True).stdout
        return int(out.strip().split(";")[0])

    submit, ids = timed(sbatch, repeat)
    one, _ = timed(lambda: subprocess.run(["squeue", "-h", "-j", str(ids[0])], capture_output=True,
                                          check=True), repeat)
    mine, _ = timed(lambda: subprocess.run(["squeue", "-h", "-u", user], capture_output=True,
                                           check=True), repeat)
    return {"submit": submit, "get_job": one, "list_jobs": mine}, ids


def backend(scheduler, repeat, user, env):
    request = JobRequest(script=SCRIPT, name=NAME, nodes=1, time_limit_minutes=1, environment=env,
                         output_path="/dev/null", hold=True)
    submit, ids = timed(lambda: scheduler.submit(request), repeat)
    one, _ = timed(lambda: scheduler.get_job(ids[0]), repeat)
    mine, _ = timed(lambda: scheduler.list_jobs(user=user), repeat)
    return {"submit": submit, "get_job": one, "list_jobs": mine}, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    user = getpass.getuser()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    all_ids = []
    try:
        baseline, ids = plain_commands(args.repeat, user, env)
        all_ids += ids
        rows = [("plain sbatch/squeue (baseline)", baseline)]
        results, ids = backend(CommandScheduler(), args.repeat, user, env)
        all_ids += ids
        rows.append(("cli backend", results))
        try:
            from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler

            results, ids = backend(PyslurmScheduler(), args.repeat, user, env)
            all_ids += ids
            rows.append(("pyslurm backend", results))
        except BackendUnavailable as exc:
            print(f"pyslurm backend: not measured here ({exc})")
        print(f"{'':34} {'submit ms':>10} {'get_job ms':>11} {'list_jobs ms':>13}   ratio to baseline")
        for label, result in rows:
            cells = [median_ms(result[k]) for k in ("submit", "get_job", "list_jobs")]
            ratios = [median_ms(result[k]) / median_ms(baseline[k]) for k in ("submit", "get_job", "list_jobs")]
            print(f"{label:34} {cells[0]:10.2f} {cells[1]:11.2f} {cells[2]:13.2f}   "
                  + " / ".join(f"{r:.2f}x" for r in ratios))
        print(f"(median of {args.repeat}; targets: cli <= 1.20x, pyslurm submit <= 0.33x)")
    finally:
        for chunk in range(0, len(all_ids), 200):
            subprocess.run(["scancel", *map(str, all_ids[chunk:chunk + 200])], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
