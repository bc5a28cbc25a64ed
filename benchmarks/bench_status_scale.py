"""ot-status at the scale of a real queue: thousands of other users' jobs, a few of ours.

Fills the local cluster's queue with N (default 5,000) held jobs of another user (as
root: ``sbatch --uid=<user>``, one job each: a job array would be one queue entry) and
20 held jobs of our own, then times whole-process ``ot-status`` (fresh interpreter,
``bin/ot-status``; median of --repeat runs, interleaved) per backend against
``squeue -u <us>``:

* cli backend (``squeue -u <us> -O ...``);
* pyslurm backend: only where real pyslurm imports (pyslurm 25.11 needs Slurm 25.11);
  elsewhere it says "not measurable here";
* the pyslurm backend driving the strict stand-in (tests/standin/pyslurm), labelled as
  such: the stand-in runs ``scontrol show job -o`` for every job and parses it in Python,
  so it measures the stand-in far more than the backend.

It also prints what a passwd lookup per job (``Job.user_name``) would cost against one
uid comparison per job, and counts, over 3 ``--watch`` refreshes, the listing RPCs each
backend makes (target: one per refresh). Targets: ot-status <= 150 ms whole-process on
either backend at 5,000 other jobs; --watch one listing per refresh.

Run as root on the local cluster (others share it: while developing use --jobs 300):
    python benchmarks/bench_status_scale.py [--jobs 5000] [--ours 20] [--repeat 9]
        [--other-user nobody]
Everything it submitted (and only that, by job id) is cancelled at the end, also on
Ctrl-C, SIGTERM or an error. Before submitting it checks that the controller's
MaxJobCount leaves room for the jobs (finished jobs count until MinJobAge has passed).
"""
from __future__ import annotations

import argparse
import getpass
import io
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN_DIR = os.path.join(REPO, "tests", "standin")
sys.path.insert(0, REPO)

from bench_monitor import compare, run_quiet  # noqa: E402  (this script's directory)
from tests.test_scheduler_contract import load_standin_pyslurm  # noqa: E402

PREFIX = "otbench-scale-"
TARGET_MS = 150.0
ROOM_TO_SPARE = 500  # jobs other users of the cluster (the test suite) may add meanwhile
WATCH_REFRESHES = 3


# -- Slurm plumbing --------------------------------------------------------------------------
def slurm_config() -> Dict[str, str]:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    pairs = (line.split("=", 1) for line in out.splitlines() if " = " in line)
    return {key.strip(): value.strip() for key, value in pairs}


