"""ot-sfail, ot-scompleted and ot-scancelled: their shared command line.

What they find and how it is shown is pure and lives in :mod:`ot_hpc.monitor.history`;
here are the arguments, the scheduler and the output.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import List, Optional

from ..monitor import options
from ..monitor.dirs import experiments_dirs, logs_dirs
from ..monitor.history import HistoryCommand, collect_tails, fetch, json_document, table_lines
from ..monitor.logs import LogIndex
from ..monitor.table import fit, terminal_width, use_colour
from ..monitor.window import DEFAULT_HOURS, make_window
from .common import EXIT_OK, UsageError, make_parser, scheduler_from_args


def build_parser(command: HistoryCommand):
    parser = make_parser(command.prog, command.description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--hours", type=options.positive_number("--hours"), metavar="H", default=None,
                       help=f"jobs that ended in the last H hours (default {DEFAULT_HOURS:g}; "
                       "fractions allowed)")
    group.add_argument("--since", metavar="DATE", default=None,
                       help="jobs that ended since DATE: ISO date or date-time, local time "
                       "unless an offset is given (2026-11-27, 2026-11-27T08:30)")
    parser.add_argument("--user", default=None, help="whose jobs (default: you)")
    options.add_tail(parser)
    options.add_json(parser)
    options.add_experiments_dir(parser)
    return parser


def run(command: HistoryCommand, argv: Optional[List[str]] = None) -> int:
    args = build_parser(command).parse_args(argv)
    now = datetime.now().astimezone()
    try:
        window = make_window(now, hours=args.hours, since=args.since)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    scheduler = scheduler_from_args(args)
    user = args.user or options.current_user()
    history = fetch(scheduler, user, window, command.states)
    if history.note:
        print(history.note, file=sys.stderr)
    tails = None
    if args.tail:
        directories = logs_dirs(experiments_dirs(args.experiments_dir)) + [os.getcwd()]
        tails = collect_tails(history.records, args.tail, LogIndex(directories))
    if args.json:
        options.write_json(json_document(command, user, window, history, tails))
        return EXIT_OK
    if not history.records:
        options.write_lines([f"No {command.adjective} jobs of {user} {window.label}."])
        return EXIT_OK
    width = terminal_width(sys.stdout)
    count = len(history.records)
    title = (f"{count} {command.adjective} job{'s' if count != 1 else ''} of {user} "
             f"{window.label} (from {history.source}), newest first:")
    tail_text = {job_id: tail.text_lines() for job_id, tail in tails.items()} if tails else None
    lines = [fit(title, width)] + table_lines(history.records, width, use_colour(sys.stdout), tail_text)
    options.write_lines(lines)
    return EXIT_OK
