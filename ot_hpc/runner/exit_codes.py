"""Every exit code of the job, in one table.

The runner (``python -m ot_hpc.runner <spec>``, the batch script) exits with:

======  ==========================================================================
code    meaning
======  ==========================================================================
0       the trainer succeeded (and the upload, when one was asked for)
1       an internal error of the runner (a bug: the log has one line naming it)
2       the spec or the environment: unreadable or newer spec, wrong cluster,
        activation failed, the trainer's Python cannot import ot_hpc, no private
        directory, no free block of ports, RAY_AUTH=required with a Ray < 2.52
3       egress: a tunnel was needed and could not be opened, or it stayed down
        longer than TUNNEL_DOWN_LIMIT
4       Ray did not come up on every node in time
5       the trainer succeeded but the requested upload failed (never requeued)
6       a node left the job during training (its Ray node died or its agent exited)
7       the trainer printed nothing for TRAINER_IDLE_TIMEOUT and was stopped (hung?)
128+N   stopped by signal N (143: SIGTERM from scancel, 140: USR2 before the limit)
other   the trainer's own exit code (128+N when a signal N killed it, e.g. 137:
        SIGKILL, most often the kernel's OOM killer; :func:`trainer_exit_reason`)
======  ==========================================================================

A node agent (``python -m ot_hpc.runner.node_agent``, one per node) exits with
:data:`AGENT_PORTS_BUSY`, :data:`AGENT_HEAD_UNREACHABLE` or :data:`AGENT_PRIVATE_DIR`
(else Ray's own code); the
runner turns a failed agent into :data:`EXIT_RAY`. The activation script (``bash -c``, see
:mod:`ot_hpc.runner.envload`) exits 11-14 for the step that failed; the runner turns
those into :data:`EXIT_ENV`.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_ENV = 2
EXIT_EGRESS = 3
EXIT_RAY = 4
EXIT_UPLOAD = 5
EXIT_NODE_LOST = 6
EXIT_TRAINER_IDLE = 7
EXIT_SIGNAL_BASE = 128

# Node agents.
AGENT_PORTS_BUSY = 3
AGENT_HEAD_UNREACHABLE = 4
AGENT_PRIVATE_DIR = 5  # its private directory or token file could not be made safely

# The activation script's steps.
ACTIVATION_MODULE_LOAD = 11
ACTIVATION_SOURCE = 12
ACTIVATION_CONDA = 13
ACTIVATION_NO_MODULE_SYSTEM = 14


def trainer_exit_reason(raw: int) -> str:
    """One line for the trainer's end: ``raw`` is its exit status as the process layer
    reports it (negative: killed by that signal). Exit 137 (128+9) is named as a likely
    out-of-memory kill whether the trainer or a child of its was SIGKILLed."""
    from ..monitor.records import signal_name as _signal_name

    oom = "out of memory? check dmesg/sacct MaxRSS"
    if raw < 0:
        number = -raw
        name = _signal_name(number)
        hint = f"; {oom}" if number == 9 else ""
        return f"trainer killed by {name} (signal {number}{hint})"
    if raw > EXIT_SIGNAL_BASE and raw - EXIT_SIGNAL_BASE < 65:
        number = raw - EXIT_SIGNAL_BASE
        name = _signal_name(number)
        hint = f", likely killed for memory: {oom}" if number == 9 else ""
        return f"trainer exited with code {raw} ({EXIT_SIGNAL_BASE}+{number}: {name}{hint})"
    return f"trainer exited with code {raw}"
