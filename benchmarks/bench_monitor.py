"""Whole-process latency of the monitoring commands against the legacy one-liners.

* ``ot-status`` with N (1,000) of our jobs in the queue, against the legacy
  ``squeue -u $USER --format="%.10i %.9P %.40j %.8u %.1T %.8M %.9l %.6D %.15r"``.
  The jobs are submitted held, one ``sbatch --hold`` each (what users have; not an
  array), and cancelled at the end.
* ``ot-sfail`` (default window, 24 h) with at least M (5,000) accounting records in the
  window, against the legacy ``sacct -S <day> -u $USER --format=... | grep -E ...``.
  Missing records are created as jobs that are eligible but never run: while a 1-CPU
  blocker job of ours runs, 3-node ``--exclusive`` jobs cannot start; each batch is
  cancelled right after submission (held jobs would not do: sacct without ``-s`` omits
  jobs that were never eligible). They stay in accounting, so a second run creates none.
* ``ot-rmlogs --days 7`` over F (100,000) files, half of them 30 days old, against
  ``find logs -mtime +7 -delete``; fresh identical trees for each run.

Targets (issue 5): ot-status and ot-sfail under 150 ms median with the cli backend;
ot-rmlogs within 1.5x of find.

Run against the local cluster (as the user whose queue it is):
    python benchmarks/bench_monitor.py [--repeat 15] [--only status,sfail,rmlogs]
        [--rmlogs-dir /dev/shm]   # default: a directory under /tmp (the disk)
"""
from __future__ import annotations

import argparse
import getpass
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Callable, Dict, List, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "montest-bench-"
LEGACY_SQUEUE_FORMAT = "%.10i %.9P %.40j %.8u %.1T %.8M %.9l %.6D %.15r"
LEGACY_SACCT_FIELDS = "JobID,JobName,State,ExitCode,Start,End,Elapsed,MaxRSS,ReqMem,ReqCPUS,ReqNodes,Partition,Account"
HEAVY_MODULES = ("sh", "ray", "dotenv", "pyslurm.db", "numpy", "yaml", "requests")


def ot_env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=REPO, OT_HPC_BACKEND="cli")


def ot_command(name: str, *args: str) -> List[str]:
    return [sys.executable, os.path.join(REPO, "bin", name), *args]


def run_quiet(argv: Sequence[str], env=None, shell: bool = False) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, shell=shell, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed ({result.returncode}): {argv}: {result.stderr.strip()}")
    return elapsed


def compare(rows: List[Tuple[str, Callable[[], float]]], repeat: int) -> Dict[str, float]:
    """Run the commands interleaved ``repeat`` times (after one warm-up); median ms each."""
    for _, call in rows:
        call()
    samples: Dict[str, List[float]] = {label: [] for label, _ in rows}
    for i in range(repeat):
        order = rows if i % 2 == 0 else list(reversed(rows))
        for label, call in order:
            samples[label].append(call())
    return {label: statistics.median(values) * 1000.0 for label, values in samples.items()}


def report(title: str, medians: Dict[str, float], baseline: str, target: str) -> None:
    print(f"\n{title}")
    base = medians[baseline]
    for label, value in medians.items():
        ratio = "" if label == baseline else f"   {value / base:5.2f}x the baseline"
        print(f"  {label:<48} {value:9.1f} ms{ratio}")
    print(f"  target: {target}")


def sbatch(args: Sequence[str]) -> int:
    out = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, check=True).stdout
    return int(out.strip().split(";")[0])


def scancel(ids: Sequence[int]) -> None:
    for i in range(0, len(ids), 500):
        subprocess.run(["scancel", *map(str, ids[i:i + 500])], capture_output=True)


def submit_many(count: int, args: Sequence[str], workers: int = 4) -> List[int]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda _: sbatch(args), range(count)))


