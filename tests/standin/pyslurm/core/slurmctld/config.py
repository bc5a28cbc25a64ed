# Stand-in for pyslurm 25.11.2 pyslurm/core/slurmctld/config.pyx: Config.load() and its
# kill_wait property, from `scontrol show config` ("KillWait = 10 sec").
from __future__ import annotations

from ... import _bridge

# A few real Config properties (config.pyx), so a misspelt name fails as AttributeError.
REAL_PROPERTIES = frozenset("""
kill_wait message_timeout cluster_name complete_wait_time over_time_limit
slurmctld_timeout slurmd_timeout min_job_age inactive_limit batch_start_timeout
""".split())
MODELLED = frozenset({"kill_wait"})


class Config:
    def __init__(self):
        raise RuntimeError("Cannot instantiate class directly. "
                           "Use slurmctld.Config.load() to get an instance.")

    @staticmethod
    def load():
        result = _bridge.run(["scontrol", "show", "config"])
        if result.returncode != 0:
            raise _bridge.rpc_error(result.stderr)
        conf = Config.__new__(Config)
        values = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
        object.__setattr__(conf, "_values", values)
        return conf

    @property
    def kill_wait(self):
        text = self._values.get("KillWait", "").split(" ", 1)[0]
        return int(text) if text.isdigit() and int(text) != 0 else None

    def __getattr__(self, name):
        if name in REAL_PROPERTIES:
            raise NotImplementedError(f"the pyslurm stand-in does not model Config.{name}")
        raise AttributeError(f"'pyslurm.core.slurmctld.config.Config' object has no attribute '{name}'")
