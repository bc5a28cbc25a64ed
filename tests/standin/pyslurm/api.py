# Stand-in for pyslurm 25.11.2 pyslurm/api.pyx: slurm_init(config_path=None), slurm_fini().
# The real slurm_init reads slurm.conf in libslurm; with a missing $SLURM_CONF it hangs
# about 60 s and exit()s the process. The stand-in raises instead, naming that behaviour.
from __future__ import annotations

import os

from . import settings


def slurm_init(config_path=None):
    path = config_path or os.environ.get("SLURM_CONF")
    if path and not os.path.isfile(path):
        raise RuntimeError(
            f"stand-in: slurm config {path} does not exist; the real pyslurm would hang "
            f"~60 s in slurm_init() and exit the process with status 1"
        )
    if config_path:
        os.environ["SLURM_CONF"] = config_path
    settings.init()


def slurm_fini():
    return None
