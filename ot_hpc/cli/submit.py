"""ot-submit: validate a job config, then submit it (or show it with --dry-run).

    ot-submit --config demo.env --wait
    ot-submit --config gsm8k.env --num-nodes 4 -S trainer.epochs=1 --dry-run
    ot-submit --config gsm8k.env --show-config

Exit codes: 0 submitted (with --wait: the job completed), 1 Slurm refused or failed
(with --wait: the job's exit code, or 1), or the login-node pre-download could not reach
the Hub, 2 bad input (every problem listed, one per line; a Hugging Face id that cannot
be downloaded as given). On 1 and 2 before submission nothing is written or submitted.
"""
from __future__ import annotations

import argparse
import socket
import sys
from typing import Callable, Dict, List, Mapping, Optional

from ..config.discovery import ConfigError, load_config
from ..config.merge import format_config
from ..config.settings import SETTINGS, format_settings_table
from ..monitor.wait import describe_record, exit_code_for, wait_for_job
from ..scheduler import (BackendUnavailable, ControllerUnreachable, PartitionLimits, Scheduler,
                         SchedulerError)
from ..scheduler.slurmconf import serves_cluster
from ..stage.errors import StageError
from .common import EXIT_OK, EXIT_USAGE, UsageError, make_parser, run_main, scheduler_from_args

PROG = "ot-submit"


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(PROG, "Validate a SkyRL job config and submit it to Slurm. Every "
                         "setting can come from the job config (KEY=value), the site env "
                         "file or a flag; flags win.")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="job config (an env file): path, or a name found in envs/ "
                        "(e.g. gsm8k.env, demo)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="SkyRL/Hydra override, passed verbatim (repeatable); "
                        "+key=value adds a key SkyRL's config does not have")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print the job description, batch script, spec and trainer "
                        "command; write and submit nothing")
    parser.add_argument("--show-config", action="store_true",
                        help="print every setting with where its value came from, then exit")
    parser.add_argument("--list-settings", action="store_true",
                        help="list every setting (env key, flag, default), then exit")
    parser.add_argument("--list-configs", action="store_true",
                        help="list the job configs --config finds (here, then envs/), then exit")
    parser.add_argument("--wait", action="store_true",
                        help="follow the job to its end; exit with its result")
    group = parser.add_argument_group("settings (also KEY=value in the job config)")
    for setting in SETTINGS:
        names = [setting.flag]
        underscored = setting.flag.replace("-", "_").replace("__", "--", 1)
        if underscored != setting.flag:
            names.append(underscored)  # the legacy launcher's spelling: --num_nodes
        if setting.short:
            names.insert(0, setting.short)
        if setting.kind == "bool":
            group.add_argument(*names, dest=setting.key, action="store_const", const="true",
                               default=None, help=f"{setting.help} [{setting.key}]")
        else:
            group.add_argument(*names, dest=setting.key, metavar=setting.key, default=None,
                               choices=setting.choices or None,
                               help=f"{setting.help} [{setting.key}]")
    return parser


def _cli_settings(args: argparse.Namespace) -> Dict[str, str]:
    return {s.key: getattr(args, s.key) for s in SETTINGS if getattr(args, s.key) is not None}


def _print_problems(lines: List[str]) -> None:
    """Every problem, one line each. Warnings are left out: what blocks comes first, and a
    single problem is a single line (``error: ... (nothing was written or submitted)``)."""
    if len(lines) == 1:
        print(f"error: {lines[0]} (nothing was written or submitted)", file=sys.stderr)
        return
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    print(f"{PROG}: {len(lines)} problems; nothing was written or submitted", file=sys.stderr)


def _hostnames() -> List[str]:
    hostname = socket.gethostname()
    try:
        fqdn = socket.getfqdn()
    except OSError:
        fqdn = hostname
    return [hostname, fqdn]


