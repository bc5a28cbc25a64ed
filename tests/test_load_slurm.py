"""Load on the real local cluster: a burst of submissions, and ``ot-status --watch`` for
ten (simulated) minutes against a thousand queued jobs, counting every Slurm RPC.

The RPCs are counted by a wrapper for each Slurm command put first on PATH (both backends
reach Slurm through those commands here: the cli backend directly, the pyslurm stand-in
through its bridge). Ten minutes of ``--watch`` are simulated with an injected sleep that
advances a clock by the interval: every refresh is real (a real squeue against the real
queue), only the waiting between them is skipped.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

import pytest

from ot_hpc.runner.ports import plan_ports, worker_port_count

from .faultkit import BACKENDS, REPO, cancel_named, command_env, jobs_named

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SLURM_COMMANDS = ("squeue", "scontrol", "sacct", "sbatch", "scancel", "sinfo")
BURST = 20
QUEUED = 1000
WATCH_SECONDS = 600.0  # ten minutes, simulated
WATCH_INTERVAL = 2.0


def counting_path(tmp_path: Path) -> Path:
    """A directory of wrappers: each Slurm command logs its name, then runs the real one."""
    directory = tmp_path / "counting-bin"
    directory.mkdir()
    log = tmp_path / "rpcs.log"
    for name in SLURM_COMMANDS:
        real = shutil.which(name)
        if real is None:
            continue
        wrapper = directory / name
        wrapper.write_text(f'#!/bin/sh\necho {name} >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    return directory


def rpcs(tmp_path: Path) -> Counter:
    log = tmp_path / "rpcs.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_burst_of_20_submissions_gets_20_ids_20_specs_and_20_port_blocks(tmp_path, backend):
    name = f"loadburst-{uuid.uuid4().hex[:6]}"
    exp = tmp_path / "exp"
    args = ["--config", "demo.env", "--cluster", "local", "--hold", "--job-name", name,
            "--experiments-dir", str(exp)]

    def submit(_):
        return subprocess.run([sys.executable, str(REPO / "bin" / "ot-submit"), *args],
                              env=command_env(backend), cwd=str(tmp_path), capture_output=True,
                              text=True, timeout=300)

    try:
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            results = list(pool.map(submit, range(BURST)))
        assert [r.returncode for r in results] == [0] * BURST, [r.stderr for r in results if r.returncode]
        ids = [int(re.search(r"^submitted job (\d+)", r.stdout, re.M).group(1)) for r in results]
        specs = [re.search(r"^spec:\s+(\S+)", r.stdout, re.M).group(1) for r in results]
        assert len(set(ids)) == BURST and sorted(jobs_named(name)) == sorted(ids)
        assert len(set(specs)) == BURST and all(Path(spec).exists() for spec in specs)
        assert len(list((exp / "specs").iterdir())) == BURST
        cpus = node_cpus()
        blocks = sorted((plan.base, plan.base + plan.size) for plan in (
            plan_ports(str(job_id), 2, shared_host=True, workers=worker_port_count(cpus))
            for job_id in ids))
        assert all(end <= start for (_, end), (start, _) in zip(blocks, blocks[1:])), blocks
    finally:
        cancel_named(name)


def node_cpus() -> int:
    out = subprocess.run(["scontrol", "show", "node", "n1"], capture_output=True, text=True).stdout
    match = re.search(r"CPUTot=(\d+)", out)
    return int(match.group(1)) if match else 1


@pytest.fixture(scope="module")
def thousand_queued_jobs():
    """1,000 held jobs of our own in the queue (one sbatch each: an array would be one
    queue entry), cancelled by name afterwards."""
    name = f"loadq-{uuid.uuid4().hex[:6]}"
    argv = ["sbatch", "--parsable", "--hold", f"--job-name={name}", "--time=1", "--ntasks=1",
            "--output=/dev/null", "--chdir=/tmp", "--wrap", "true"]

    def one(_):
        return subprocess.run(argv, capture_output=True, text=True, timeout=120).returncode

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(one, range(QUEUED)))
        assert codes.count(0) == QUEUED
        yield name
    finally:
        ids = jobs_named(name)
        for first in range(0, len(ids), 500):
            subprocess.run(["scancel", *map(str, ids[first:first + 500])], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_minutes_of_watch_over_1000_jobs_is_one_listing_per_refresh(
        tmp_path, monkeypatch, thousand_queued_jobs, backend):
    from ot_hpc.cli import status as status_cli
    from ot_hpc.scheduler.commands import CommandScheduler

    monkeypatch.setenv("PATH", f"{counting_path(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    if backend == "cli":
        scheduler = CommandScheduler()
    else:
        from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler

        from .test_scheduler_contract import load_standin_pyslurm

        scheduler = PyslurmScheduler(pyslurm_module=load_standin_pyslurm())
    clock: List[float] = [0.0]
    refreshes: List[float] = []

    def sleep(seconds: float) -> None:
        refreshes.append(clock[0])
        clock[0] += seconds
        if clock[0] >= WATCH_SECONDS:
            raise KeyboardInterrupt

    out = io.StringIO()
    assert status_cli.body(["--watch", str(WATCH_INTERVAL), "--experiments-dir", str(tmp_path)],
                           scheduler=scheduler, sleep=sleep, stream=out) == 0
    counted = rpcs(tmp_path)
    frames = len(refreshes)
    print(f"[load] {backend}: {frames} refreshes in {WATCH_SECONDS:.0f} simulated s over "
          f"{QUEUED} queued jobs: Slurm commands {dict(counted)}", file=sys.stderr)
    assert frames == WATCH_SECONDS / WATCH_INTERVAL
    listing = "squeue" if backend == "cli" else "scontrol"  # the stand-in's Jobs.load
    assert counted == Counter({listing: frames})  # one listing per refresh, nothing else
    shown = [int(n) for n in re.findall(r"^(\d+) jobs of ", out.getvalue(), re.M)]
    assert len(shown) == frames and min(shown) >= QUEUED  # every frame showed the whole queue