def check_imports() -> None:
    """No heavy module on the paths of ot-status / ot-sfail (python -X importtime)."""
    print("\nimports (python -X importtime):")
    for name in ("ot-status", "ot-sfail"):
        result = subprocess.run([sys.executable, "-X", "importtime", *ot_command(name)[1:]],
                                env=ot_env(), capture_output=True, text=True)
        modules = {}
        for line in result.stderr.splitlines():
            if line.startswith("import time:") and line.count("|") == 2:
                _, cumulative, module = line.split("|")
                if cumulative.strip().isdigit():
                    modules[module.strip()] = int(cumulative.strip())
        heavy = [m for m in HEAVY_MODULES if m in modules]
        top = modules.get("ot_hpc.cli." + ("status" if name == "ot-status" else "sfail"), 0)
        print(f"  {name}: heavy modules imported: {heavy or 'none'}; ot_hpc.cli.* cumulative "
              f"{top / 1000:.1f} ms; site (interpreter start-up hooks) "
              f"{modules.get('site', 0) / 1000:.1f} ms")


# -- ot-status ---------------------------------------------------------------------------


def bench_status(repeat: int, jobs: int, user: str) -> None:
    print(f"\nsubmitting {jobs} held jobs named {PREFIX}status (one sbatch --hold each) ...")
    start = time.perf_counter()
    ids: List[int] = []
    try:
        ids = submit_many(jobs, ["--hold", f"--job-name={PREFIX}status", "--time=1",
                                 "--output=/dev/null", "--wrap", "true"])
        print(f"  submitted in {time.perf_counter() - start:.1f} s")
        queued = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i"], capture_output=True,
                                text=True).stdout.split()
        print(f"  jobs of {user} in the queue now: {len(queued)}")
        env = ot_env()
        medians = compare([
            ("squeue -u $USER, legacy format (baseline)",
             lambda: run_quiet(["squeue", "-u", user, f"--format={LEGACY_SQUEUE_FORMAT}"])),
            ("ot-status", lambda: run_quiet(ot_command("ot-status"), env)),
            ("ot-status --json", lambda: run_quiet(ot_command("ot-status", "--json"), env)),
        ], repeat)
        report(f"ot-status with {len(queued)} jobs in the queue (median of {repeat})", medians,
               "squeue -u $USER, legacy format (baseline)", "ot-status < 150 ms")
    finally:
        scancel(ids)


# -- ot-sfail ----------------------------------------------------------------------------


def count_records(user: str, start: datetime) -> int:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-u", user, "-S", start.strftime("%Y-%m-%dT%H:%M:%S"),
                          "-E", "now", "-o", "JobIDRaw"], capture_output=True, text=True).stdout
    return len(out.split())


def create_records(missing: int, user: str) -> int:
    """``missing`` eligible-but-never-run jobs, cancelled in batches while a blocker runs."""
    blocker = sbatch([f"--job-name={PREFIX}blocker", "--time=30", "--nodes=1", "--ntasks=1",
                      "--output=/dev/null", "--wrap", "sleep 1800"])
    created = 0
    try:
        deadline = time.monotonic() + 300
        while True:
            state = subprocess.run(["squeue", "-h", "-j", str(blocker), "-o", "%T"],
                                   capture_output=True, text=True).stdout.strip()
            if state == "RUNNING":
                break
            if time.monotonic() > deadline:
                raise SystemExit("the blocker job did not start within 5 minutes")
            time.sleep(1)
        batch = 250
        while created < missing:
            size = min(batch, missing - created)
            ids = submit_many(size, [f"--job-name={PREFIX}acct", "--time=1", "--nodes=3", "--exclusive",
                                     "--partition=gpu", "--output=/dev/null", "--wrap", "true"])
            scancel(ids)
            created += size
            print(f"  created {created}/{missing}", end="\r", flush=True)
        print()
    finally:
        scancel([blocker])
    return created


