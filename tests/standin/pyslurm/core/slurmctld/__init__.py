# Stand-in for pyslurm 25.11.2 pyslurm/core/slurmctld/__init__.py: Config
# (slurmctld/config.pyx: `Config.load()` is a staticmethod calling slurm_load_ctl_conf;
# the class cannot be instantiated directly). Only `kill_wait` is modelled (config.pyx:
# `u16_parse(self.ptr.kill_wait)`, seconds); any other real Config property raises
# NotImplementedError and a name that is not one raises AttributeError.
from .config import Config  # noqa: F401
