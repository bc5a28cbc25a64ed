"""ot-scancelall: cancel my jobs after showing them (see `ot-scancelall --help`).

Exit codes: 0 cancelled (or nothing to cancel, or declined at the prompt), 1 Slurm
refused a cancellation, 2 bad usage, including "no terminal to ask on and no --yes".
"""
from __future__ import annotations

import sys
from typing import List, Optional

from ..monitor import options
from ..monitor.cancel import (ASK, REFUSE, STATE_CHOICES, CancelFilter, confirmation, is_yes,
                              select)
from ..monitor.records import format_elapsed, format_nodes, state_text
from ..monitor.table import Column, render_table, state_colour, terminal_width, use_colour
from ..scheduler import SchedulerError
from .common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, error, make_parser, run_main, scheduler_from_args

DESCRIPTION = (
    "Cancel your pending and running jobs. Lists what it will cancel first and asks for "
    "confirmation (--yes skips the question; without a terminal and without --yes it refuses, "
    "exit 2). Never touches other users' jobs."
)
COLUMNS = (Column("JOBID"), Column("NAME", min_width=12), Column("STATE"),
           Column("ELAPSED", align_right=True), Column("NODES", min_width=6),
           Column("PARTITION", min_width=6))


def build_parser():
    parser = make_parser("ot-scancelall", DESCRIPTION)
    parser.add_argument("--name", metavar="PATTERN", default=None,
                        help="only jobs whose name matches this shell pattern (e.g. 'gsm8k-*')")
    parser.add_argument("--state", choices=STATE_CHOICES, default=None,
                        help="only pending or only running jobs (default: both)")
    parser.add_argument("--partition", "-p", default=None, help="only jobs in this partition")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be cancelled")
    return parser


def body(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    scheduler = scheduler_from_args(args)
    selection = CancelFilter(options.current_user(), args.name, args.state, args.partition)
    chosen = select(scheduler.list_jobs(user=selection.user), selection)
    what = f"jobs of {selection.user}" + (f" {selection.describe()}" if selection.describe() else "")
    if not chosen:
        options.write_lines([f"No {what} to cancel."])
        return EXIT_OK
    rows = [(str(r.job_id), r.name, (state_text(r), state_colour(r.state.value)), format_elapsed(r),
             format_nodes(r), r.partition or "-") for r in chosen]
    count = f"{len(chosen)} job{'s' if len(chosen) != 1 else ''}"
    preview = [f"{'Would cancel' if args.dry_run else 'Will cancel'} {count} ({what}):"]
    preview += render_table(COLUMNS, rows, width=terminal_width(sys.stdout), colour=use_colour(sys.stdout))
    options.write_lines(preview)
    if args.dry_run:
        options.write_lines(["Dry run: nothing cancelled."])
        return EXIT_OK
    decision = confirmation(args.yes, sys.stdin.isatty())
    if decision == REFUSE:
        error(f"not cancelling {count} without confirmation: no terminal to ask on; "
              "pass --yes to cancel them")
        return EXIT_USAGE
    if decision == ASK:
        sys.stderr.write(f"Cancel {'this job' if len(chosen) == 1 else f'these {count}'}? [y/N] ")
        sys.stderr.flush()
        if not is_yes(sys.stdin.readline()):
            options.write_lines(["Nothing cancelled."])
            return EXIT_OK
    cancelled, failed = [], []
    try:  # one request for all of them; on a refusal, retry one by one to name the culprits
        scheduler.cancel_many(record.job_id for record in chosen)
        cancelled = [record.job_id for record in chosen]
    except SchedulerError:
        for record in chosen:
            try:
                scheduler.cancel(record.job_id)
                cancelled.append(record.job_id)
            except SchedulerError as exc:
                failed.append(f"job {record.job_id}: {exc}")
    if cancelled:
        options.write_lines([f"Cancelled {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}: "
                             + " ".join(str(i) for i in cancelled)])
    if failed:
        error(f"could not cancel {len(failed)} job{'s' if len(failed) != 1 else ''}: " + "; ".join(failed))
        return EXIT_ERROR
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(body, argv)


if __name__ == "__main__":
    sys.exit(main())
