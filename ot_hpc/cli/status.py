"""ot-status: my jobs now (see `ot-status --help`); the body is ot_hpc.monitor.status."""
from __future__ import annotations

import sys
import time
from typing import IO, Callable, List, Optional

from ..monitor import options
from ..monitor.dirs import experiments_dirs, logs_dirs
from ..monitor.logs import LogIndex
from ..monitor.status import (MIN_WATCH_SECONDS, gather, height_of, job_records, json_document,
                              render_lines, watch)
from ..monitor.table import takes_unicode, terminal_width, use_colour
from ..scheduler import Scheduler, SchedulerError
from ..scheduler.deadline import command_deadline
from .common import EXIT_OK, UsageError, make_parser, run_main, scheduler_from_args

DESCRIPTION = (
    "Your jobs in the queue now: id, name, state, elapsed and time left, nodes, partition; "
    "for pending jobs why they wait, for running jobs the runner's phase, the log path and "
    "how far training is (step, rate, ETA, reward)."
)


def build_parser():
    parser = make_parser("ot-status", DESCRIPTION)
    parser.add_argument("job_ids", nargs="*", type=options.job_id, metavar="JOBID",
                        help="only these jobs (any user's; finished ones are looked up too)")
    parser.add_argument("--user", default=None, help="whose jobs (default: you; with --account: everyone's)")
    parser.add_argument("--account", "-A", default=None,
                        help="the jobs of this Slurm account (your team's), like the old sqteam")
    options.add_tail(parser)
    parser.add_argument("--watch", type=options.positive_number("--watch"), metavar="SECONDS",
                        default=None, help="redraw every SECONDS seconds (at least 1) until Ctrl-C")
    options.add_json(parser)
    options.add_experiments_dir(parser)
    return parser


def body(argv: Optional[List[str]] = None, scheduler: Optional[Scheduler] = None,
         sleep: Callable[[float], None] = time.sleep, stream: Optional[IO[str]] = None) -> int:
    """``scheduler``, ``sleep`` and ``stream`` are for tests (default: from --backend,
    time.sleep, stdout)."""
    args = build_parser().parse_args(argv)
    if args.watch is not None and args.watch < MIN_WATCH_SECONDS:
        raise UsageError(f"--watch must be at least {MIN_WATCH_SECONDS:g} second: the controller is shared")
    if args.watch is not None and args.json:
        raise UsageError("--watch and --json do not go together: run --json in your own loop")
    scheduler = scheduler or scheduler_from_args(args)
    wanted = set(args.job_ids)
    user = args.user if args.user or args.account or wanted else options.current_user()
    who = user or ""
    if args.account:
        who = f"account {args.account}" + (f" and user {user}" if user else "")
    if wanted:
        who = "those asked for (" + ", ".join(str(i) for i in sorted(wanted)) + ")"
    index = LogIndex(logs_dirs(experiments_dirs(args.experiments_dir)))
    show_user = bool(args.account)

    records = job_records(scheduler, user, args.account, wanted)

    def views():
        return gather(records(), args.tail, index)

    stream = stream or sys.stdout
    if args.json:
        options.write_json(json_document(views(), user, args.account, bool(args.tail)), stream)
        return EXIT_OK
    width, colour, unicode = terminal_width(stream), use_colour(stream), takes_unicode(stream)
    if args.watch is None:
        options.write_lines(render_lines(views(), who, width, colour, show_user, unicode), stream)
        return EXIT_OK

    def frame() -> List[str]:
        scheduler.use_deadline(command_deadline())  # each refresh: its own deadline
        try:
            return render_lines(views(), who, terminal_width(stream), colour, show_user, unicode)
        except SchedulerError as exc:
            return [f"error: {exc} (trying again)"]

    in_place = stream.isatty()
    return watch(args.watch, frame, stream, in_place, height_of(stream) if in_place else None,
                 sleep=sleep)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(body, argv)


if __name__ == "__main__":
    sys.exit(main())