def jobs_in_controller() -> int:
    """Every job record slurmctld holds, finished ones (until MinJobAge) included."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout
    return len(out.split())


def check_room(wanted: int) -> None:
    config = slurm_config()
    limit = int(config.get("MaxJobCount", "10000").split()[0])
    held = jobs_in_controller()
    print(f"controller: MaxJobCount {limit}, MinJobAge {config.get('MinJobAge', '?')}, "
          f"job records held now {held}; this run adds {wanted}")
    if held + wanted + ROOM_TO_SPARE > limit:
        raise SystemExit(f"not enough room: {held} + {wanted} + {ROOM_TO_SPARE} spare > MaxJobCount "
                         f"{limit}; wait for MinJobAge to purge finished jobs, or raise MaxJobCount")


class Submitted:
    """Ids of every job this run submitted (thread-safe), cancelled by :meth:`cancel_all`."""

    def __init__(self) -> None:
        self.ids: List[int] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def sbatch(self, args: Sequence[str]) -> Optional[int]:
        if self.stop.is_set():
            return None
        result = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
        if result.returncode != 0:
            self.stop.set()
            raise RuntimeError(f"sbatch failed: {result.stderr.strip()}")
        job_id = int(result.stdout.strip().split(";")[0])
        with self._lock:
            self.ids.append(job_id)
        return job_id

    def many(self, count: int, args: Sequence[str], workers: int) -> None:
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = [pool.submit(self.sbatch, args) for _ in range(count)]
            for done, future in enumerate(futures, 1):
                future.result()
                if done % 500 == 0:
                    print(f"  {done}/{count}", end="\r", flush=True)
        finally:
            self.stop.set()  # on an error or Ctrl-C: the queued submissions do nothing
            pool.shutdown(wait=True, cancel_futures=True)
            self.stop.clear()

    def cancel_all(self) -> None:
        with self._lock:
            ids, self.ids = list(self.ids), []
        for first in range(0, len(ids), 500):
            subprocess.run(["scancel", *map(str, ids[first:first + 500])], capture_output=True)
        if ids:
            print(f"cancelled the {len(ids)} jobs this run submitted")


def job_args(name: str, extra: Sequence[str] = ()) -> List[str]:
    return [*extra, "--hold", f"--job-name={PREFIX}{name}", "--time=1", "--ntasks=1",
            "--output=/dev/null", "--chdir=/tmp", "--wrap", "true"]


def fill_queue(submitted: Submitted, others: int, ours: int, other_user: str, workers: int) -> None:
    print(f"submitting {others} held jobs of {other_user} (sbatch --uid, {workers} at a time) ...")
    start = time.perf_counter()
    submitted.many(others, job_args("other", [f"--uid={other_user}"]), workers)
    print(f"  done in {time.perf_counter() - start:.1f} s")
    submitted.many(ours, job_args("mine"), workers)
    print(f"submitted {ours} held jobs of our own")


def count_queued(user: str) -> int:
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i"], capture_output=True, text=True).stdout
    return len(out.split())


# -- timing ----------------------------------------------------------------------------------
def ot_env(backend: str, standin: bool = False) -> Dict[str, str]:
    path = [REPO, STANDIN_DIR] if standin else [REPO]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), OT_HPC_BACKEND=backend)


def ot_status(env: Dict[str, str], *args: str) -> Callable[[], float]:
    return lambda: run_quiet([sys.executable, os.path.join(REPO, "bin", "ot-status"), *args], env)


def real_pyslurm_problem() -> Optional[str]:
    code = "from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler; PyslurmScheduler()"
    result = subprocess.run([sys.executable, "-c", code], env=ot_env("pyslurm"), capture_output=True,
                            text=True, timeout=120)
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {result.returncode}"


def slurm_version() -> str:
    return subprocess.run(["sinfo", "-V"], capture_output=True, text=True).stdout.strip()


def report(medians: Dict[str, float], baseline: str, title: str) -> None:
    print(f"\n{title}")
    base = medians[baseline]
    for label, value in medians.items():
        extra = "" if label == baseline else f"  {value / base:6.2f}x squeue"
        verdict = "" if label == baseline or "stand-in" in label else (
            "  meets <= 150 ms" if value <= TARGET_MS else "  MISSES <= 150 ms")
        print(f"  {label:<52} {value:8.1f} ms{extra}{verdict}")


def check_listing(label: str, env: Dict[str, str], ours: int) -> None:
    """ot-status --json lists our jobs of this run and none of the other user's."""
    import json

    out = subprocess.run([sys.executable, os.path.join(REPO, "bin", "ot-status"), "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    names = [job["name"] for job in json.loads(out)["jobs"]]
    mine, other = names.count(PREFIX + "mine"), names.count(PREFIX + "other")
    verdict = "ok" if (mine, other) == (ours, 0) else "WRONG"
    print(f"  {label}: lists {mine} of our {ours} jobs, {other} of the other user's: {verdict}")


def bench_status(user: str, repeat: int, ours: int) -> None:
    baseline = f"squeue -u {user} (baseline)"
    rows = [(baseline, lambda: run_quiet(["squeue", "-u", user]))]
    rows.append(("ot-status, cli backend", ot_status(ot_env("cli"))))
    rows.append(("ot-status --json, cli backend", ot_status(ot_env("cli"), "--json")))
    problem = real_pyslurm_problem()
    if problem is None:
        rows.append(("ot-status, pyslurm backend", ot_status(ot_env("pyslurm"))))
    rows.append(("ot-status, pyslurm backend on the stand-in", ot_status(ot_env("pyslurm", standin=True))))
    print("\nwhat ot-status lists:")
    check_listing("cli backend", ot_env("cli"), ours)
    if problem is None:
        check_listing("pyslurm backend", ot_env("pyslurm"), ours)
    check_listing("pyslurm backend on the stand-in", ot_env("pyslurm", standin=True), ours)
    medians = compare(rows, repeat)
    report(medians, baseline, f"whole-process ot-status, median of {repeat}")
    if problem is not None:
        print(f"  pyslurm: not measurable here ({slurm_version()}; pyslurm 25.11 needs Slurm 25.11): {problem}")
    print("  (the stand-in runs scontrol show job -o for every job and parses it in Python:"
          " it times the stand-in, not pyslurm)")


# -- in-process: passwd lookups, and listings per --watch refresh ---------------------------------
def bench_passwd(count: int, other_user: str) -> None:
    """What filtering on ``user_name`` costs in pyslurm: one getpwuid per job (uid_to_name)."""
    uid = pwd.getpwnam(other_user).pw_uid
    uids = [uid] * count
    start = time.perf_counter()
    names = [pwd.getpwuid(u).pw_name for u in uids]
    by_name = time.perf_counter() - start
    ours = os.getuid()
    start = time.perf_counter()
    kept = [u for u in uids if u == ours]
    by_uid = time.perf_counter() - start
    print(f"\nfiltering {count} jobs: a passwd lookup each (what Job.user_name does) "
          f"{by_name * 1000:.2f} ms, a uid comparison each {by_uid * 1000:.3f} ms "
          f"({len(names)} names, {len(kept)} kept)")


def listings_per_refresh(scheduler, counter: Callable[[], int]) -> float:
    from ot_hpc.cli import status as status_cli

    pauses: List[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) >= WATCH_REFRESHES:
            raise KeyboardInterrupt

    before = counter()
    status_cli.body(["--watch", "1"], scheduler=scheduler, sleep=sleep, stream=io.StringIO())
    return (counter() - before) / WATCH_REFRESHES


def bench_watch() -> None:
    from ot_hpc.scheduler.commands import CommandScheduler, _run_process
    from ot_hpc.scheduler.pyslurm_backend import PyslurmScheduler

    commands: List[str] = []

    def runner(argv, stdin, env, timeout=None):
        commands.append(os.path.basename(argv[0]))
        return _run_process(argv, stdin, env, timeout)

    cli = listings_per_refresh(CommandScheduler(run=runner), lambda: len(commands))
    print(f"\n--watch over {WATCH_REFRESHES} refreshes: cli backend runs {cli:g} Slurm command(s) "
          f"per refresh ({', '.join(sorted(set(commands)))})")
    standin = load_standin_pyslurm()
    loads: List[int] = []
    real_load = standin.Jobs.load

    def counted_load(*args, **kwargs):
        loads.append(1)
        return real_load(*args, **kwargs)

    standin.Jobs.load = staticmethod(counted_load)
    scheduler = PyslurmScheduler(pyslurm_module=standin)
    per = listings_per_refresh(scheduler, lambda: len(loads))
    print(f"  pyslurm backend (on the stand-in): {per:g} Jobs.load() per refresh; target: 1")


def interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM: cancel what was submitted, as on Ctrl-C


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="held jobs of the other user (default 5000)")
    parser.add_argument("--ours", type=int, default=20, help="held jobs of our own (default 20)")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--other-user", default="nobody", help="whose jobs fill the queue (default nobody)")
    parser.add_argument("--workers", type=int, default=8, help="sbatch processes at a time")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: only root may submit jobs of another user (sbatch --uid)")
    user = getpass.getuser()
    print(f"python {sys.version.split()[0]}; {slurm_version()}; user {user}; other user {args.other_user}")
    check_room(args.jobs + args.ours)
    submitted = Submitted()
    signal.signal(signal.SIGTERM, interrupted)
    try:
        fill_queue(submitted, args.jobs, args.ours, args.other_user, args.workers)
        print(f"queue now: {count_queued(args.other_user)} jobs of {args.other_user}, "
              f"{count_queued(user)} of {user} (ours and anyone else's running as {user})")
        bench_status(user, args.repeat, args.ours)
        bench_passwd(args.jobs, args.other_user)
        bench_watch()
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    finally:
        submitted.cancel_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
