"""Time from the batch script's first line to "Ray ready on all N nodes", N = 1, 2, 3.

Runs on the real local Slurm cluster (``bash tools/local-cluster.sh start``), one job at a
time, with Ray installed in this Python. Recipes, all with the same ``ray start``
commands (ports, temp dirs, node IPs, CPUs/GPUs), only the orchestration differs:

- legacy:     head, ``sleep 10``, each worker then ``sleep 5``, then ``sleep 30``
- documented: Ray's Slurm script (head, ``sleep 10``, ``sleep 5`` per worker)
- limit:      head; every worker launched the moment the head's GCS port accepts
              connections; readiness polled from the GCS every 0.2 s
- runner:     ``python -m ot_hpc.runner`` (its "Ray ready on all N nodes" log line)
- runner-nofork (optional): the runner with OT_HPC_NODE_AGENT_FORK=0 (on separate hosts
              workers preload Ray while the head starts; the local cluster's nodes share
              one host, where the runner already turns the preload off)

For legacy/documented, "ready" is when the script declares it (end of its sleeps), as the
legacy launcher did. Prints seconds and ratios; target: runner <= 1.3x limit, growing by
< 1 s per extra node.

    python benchmarks/bench_ray_startup.py [--nodes 1,2,3] [--recipes legacy,documented,limit,runner]
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ot_hpc.runner.ports import plan_ports  # noqa: E402
from ot_hpc.runner.ray_cluster import head_args, ray_command, temp_dir_for, worker_args  # noqa: E402
from ot_hpc.scheduler import JobRequest, get_scheduler  # noqa: E402
from ot_hpc.spec import JobSpec, write_spec  # noqa: E402

PY = sys.executable
RECIPES = ("legacy", "documented", "limit", "runner")

POLL = r'''
import socket, sys, time
host, port, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while True:
    try:
        socket.create_connection((host, port), 0.5).close(); break
    except OSError:
        time.sleep(0.05)
from ray._raylet import GcsClient
client = GcsClient(address=f"{host}:{port}")
while True:
    try:
        alive = sum(1 for n in client.get_all_node_info(timeout=5).values() if n.state == 0)
    except Exception:
        alive = 0
    if alive >= want:
        print(f"READY {time.time():.6f}", flush=True); break
    time.sleep(0.2)
'''


def bash_recipe(recipe: str, job_tag: str, nodes: int) -> str:
    """A batch script running the recipe with the same ray commands as the runner."""
    plan = plan_ports(job_tag, nodes, shared_host=True)
    ray = " ".join(shlex.quote(a) for a in ray_command(PY))
    ips = [f"127.0.0.{i + 2}" for i in range(nodes)]
    head = " ".join(shlex.quote(a) for a in head_args(plan, ips[0], 1, 0, temp_dir_for(job_tag, 0)))
    head = head.replace("--include-dashboard=true", "--include-dashboard=false")
    head = re.sub(r"--dashboard-(host|port)=\S+ ?|--ray-client-server-port=\S+ ?", "", head)
    lines = [
        "#!/bin/bash",
        'echo "T0 $(date +%s.%N)"',
        "export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1",
        "pids=()",
        "cleanup() { for p in \"${pids[@]}\"; do kill -9 -- -$p 2>/dev/null; done; "
        f"rm -rf /tmp/ot-ray-{job_tag}-*; }}",
        "trap cleanup EXIT",
        f"setsid {ray} {head} >/dev/null 2>&1 & pids+=($!)",
    ]
    workers = []
    for index in range(1, nodes):
        args = worker_args(plan, index, f"{ips[0]}:{plan.gcs}", ips[index], 1, 0, temp_dir_for(job_tag, index))
        workers.append(
            f"setsid srun --overlap --nodes=1 --ntasks=1 -w n{index + 1} {ray} "
            + " ".join(shlex.quote(a) for a in args) + " >/dev/null 2>&1 & pids+=($!)"
        )
    poll = f"{PY} -c {shlex.quote(POLL)} {ips[0]} {plan.gcs} {nodes}"
    if recipe in ("legacy", "documented"):
        lines.append("sleep 10")
        for worker in workers:
            lines += [worker, "sleep 5"]
        if recipe == "legacy":
            lines.append("sleep 30")
        lines.append('echo "READY $(date +%s.%N)"')
        lines.append(f"{poll} | sed 's/READY/ACTUAL/'")  # really ready? (not timed)
    else:  # limit
        lines.append(f"{poll} & poller=$!")
        lines.append(f"while ! (exec 3<>/dev/tcp/{ips[0]}/{plan.gcs}) 2>/dev/null; do sleep 0.02; done")
        lines += workers
        lines.append("wait $poller")
    return "\n".join(lines) + "\n"


def wait_job(scheduler, job_id: int, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = scheduler.get_job(job_id)
        if record is not None and record.state.is_finished:
            return record
        time.sleep(0.25)
    scheduler.cancel(job_id)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def parse_log_time(line: str) -> float:
    stamp = line[:23]
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def run_recipe(recipe: str, nodes: int, workdir: str) -> float:
    scheduler = get_scheduler("cli")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "PYTHONPATH": REPO}
    tag = f"bench{int(time.time() * 1000) % 10_000_000}"
    log = os.path.join(workdir, f"{recipe}-{nodes}-{tag}.log")
    if recipe.startswith("runner"):
        extra = {"OT_HPC_NODE_AGENT_FORK": "0"} if recipe == "runner-nofork" else {}
        spec = JobSpec(job_name=f"runnertest-bench-{nodes}", cluster="local", num_nodes=nodes,
                       experiments_dir=workdir, trainer_python=PY, entrypoint_module="ot_hpc.demo_trainer",
                       needs_tunnel=False, environment={"PYTHONPATH": REPO, **extra},
                       shutdown_grace_seconds=3)
        spec_path = os.path.join(workdir, f"spec-{tag}.json")
        write_spec(spec_path, spec)
        script = f'#!/bin/bash\necho "T0 $(date +%s.%N)"\nexec {PY} -m ot_hpc.runner {spec_path}\n'
    else:
        script = bash_recipe(recipe, tag, nodes)
    job_id = scheduler.submit(JobRequest(
        script=script, name=f"runnertest-bench-{recipe}", nodes=nodes, time_limit_minutes=5,
        environment=env, cpus_per_task=1, output_path=log, working_directory=workdir))
    wait_job(scheduler, job_id)
    text = open(log).read()
    t0 = float(re.search(r"^T0 (\S+)", text, re.M).group(1))
    if recipe.startswith("runner"):
        line = next(l for l in text.splitlines() if f"Ray ready on all {nodes} nodes" in l)
        return parse_log_time(line) - t0
    match = re.search(r"^READY (\S+)", text, re.M)
    if not match:
        raise RuntimeError(f"{recipe} on {nodes} node(s) never got ready; log {log}:\n{text[-2000:]}")
    return float(match.group(1)) - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per recipe and N, interleaved; the median is reported")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    recipes = [r for r in args.recipes.split(",") if r]
    workdir = tempfile.mkdtemp(prefix="ot-bench-ray-")
    samples = {}
    for nodes in counts:
        for trial in range(args.repeat):
            for recipe in recipes:
                if recipe in ("legacy", "documented") and trial > 0:
                    continue  # fixed sleeps: one run says it all
                seconds = run_recipe(recipe, nodes, workdir)
                samples.setdefault((recipe, nodes), []).append(seconds)
                print(f"  {recipe:<10} N={nodes}: {seconds:6.2f} s", flush=True)
    results = {key: statistics.median(values) for key, values in samples.items()}
    if args.repeat > 1:
        print("\nbest of each (least disturbed by other load on the machine):")
        for nodes in counts:
            print(f"N={nodes}  " + "  ".join(f"{r} {min(samples[(r, nodes)]):.2f}" for r in recipes))
        print("medians below")
    print()
    print("seconds to 'Ray ready on all N nodes' (from the batch script's first line)")
    print("N   " + "".join(f"{r:>14}" for r in recipes)
          + ("   runner/limit  legacy/runner" if {"runner", "limit", "legacy"} <= set(recipes) else ""))
    for nodes in counts:
        row = f"{nodes:<4}" + "".join(f"{results[(r, nodes)]:14.2f}" for r in recipes)
        if {"runner", "limit", "legacy"} <= set(recipes):
            row += f"   {results[('runner', nodes)] / results[('limit', nodes)]:10.2f}x"
            row += f"   {results[('legacy', nodes)] / results[('runner', nodes)]:10.1f}x"
        print(row)
    for recipe in ("runner", "limit"):
        if recipe in recipes and len(counts) > 1:
            lo, hi = min(counts), max(counts)
            per_node = (results[(recipe, hi)] - results[(recipe, lo)]) / (hi - lo)
            print(f"{recipe}: {per_node:+.2f} s per extra node")
    if "runner" in recipes and "limit" in recipes:
        worst = max(results[("runner", n)] / results[("limit", n)] for n in counts)
        print(f"target runner <= 1.3x limit: {'met' if worst <= 1.3 else 'NOT met'} (worst {worst:.2f}x)")
    print(f"logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
