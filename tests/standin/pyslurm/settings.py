# Stand-in for pyslurm 25.11.2 pyslurm/settings.pyx: LOCAL_CLUSTER, filled by init()
# (called from api.slurm_init) with the ClusterName of the slurm.conf libslurm reads.
from __future__ import annotations

import os
import re

LOCAL_CLUSTER = "UNKNOWN"
DEFAULT_CONFIG = "/etc/slurm/slurm.conf"


def config_path():
    return os.environ.get("SLURM_CONF") or DEFAULT_CONFIG


def init():
    global LOCAL_CLUSTER
    path = config_path()
    try:
        with open(path) as handle:
            for line in handle:
                match = re.match(r"^\s*ClusterName\s*=\s*(\S+)", line, re.IGNORECASE)
                if match:
                    LOCAL_CLUSTER = match.group(1)
                    break
    except OSError:
        pass