def bench_sfail(repeat: int, records: int, user: str) -> None:
    start = datetime.now() - timedelta(hours=24)
    have = count_records(user, start)
    print(f"\naccounting records of {user} in the last 24 h: {have}")
    if have < records:
        print(f"creating {records - have} more (eligible jobs cancelled before they run) ...")
        began = time.perf_counter()
        create_records(records - have, user)
        print(f"  done in {time.perf_counter() - began:.0f} s; waiting for slurmdbd ...")
        deadline = time.monotonic() + 120
        while count_records(user, start) < records and time.monotonic() < deadline:
            time.sleep(2)
        have = count_records(user, start)
        print(f"  records now: {have}")
    day = (datetime.now() - timedelta(hours=24)).strftime("%Y-%m-%d")
    legacy = (f"sacct -S {day} -u {user} --format={LEGACY_SACCT_FIELDS} "
              "| grep -E '(FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)'")
    env = ot_env()
    medians = compare([
        ("legacy sacct | grep line (baseline)", lambda: run_quiet(["bash", "-c", legacy + " || true"])),
        ("sacct -X -P, the fields ot-sfail asks for",
         lambda: run_quiet(["sacct", "-X", "-n", "-P", "-u", user, "-S", start.strftime("%Y-%m-%dT%H:%M:%S"),
                            "-E", "now", "-o", "JobIDRaw,JobName,User,State,Reason,Partition,Account,NNodes,"
                            "NodeList,TimelimitRaw,ElapsedRaw,Submit,Start,End,ExitCode"])),
        ("ot-sfail", lambda: run_quiet(ot_command("ot-sfail"), env)),
        ("ot-sfail --json", lambda: run_quiet(ot_command("ot-sfail", "--json"), env)),
        ("ot-scancelled (lists thousands)", lambda: run_quiet(ot_command("ot-scancelled"), env)),
    ], repeat)
    report(f"ot-sfail over {have} accounting records (median of {repeat})", medians,
           "legacy sacct | grep line (baseline)", "ot-sfail < 150 ms")


# -- ot-rmlogs ---------------------------------------------------------------------------


def make_tree(root: str, files: int) -> None:
    logs = os.path.join(root, "logs")
    os.makedirs(logs)
    now = time.time()
    old, new = now - 30 * 86400, now - 86400
    data = b"x" * 100
    for i in range(files):
        path = os.path.join(logs, f"gsm8k-1.5b-2n-{i % 97}_{100000 + i}.log")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, data)
        os.close(fd)
        moment = old if i % 2 == 0 else new
        os.utime(path, (moment, moment))


def bench_rmlogs(repeat: int, files: int, base: str) -> None:
    work = tempfile.mkdtemp(prefix=PREFIX + "rmlogs-", dir=base)
    print(f"\nrmlogs: {files} files per tree (half 30 days old) under {work}")
    env = ot_env()
    samples: Dict[str, List[float]] = {"find -mtime +7 -delete (baseline)": [], "ot-rmlogs --days 7": []}
    try:
        for i in range(repeat):
            a, b = os.path.join(work, f"a{i}"), os.path.join(work, f"b{i}")
            make_tree(a, files)
            make_tree(b, files)
            subprocess.run(["sync"])
            runs = [("find -mtime +7 -delete (baseline)",
                     lambda: run_quiet(["find", os.path.join(b, "logs"), "-mtime", "+7", "-delete"])),
                    ("ot-rmlogs --days 7",
                     lambda: run_quiet(ot_command("ot-rmlogs", "--days", "7", "--experiments-dir", a), env))]
            for label, call in (runs if i % 2 == 0 else reversed(runs)):
                samples[label].append(call())
            left = (len(os.listdir(os.path.join(a, "logs"))), len(os.listdir(os.path.join(b, "logs"))))
            if left != (files // 2, files // 2):  # the odd-numbered (fresh) files stay
                print(f"  warning: files left differ: ot-rmlogs {left[0]}, find {left[1]}")
            shutil.rmtree(a)
            shutil.rmtree(b)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {label: statistics.median(values) * 1000.0 for label, values in samples.items()}
    report(f"ot-rmlogs over {files} files, half old (median of {repeat}; fresh trees each run)",
           medians, "find -mtime +7 -delete (baseline)", "ot-rmlogs within 1.5x of find")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rmlogs-repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--rmlogs-dir", default=tempfile.gettempdir(),
                        help="where the rmlogs trees go (default: the temp dir, on disk here)")
    parser.add_argument("--only", default="status,sfail,rmlogs")
    args = parser.parse_args()
    user = getpass.getuser()
    parts = set(args.only.split(","))
    print(f"python {sys.version.split()[0]} ({sys.executable}); cli backend; user {user}")
    check_imports()
    if "status" in parts:
        bench_status(args.repeat, args.jobs, user)
    if "sfail" in parts:
        bench_sfail(args.repeat, args.records, user)
    if "rmlogs" in parts:
        bench_rmlogs(args.rmlogs_repeat, args.files, args.rmlogs_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
