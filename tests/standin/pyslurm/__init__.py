# Stand-in for pyslurm 25.11.2 pyslurm/__init__.py, backed by the local Slurm cluster
# through Slurm's commands (see _bridge.py). Names exported as there:
#   __version__ (version.py); db, constants; Job, Jobs, JobSubmitDescription
#   (core/job/__init__.py); Partition, Partitions (core/partition.pyx, __init__.py:26);
#   slurmctld (core/slurmctld: Config.load().kill_wait only); error, PyslurmError, RPCError (core/error.pyx);
#   slurm_init, slurm_fini (api.pyx), called at import unless PYSLURM_DISABLE_AUTO_INIT;
#   the Slurm error numbers that pyslurm/deprecated.pyx re-exports via
#   pydefines/slurm_errno_*.pxi (only those in core/error.py ERRNO_NAMES).
# Not modelled: Node(s), Reservation(s), JobStep(s), the rest of slurmctld, enums,
# utils, the deprecated API.
"""pyslurm 25.11.2 stand-in (tests only)."""
import os

from .version import __version__  # noqa: F401

from . import db  # noqa: F401
from . import constants  # noqa: F401

from .core.job import (  # noqa: F401
    Job,
    Jobs,
    JobSubmitDescription,
)
from .core.partition import Partition, Partitions  # noqa: F401
from .core import slurmctld  # noqa: F401
from .core import error  # noqa: F401
from .core.error import (  # noqa: F401
    PyslurmError,
    RPCError,
)
from .core.error import SLURM_SUCCESS, SLURM_ERROR, ERRNO_NAMES as _ERRNO_NAMES  # noqa: F401

globals().update(_ERRNO_NAMES)

from .api import slurm_init, slurm_fini  # noqa: F401

_auto_init_disabled = bool(os.environ.get("PYSLURM_DISABLE_AUTO_INIT", False))
if not _auto_init_disabled:
    slurm_init()
