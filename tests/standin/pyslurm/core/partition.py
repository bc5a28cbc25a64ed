# Stand-in for pyslurm 25.11.2 Partition and Partitions: pyslurm/core/partition.pyx
# (Partitions.load 68, Partition.load 224: Partitions.load().get(name), else
# RPCError(msg=f"Partition '{name}' doesn't exist") 244; the @property list 320-660),
# pyslurm/core/partition.pxd (`cdef readonly cluster` 222).
# Values come from `scontrol show partition -o` and are converted the way partition.pyx
# converts the C struct: max_nodes = u32_parse (INFINITE -> "UNLIMITED", 0/NO_VAL -> None;
# utils/uint.pyx:87), max_time = _raw_time(on_inf=UNLIMITED) in minutes (0/NO_VAL -> None;
# utils/ctime.pyx:210), total_nodes = u32_parse(on_noval=0), state =
# _partition_state_int_to_str (UP/DOWN/INACTIVE/DRAIN/UNKNOWN; 680).
# Only reads are modelled: a name that is not a pyslurm 25.11.2 Partition attribute raises
# AttributeError (as the cdef class does); a real one the stand-in does not model raises
# NotImplementedError, so neither passes silently.
from __future__ import annotations

from .. import _bridge
from .. import _convert as cv
from .. import settings
from ..constants import UNLIMITED
from ..xcollections import MultiClusterMap
from .error import RPCError

# Every @property of Partition in partition.pyx.
REAL_PROPERTIES = frozenset("""
name _id allowed_submit_nodes allowed_accounts allowed_groups allowed_qos alternate
select_type_parameters cpu_binding default_memory_per_cpu default_memory_per_node
max_memory_per_cpu max_memory_per_node default_time denied_qos denied_accounts
preemption_grace_time default_cpus_per_gpu default_memory_per_gpu max_cpus_per_node
max_cpus_per_socket max_nodes min_nodes max_time oversubscribe nodes nodesets
over_time_limit preempt_mode priority_job_factor priority_tier qos total_cpus total_nodes
state is_default allow_root_jobs is_user_exclusive is_hidden least_loaded_nodes_scheduling
is_root_only requires_reservation power_down_on_idle
""".split())
REAL_METHODS = frozenset("load create modify delete as_dict to_dict".split())
_STATES = ("UP", "DOWN", "INACTIVE", "DRAIN")


def _show_partitions():
    result = _bridge.run(["scontrol", "show", "partition", "-o"])
    if result.returncode != 0:
        raise _bridge.rpc_error(result.stderr)
    return [_bridge.parse_scontrol_line(line) for line in result.stdout.splitlines()
            if line.startswith("PartitionName=")]


def _u32_count(text):
    """u32_parse: INFINITE -> UNLIMITED, 0/NO_VAL -> None."""
    if text is None or text in ("", "N/A", "(null)"):
        return None
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        return None
    return value or None


def _minutes(text):
    """_raw_time(ptr.max_time, on_inf=UNLIMITED): the struct holds minutes."""
    if text is None or text in ("", "N/A", "NONE", "(null)"):
        return None
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return UNLIMITED
    secs = cv._slurm_time_str2secs(text)
    if secs in (cv.NO_VAL, cv.INFINITE):
        return UNLIMITED if secs == cv.INFINITE else None
    return (secs // 60) or None


class Partitions(MultiClusterMap):
    """Stand-in for pyslurm.Partitions (a MultiClusterMap of Partition, keyed by name)."""

    __slots__ = ()

    def __init__(self, partitions=None):
        super().__init__(data=partitions, typ="Partitions", val_type=Partition, id_attr=Partition.name)

    @staticmethod
    def load():
        """Every partition (RPCError when slurmctld cannot be asked)."""
        partitions = Partitions()
        for fields in _show_partitions():
            part = Partition._from_fields(fields)
            partitions._add(part.cluster, part.name, part)
        return partitions

    def reload(self):
        raise NotImplementedError("stand-in: Partitions.reload is not modelled")

    def modify(self, changes):
        raise NotImplementedError("stand-in: Partitions.modify is not modelled")


class Partition:
    """Stand-in for pyslurm.Partition: read-only properties over one scontrol line."""

    __slots__ = ("_fields", "cluster")

    def __init__(self, name=None, **kwargs):
        raise NotImplementedError("stand-in: creating a Partition is not modelled (use Partition.load)")

    @classmethod
    def _from_fields(cls, fields):
        part = cls.__new__(cls)
        object.__setattr__(part, "_fields", dict(fields))
        object.__setattr__(part, "cluster", settings.LOCAL_CLUSTER)
        return part

    def __setattr__(self, name, value):
        if name == "cluster":
            raise AttributeError(f"attribute 'cluster' of 'pyslurm.core.partition.Partition' objects is not writable")
        if name in REAL_PROPERTIES:
            raise NotImplementedError(f"stand-in: setting pyslurm.Partition.{name} is not modelled")
        raise AttributeError(f"'pyslurm.core.partition.Partition' object has no attribute '{name}'")

    def __getattr__(self, name):
        # Only reached when normal lookup failed.
        if name in REAL_PROPERTIES or name in REAL_METHODS:
            raise NotImplementedError(f"stand-in: pyslurm.Partition.{name} exists in pyslurm 25.11.2 but is not modelled")
        raise AttributeError(f"'pyslurm.core.partition.Partition' object has no attribute '{name}'")

    def __repr__(self):
        return f"pyslurm.{self.__class__.__name__}({self.name})"

    @staticmethod
    def load(name):
        part = Partitions.load().get(name)
        if not part:
            raise RPCError(msg=f"Partition '{name}' doesn't exist")
        return part

    # -- properties (partition.pyx) ---------------------------------------------------
    @property
    def name(self):
        value = self._fields.get("PartitionName")
        return value or None

    @property
    def total_nodes(self):
        try:
            return int(self._fields.get("TotalNodes"))
        except (TypeError, ValueError):
            return 0

    @property
    def max_nodes(self):
        return _u32_count(self._fields.get("MaxNodes"))

    @property
    def max_time(self):
        return _minutes(self._fields.get("MaxTime"))

    @property
    def state(self):
        value = (self._fields.get("State") or "").upper()
        return value if value in _STATES else "UNKNOWN"

    @property
    def nodes(self):
        value = self._fields.get("Nodes")
        return None if value in (None, "", "(null)") else value

    @property
    def is_default(self):
        return self._fields.get("Default") == "YES"