def partition_limits(config, scheduler_factory: Callable[[], Scheduler],
                     environ: Optional[Mapping[str, str]] = None) -> Optional[PartitionLimits]:
    """PARTITION's limits from the scheduler, when the Slurm reachable from here is the
    config's cluster (slurm.conf's ClusterName); None (use the cluster registry's numbers)
    when it is another one, or the scheduler is unavailable or cannot tell. Read-only:
    never submits anything. ``config``: the merged config (PARTITION and its cluster).
    Raises ControllerUnreachable when the controller did not answer within the deadline."""
    partition = (config.value("PARTITION") or "").strip()
    if not partition or not serves_cluster(config.cluster, environ):
        return None
    try:
        return scheduler_factory().partition_limits(partition)
    except ControllerUnreachable:
        raise
    except (BackendUnavailable, SchedulerError, OSError):
        return None


def describing_scheduler(scheduler_factory: Callable[[], Scheduler]) -> Optional[Scheduler]:
    """The scheduler a submission would use, for the dry run to show what it would hand
    Slurm; None (the dry run then shows sbatch's options) when it cannot be built here."""
    try:
        return scheduler_factory()
    except BackendUnavailable:
        return None


def wait_and_report(scheduler: Scheduler, job_id: int, requeue: bool, log_path: str) -> int:
    """--wait: follow the job (each state change on stderr); its exit code. Polls have
    no command deadline: a controller that is away for a while is waited for."""
    scheduler.use_deadline(None)

    def report(record) -> None:
        print(describe_record(record), file=sys.stderr, flush=True)

    record = wait_for_job(scheduler, job_id, requeue=requeue, on_change=report)
    code = exit_code_for(record)
    print(f"job {job_id} finished: {record.state.value} (exit {code}); log: {log_path}")
    return code


def body(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_settings:
        sys.stdout.write(format_settings_table())
        return EXIT_OK
    if args.list_configs:
        from ..config.discovery import list_configs

        sys.stdout.write("".join(name + "\n" for name in list_configs()))
        return EXIT_OK

    from ..clusters import ClusterError

    hostname, fqdn = _hostnames()
    try:
        config = load_config(args.config, _cli_settings(args), args.overrides,
                             hostname=hostname, fqdn=fqdn)
    except (ConfigError, ClusterError) as exc:
        raise UsageError(str(exc)) from None
    if args.show_config:
        sys.stdout.write(format_config(config))
        from ..validate.skyrl_install import describe_config

        sys.stdout.write("".join(line + "\n" for line in describe_config(config)))
        if config.problems:
            _print_problems([p.line() for p in config.problems])
            return EXIT_USAGE
        return EXIT_OK

    from .. import submission

    schedulers = []  # built once, on first use (a read query even with --dry-run)

    def get_scheduler():
        if not schedulers:
            schedulers.append(scheduler_from_args(args))
        return schedulers[0]

    unreachable = None  # a dry run or bad input is still answered; a submission is not
    try:
        limits = partition_limits(config, get_scheduler)
    except ControllerUnreachable as exc:
        limits, unreachable = None, exc
    try:
        request = submission.build(config, limits=limits)
    except submission.ValidationFailed as failed:
        _print_problems([p.line() for p in failed.problems])
        return EXIT_USAGE
    for warning in request.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        sys.stdout.write(submission.dryrun(request, describing_scheduler(get_scheduler)))
        return EXIT_OK

    if unreachable is not None:  # the deadline is spent: sbatch would not get through
        raise ControllerUnreachable(f"{unreachable} (nothing was written or submitted)")
    scheduler = get_scheduler()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        submitted = submission.schedule(request, scheduler, report=progress)
    except StageError as exc:
        print(f"error: {exc} (nothing was written or submitted)", file=sys.stderr)
        return exc.exit_code
    job = request.job
    print(f"submitted job {submitted.job_id} ({job.job_name}) on {job.cluster.name}"
          f"{'/' + job.partition if job.partition else ''}: {job.num_nodes} node(s), "
          f"time limit {job.time_limit_minutes} min{', held' if job.hold else ''}")
    print(f"log:   {submitted.log_path}")
    print(f"spec:  {submitted.spec_path}")
    print(f"watch: ot-status {submitted.job_id}    (or: tail -F {submitted.log_path})")
    sys.stdout.flush()
    if not args.wait:
        return EXIT_OK
    return wait_and_report(scheduler, submitted.job_id, request.job_request.requeue,
                           submitted.log_path)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(body, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
