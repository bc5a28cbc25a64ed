# Stand-in for pyslurm 25.11.2 pyslurm/core/error.pyx:
#   slurm_strerror, slurm_errno, get_last_slurm_error, PyslurmError, RPCError(errno, msg),
#   verify_rpc.
# Error numbers: order of enum slurm_err_t in pyslurm/slurm/slurm_errno.h.pxi (the
# pyslurm copy of slurm_errno.h); texts: Slurm's src/common/slurm_errno.c (what
# slurm_strerror returns, and what sbatch/scontrol print after "error: ").
# pyslurm re-exports the numbers at top level (pyslurm/deprecated.pyx includes
# pydefines/slurm_errno_enums.pxi; pyslurm/__init__.py does `from pyslurm.deprecated import *`).
from __future__ import annotations

SLURM_SUCCESS = 0
SLURM_ERROR = -1

ERRNO_NAMES = {
    "SLURM_COMMUNICATIONS_CONNECTION_ERROR": 1001,
    "SLURM_COMMUNICATIONS_SEND_ERROR": 1002,
    "SLURM_COMMUNICATIONS_RECEIVE_ERROR": 1003,
    "SLURM_COMMUNICATIONS_SHUTDOWN_ERROR": 1004,
    "SLURM_PROTOCOL_VERSION_ERROR": 1005,
    "SLURM_PROTOCOL_AUTHENTICATION_ERROR": 1007,
    "SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR": 1800,
    "SLURMCTLD_COMMUNICATIONS_SEND_ERROR": 1801,
    "SLURMCTLD_COMMUNICATIONS_RECEIVE_ERROR": 1802,
    "SLURMCTLD_COMMUNICATIONS_SHUTDOWN_ERROR": 1803,
    "SLURMCTLD_COMMUNICATIONS_BACKOFF": 1804,
    "SLURMCTLD_COMMUNICATIONS_HARD_DROP": 1805,
    "ESLURM_INVALID_PARTITION_NAME": 2000,
    "ESLURM_DEFAULT_PARTITION_NOT_SET": 2001,
    "ESLURM_ACCESS_DENIED": 2002,
    "ESLURM_REQUESTED_NODES_NOT_IN_PARTITION": 2004,
    "ESLURM_TOO_MANY_REQUESTED_CPUS": 2005,
    "ESLURM_INVALID_NODE_COUNT": 2006,
    "ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE": 2014,
    "ESLURM_REQUESTED_PART_CONFIG_UNAVAILABLE": 2015,
    "ESLURM_NODES_BUSY": 2016,
    "ESLURM_INVALID_JOB_ID": 2017,
    "ESLURM_INVALID_NODE_NAME": 2018,
    "ESLURM_TRANSITION_STATE_NO_UPDATE": 2020,
    "ESLURM_ALREADY_DONE": 2021,
    "ESLURM_JOB_PENDING": 2024,
    "ESLURM_DISABLED": 2037,
    "ESLURM_BATCH_ONLY": 2039,
    "ESLURM_INVALID_ACCOUNT": 2045,
    "ESLURM_ACCOUNTING_POLICY": 2050,
    "ESLURM_INVALID_TIME_LIMIT": 2051,
    "SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT": 5004,
}

_STRERROR = {
    SLURM_SUCCESS: "No error",
    SLURM_ERROR: "Unspecified error",
    1001: "Communication connection failure",
    1002: "Message send failure",
    1003: "Message receive failure",
    1004: "Communication shutdown failure",
    1005: "Incompatible versions of client and server code",
    1007: "Protocol authentication error",
    1800: "Unable to contact slurm controller (connect failure)",
    1801: "Unable to contact slurm controller (send failure)",
    1802: "Unable to contact slurm controller (receive failure)",
    1803: "Unable to contact slurm controller (shutdown failure)",
    1804: "Rate limit exceeded, please retry momentarily",
    1805: "Rate limit exceeded, please retry later",
    2000: "Invalid partition name specified",
    2001: "No partition specified or system default partition",
    2002: "Access/permission denied",
    2004: "Requested nodes not in this partition",
    2005: "More processors requested than permitted",
    2006: "Node count specification invalid",
    2014: "Requested node configuration is not available",
    2015: "Requested partition configuration not available now",
    2016: "Requested nodes are busy",
    2017: "Invalid job id specified",
    2018: "Invalid node name specified",
    2020: "Job can not be altered now, try again later",
    2021: "Job/step already completing or completed",
    2024: "Job is pending execution",
    2037: "Requested operation is presently disabled",
    2039: "Only batch jobs are accepted or processed",
    2045: "Invalid account or account/partition combination specified",
    2050: "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
    2051: "Requested time limit is invalid (missing or exceeds some limit)",
    5004: "Socket timed out on send/recv operation",
}

# The stand-in has no C errno; the bridge records the last one here.
_last_errno = [SLURM_SUCCESS]


def slurm_strerror(errno):
    return _STRERROR.get(errno, f"Unknown error {errno}")


def slurm_errno():
    return _last_errno[0]


def get_last_slurm_error():
    errno = slurm_errno()
    if errno == SLURM_SUCCESS:
        return (errno, "Success")
    return (errno, slurm_strerror(errno))


def errno_for_message(text):
    """Stand-in only: the Slurm error number whose strerror text appears in ``text``."""
    lowered = str(text).lower()
    best = None
    for errno, message in _STRERROR.items():
        if errno in (SLURM_SUCCESS, SLURM_ERROR):
            continue
        if message.lower() in lowered and (best is None or len(message) > len(_STRERROR[best])):
            best = errno
    return best


class PyslurmError(Exception):
    """The base Exception for all Pyslurm errors."""


class RPCError(PyslurmError):
    """Exception for handling Slurm RPC errors (same constructor as pyslurm 25.11.2)."""

    def __init__(self, errno=SLURM_ERROR, msg=None):
        self.msg = msg
        self.errno = errno

        if not msg:
            if errno == SLURM_ERROR:
                self.errno, self.msg = get_last_slurm_error()
            else:
                self.msg = slurm_strerror(errno)

        super().__init__(self.msg)


def verify_rpc(errno):
    if errno != SLURM_SUCCESS:
        raise RPCError(errno)
