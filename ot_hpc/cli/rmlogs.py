"""ot-rmlogs: delete our old logs, specs and run-state files (see `ot-rmlogs --help`).

Exit codes: 0 done, 1 Slurm could not say which jobs are active (nothing is deleted
then) or a file could not be deleted, 2 bad usage (e.g. --days not a positive number:
nothing is deleted).
"""
from __future__ import annotations

import os
import sys
import time
from typing import List, Optional

from ..monitor import options
from ..monitor.dirs import experiments_dirs
from ..monitor.rmlogs import Active, OtherClusters, close_all, delete, format_bytes, make_plan
from .common import EXIT_ERROR, EXIT_OK, UsageError, error, make_parser, run_main, scheduler_from_args

DESCRIPTION = (
    "Delete log files (<name>_<jobid>.log/.out, slurm-<jobid>.out), run-state files and job "
    "specs older than N days from the experiments directories, except those of jobs still "
    "pending or running. Never follows symbolic links; never deletes other files or other "
    "users' files."
)


def build_parser():
    parser = make_parser("ot-rmlogs", DESCRIPTION)
    parser.add_argument("--days", type=options.positive_number("--days"), required=True, metavar="N",
                        help="delete files last modified more than N days ago (N > 0; "
                        "fractions allowed, e.g. 0.5)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    options.add_experiments_dir(parser)
    return parser


def this_cluster_names() -> frozenset:
    """Lower-case names of the cluster whose controller ot-rmlogs asks: slurm.conf's
    ClusterName and the registry cluster detected here (``--cluster`` is not needed: a
    spec of a cluster not named here is kept until far past its time limit)."""
    from ..clusters import ClusterError, detect_current_cluster
    from ..scheduler.slurmconf import configured_cluster_name

    names = {configured_cluster_name() or ""}
    try:
        cluster = detect_current_cluster()
        names |= {cluster.name, *cluster.slurm_cluster_names}
    except ClusterError:
        pass
    return frozenset(n.lower() for n in names if n)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def body(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    directories = experiments_dirs(args.experiments_dir)
    if args.experiments_dir:
        missing = [d for d in directories if not os.path.isdir(d)]
        if missing:
            raise UsageError(f"--experiments-dir {missing[0]} is not a directory")
    for directory in directories:
        for kind in ("logs", "specs"):
            path = os.path.join(directory, kind)
            if os.path.islink(path):  # refused before anything is asked or deleted
                raise UsageError(f"{path} is a symbolic link (to {os.readlink(path)}): ot-rmlogs "
                                 "never follows links; pass the real experiments directory "
                                 "with --experiments-dir")
    scheduler = scheduler_from_args(args)
    now = time.time()
    cutoff = now - args.days * 86400.0
    # Which jobs are still pending/running: asked before looking at any file, and a
    # Slurm error here stops everything (exit 1) before anything is deleted.
    # Every job still in the queue keeps its files, whatever its state (UNKNOWN included).
    mine = [r for r in scheduler.list_jobs(user=options.current_user()) if not r.state.is_finished]
    active = Active(frozenset(r.job_id for r in mine), frozenset(r.name for r in mine))
    others = OtherClusters(this_cluster_names(), now)
    plan, fds = make_plan(directories, cutoff, active, os.getuid(), others)
    try:
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
        where = ", ".join(directories)
        age = f"older than {args.days:g} day{'' if args.days == 1 else 's'}"
        kept = f"kept {_plural(plan.kept_active, 'file')} of pending/running jobs"
        if plan.kept_other_cluster:
            kept += (f"; kept {_plural(plan.kept_other_cluster, 'file')} of jobs that may still be "
                     "queued on another cluster")
        if plan.links:
            kept += f"; skipped {_plural(plan.links, 'symbolic link')}"
        if args.dry_run:
            lines = []
            for directory in plan.directories:
                for name, size, mtime in sorted(directory.delete):
                    days = (now - mtime) / 86400.0
                    lines.append(f"would delete {os.path.join(directory.directory, name)}  "
                                 f"({format_bytes(size)}, {days:.1f} days old)")
            lines.append(f"Dry run: would delete {_plural(plan.files, 'file')} "
                         f"({format_bytes(plan.bytes)}) {age} in {where}; {kept}.")
            options.write_lines(lines)
            return EXIT_OK
        outcome = delete(plan, fds)
    finally:
        close_all(fds)
    freed = format_bytes(outcome.bytes) + (f" ({outcome.bytes} bytes)" if outcome.bytes >= 1024 else "")
    options.write_lines([f"Deleted {_plural(outcome.files, 'file')}, freed {freed}, {age} in {where}; "
                         f"{kept}."])
    if outcome.errors:
        error(f"could not delete {_plural(len(outcome.errors), 'file')}: {outcome.errors[0]}"
              + (f" (and {len(outcome.errors) - 1} more)" if len(outcome.errors) > 1 else ""))
        return EXIT_ERROR
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(body, argv)


if __name__ == "__main__":
    sys.exit(main())
