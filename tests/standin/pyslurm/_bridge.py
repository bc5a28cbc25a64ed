# Stand-in only (no counterpart in pyslurm): where the real pyslurm 25.11.2 calls
# libslurm (slurm_submit_batch_job, slurm_load_job(s), slurm_kill_job, slurm_requeue,
# slurm_update_job, slurmdb_jobs_get), this stand-in runs Slurm's own commands with
# explicit, stable formats, so the pyslurm backend's contract tests hit a real cluster:
#   sbatch --parsable (script on stdin)         <- JobSubmitDescription.submit
#   scontrol show job -o [<id>]                  <- Job.load, Jobs.load
#   scancel / scontrol requeue|release|hold      <- Job.cancel/requeue/release/hold
#   sacct -X -n -P -o ... -S ... -E ...          <- db.Jobs.load
# Failures become pyslurm.RPCError carrying Slurm's strerror text, as libslurm's errno
# would (core/error.pyx RPCError(errno)).
from __future__ import annotations

import os
import re
import shutil
import subprocess

from .core import error as _error

COMMAND_TIMEOUT_SECONDS = 60
DELIMITER = "\x1f"
# Environment variables that would change the commands' output formats.
_FORMAT_VARIABLES = ("SQUEUE_FORMAT", "SQUEUE_FORMAT2", "SACCT_FORMAT", "SLURM_TIME_FORMAT",
                     "SQUEUE_SORT", "SACCT_FEDERATION", "SLURM_CLUSTERS")
_PREFIX_RE = re.compile(r"^(?:\w+: )?(?:error: )+", re.IGNORECASE)


def command_env():
    """The caller's environment with epoch timestamps and no format overrides."""
    env = {k: v for k, v in os.environ.items() if k not in _FORMAT_VARIABLES}
    env["SLURM_TIME_FORMAT"] = "%s"
    return env


def _command(name):
    path = shutil.which(name)
    if path is None:
        raise _error.RPCError(msg=f"Slurm command {name!r} not found (the stand-in drives Slurm's commands)")
    return path


def run(argv, stdin=None, env=None):
    argv = [_command(argv[0])] + [str(a) for a in argv[1:]]
    try:
        result = subprocess.run(argv, input=stdin, env=command_env() if env is None else env,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _error._last_errno[0] = _error.ERRNO_NAMES["SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT"]
        raise _error.RPCError(_error._last_errno[0]) from None
    _error._last_errno[0] = _error.SLURM_SUCCESS if result.returncode == 0 else _error.SLURM_ERROR
    return result


def error_lines(stderr):
    lines = []
    for raw in (stderr or "").splitlines():
        line = _PREFIX_RE.sub("", raw.strip()).strip()
        if line and line not in lines:
            lines.append(line)
    return lines


def rpc_error(stderr, fallback="Unspecified error"):
    """An RPCError as libslurm would produce it: Slurm's errno and its strerror text
    when the command printed one, else the command's message (errno SLURM_ERROR)."""
    lines = error_lines(stderr)
    text = " ".join(lines)
    errno = _error.errno_for_message(text)
    if errno is not None:
        _error._last_errno[0] = errno
        return _error.RPCError(errno)
    return _error.RPCError(msg=text or fallback)


# -- scontrol show job -o ------------------------------------------------------------------
_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9/:_]*=")


def parse_scontrol_line(line):
    fields = {}
    last = None
    for token in line.strip().split(" "):
        if _KEY_RE.match(token):
            key, _, value = token.partition("=")
            if key in fields and last is not None:
                # A value that itself looks like Key=... (e.g. inside a job name).
                fields[last] += " " + token
                continue
            fields[key] = value
            last = key
        elif last is not None:
            fields[last] += " " + token
    return fields


def show_jobs(job_id=None):
    argv = ["scontrol", "show", "job", "-o"]
    if job_id is not None:
        argv.append(str(int(job_id)))
    result = run(argv)
    if result.returncode != 0:
        raise rpc_error(result.stderr)
    jobs = []
    for line in result.stdout.splitlines():
        if line.startswith("JobId="):
            jobs.append(parse_scontrol_line(line))
    return jobs


# -- control commands -------------------------------------------------------------------
def control(argv):
    result = run(argv)
    if result.returncode != 0:
        raise rpc_error(result.stderr)
    # scancel reports some failures on stderr with status 0.
    return result


# -- sacct -------------------------------------------------------------------------------
_SACCT_BASE_FIELDS = (
    "JobIDRaw", "JobName", "UID", "User", "Account", "Partition", "State", "Reason",
    "ExitCode", "DerivedExitCode", "NNodes", "NodeList", "TimelimitRaw", "ElapsedRaw",
    "Submit", "Start", "End", "Eligible", "Priority", "QOS", "WorkDir", "Cluster",
    "NCPUS", "ReqCPUS", "SubmitLine", "Comment", "AdminComment", "SystemComment",
    "Suspended", "Reservation", "ReservationId", "DBIndex", "Constraints", "AssocID",
    "WCKey", "WCKeyID", "McsLabel", "Container", "AllocTRES", "ReqTRES", "Flags",
)
# Newer sacct only (23.02+): used when this Slurm has them.
_SACCT_OPTIONAL_FIELDS = ("StdOut", "StdErr", "StdIn", "Restarts", "FailedNode", "Extra", "Licenses")
_sacct_fields_cache = []


def sacct_fields():
    if not _sacct_fields_cache:
        result = run(["sacct", "--helpformat"])
        known = set(result.stdout.split()) if result.returncode == 0 else set()
        fields = [f for f in _SACCT_BASE_FIELDS if not known or f in known]
        fields += [f for f in _SACCT_OPTIONAL_FIELDS if f in known]
        _sacct_fields_cache.append(tuple(fields))
    return _sacct_fields_cache[0]


def sacct(selection):
    fields = sacct_fields()
    argv = ["sacct", "-X", "-n", "-P", f"--delimiter={DELIMITER}", "-o", ",".join(fields), *selection]
    result = run(argv)
    if result.returncode != 0:
        # db/job.pyx: slurmdb_jobs_get() returned NULL.
        raise _error.RPCError(msg="Failed to get Jobs from slurmdbd")
    rows = []
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        values = line.split(DELIMITER)
        rows.append(dict(zip(fields, values)))
    return rows
