# Stand-in for pyslurm 25.11.2 pyslurm.db JobFilter, Jobs and Job:
#   attribute names: pyslurm/db/job.pxd (JobFilter `cdef public`, Jobs `cdef public`,
#   Job `cdef public: steps, stats`); behaviour and properties: pyslurm/db/job.pyx
#   (JobFilter._create and _parse_users, Jobs.load, Job.__init__, Job.load, the @property
#   list, group_id/group_name being plain methods there).
# Data comes from `sacct -X -n -P` with explicit fields, a -S/-E window and no state filter,
# as slurmdbd answers slurmdb_jobs_get: allocations (the most recent record of a
# requeued job), all states, the usage window semantics of sacct -S/-E. Like the real
# filter, users=[...] silently drops uid 0 (users=["root"] -> every user's jobs).
# Failures raise RPCError("Failed to get Jobs from slurmdbd"), the real message.
from __future__ import annotations

import time

from .. import _bridge
from .. import _convert as cv
from .. import settings
from ..core.error import RPCError
from ..xcollections import MultiClusterMap
from .connection import _open_conn_or_error

FILTER_ATTRIBUTES = (
    "ids", "start_time", "end_time", "accounts", "association_ids", "clusters", "constraints",
    "cpus", "max_cpus", "nodes", "max_nodes", "qos", "names", "partitions", "groups",
    "timelimit", "max_timelimit", "users", "wckeys", "nodelist", "with_script", "with_env",
    "truncate_time",
)

# Every @property of db.Job in db/job.pyx (67 names).
REAL_PROPERTIES = frozenset("""
account admin_comment num_nodes array_id array_tasks_parallel array_task_id
array_tasks_waiting association_id block_id cluster constraints container db_index
derived_exit_code derived_exit_code_signal comment elapsed_time eligible_time end_time extra
exit_code exit_code_signal failed_node heterogeneous_id heterogeneous_offset id name
mcs_label nodelist partition priority qos requeue_count cpus memory requested_reservations
reservation reservation_id script environment start_time state state_reason cancelled_by
submit_time submit_command suspended_time system_comment time_limit user_id user_name wckey
wckey_id working_directory lineage licenses standard_input standard_output standard_error
segment_size scheduler start_rpc_received tres gres gpus allocated_tres requested_tres
""".split())
REAL_METHODS = frozenset("load as_dict to_dict modify group_id group_name".split())
# Properties with a setter in db/job.pyx.
_SETTABLE = ("admin_comment", "comment", "wckey", "derived_exit_code", "extra", "system_comment")


def _local_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


class JobFilter:
    """Query-Conditions for Jobs in the Slurm Database."""

    __slots__ = FILTER_ATTRIBUTES

    def __init__(self, **kwargs):
        for attr in FILTER_ATTRIBUTES:
            object.__setattr__(self, attr, None)
        for k, v in kwargs.items():
            setattr(self, k, v)

    def __setattr__(self, name, value):
        if name not in FILTER_ATTRIBUTES:
            raise AttributeError(f"'pyslurm.db.job.JobFilter' object has no attribute '{name}'")
        object.__setattr__(self, name, value)

    def _parse_users(self):
        if not self.users:
            return None
        return list({cv.user_to_uid(user) for user in self.users})

    def _sacct_selection(self):
        """JobFilter._create, expressed as sacct options."""
        unsupported = [a for a in ("association_ids", "constraints", "cpus", "max_cpus", "nodes",
                                   "max_nodes", "groups", "timelimit", "max_timelimit", "wckeys",
                                   "with_script", "with_env")
                       if getattr(self, a)]
        if unsupported:
            raise NotImplementedError("stand-in: JobFilter attribute(s) not modelled: " + ", ".join(unsupported))
        selection = []
        start = cv.date_to_timestamp(self.start_time)
        end = cv.date_to_timestamp(self.end_time)
        if start:
            selection += ["-S", _local_time(start)]
        if end:
            selection += ["-E", _local_time(end)]
        uids = [uid for uid in (self._parse_users() or []) if uid]  # uid 0 is dropped
        selection += ["-u", ",".join(str(uid) for uid in sorted(uids))] if uids else ["-a"]
        if self.accounts:
            selection += ["-A", cv.list_to_str(self.accounts)]
        if self.partitions:
            selection += ["-r", cv.list_to_str(self.partitions)]
        if self.names:
            selection += [f"--name={cv.list_to_str(self.names)}"]
        if self.qos:
            selection += ["-q", cv.list_to_str(self.qos)]
        if self.nodelist:
            selection += ["-N", cv.list_to_str(self.nodelist)]
        if self.clusters:
            selection += ["-M", "all" if self.clusters == "all" else cv.list_to_str(self.clusters)]
        if self.truncate_time:
            selection.append("-T")
        if self.ids:
            seen = []
            for i in self.ids:
                job_id = cv.u32(i)
                if job_id not in seen:
                    seen.append(job_id)
            selection += ["-j", ",".join(str(j) for j in seen)]
        return selection


# Alias (db/job.pyx)
JobSearchFilter = JobFilter


class Jobs(MultiClusterMap):
    """A collection of pyslurm.db.Job."""

    __slots__ = ("stats", "cpus", "nodes", "memory")

    def __init__(self, jobs=None):
        super().__init__(data=jobs, typ="db.Jobs", val_type=Job, id_attr=Job.id)
        self.stats = None
        self.cpus = 0
        self.nodes = 0
        self.memory = 0

    @staticmethod
    def load(db_filter=None, db_connection=None):
        """Load Jobs from the Slurm Database (slurmdb_jobs_get)."""
        if db_filter is not None and not isinstance(db_filter, JobFilter):
            raise TypeError(f"Argument 'db_filter' has incorrect type (expected "
                            f"pyslurm.db.job.JobFilter, got {type(db_filter).__name__})")
        cond = db_filter if db_filter else JobFilter()
        selection = cond._sacct_selection()
        _open_conn_or_error(db_connection)
        out = Jobs()
        for row in _bridge.sacct(selection):
            job = Job._from_row(row)
            if job.cluster is None:
                continue
            out._add(job.cluster, job.id, job)
            out.cpus += job.cpus or 0
            out.nodes += job.num_nodes or 0
            out.memory += job.memory or 0
        return out

    @staticmethod
    def modify(db_filter, changes, db_connection=None):
        raise NotImplementedError("stand-in: db.Jobs.modify is not modelled")


def _str(row, key):
    value = row.get(key)
    return None if value is None or value in ("", "(null)") else value


def _num(row, key, default=0):
    value = row.get(key)
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _epoch(row, key):
    value = row.get(key)
    return int(value) if value and str(value).isdigit() else 0


def _tres_count(text, name):
    for item in (text or "").split(","):
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


class Job:
    """Stand-in for pyslurm.db.Job: read-only properties over one sacct row."""

    __slots__ = ("_row", "_changes", "steps", "stats")

    def __init__(self, job_id=0, cluster=None, **kwargs):
        object.__setattr__(self, "_row", {"JobIDRaw": str(int(job_id)),
                                          "Cluster": cluster or settings.LOCAL_CLUSTER})
        object.__setattr__(self, "_changes", {})
        self.steps = None
        self.stats = None
        for k, v in kwargs.items():
            setattr(self, k, v)

    @classmethod
    def _from_row(cls, row):
        job = cls.__new__(cls)
        object.__setattr__(job, "_row", dict(row))
        object.__setattr__(job, "_changes", {})
        job.steps = None
        job.stats = None
        return job

    def __setattr__(self, name, value):
        if name in ("steps", "stats"):
            object.__setattr__(self, name, value)
            return
        if name in _SETTABLE:
            self._changes[name] = value
            return
        if name in REAL_PROPERTIES:
            raise AttributeError(f"attribute '{name}' of 'pyslurm.db.job.Job' objects is not writable")
        raise AttributeError(f"'pyslurm.db.job.Job' object has no attribute '{name}'")

    def __getattr__(self, name):
        if name in REAL_PROPERTIES or name in REAL_METHODS:
            raise NotImplementedError(f"stand-in: pyslurm.db.Job.{name} exists in pyslurm 25.11.2 but is not modelled")
        raise AttributeError(f"'pyslurm.db.job.Job' object has no attribute '{name}'")

    def __repr__(self):
        return f"pyslurm.db.{self.__class__.__name__}({self.id})"

    @staticmethod
    def load(job_id, cluster=None, with_script=False, with_env=False):
        cluster = settings.LOCAL_CLUSTER if not cluster else cluster
        jfilter = JobFilter(ids=[int(job_id)], clusters=[cluster],
                            with_script=with_script, with_env=with_env)
        job = Jobs.load(jfilter).get((cluster, int(job_id)))
        if not job:
            raise RPCError(msg=f"Job {job_id} does not exist on Cluster {cluster}")
        return job

    def modify(self, changes, db_connection=None):
        raise NotImplementedError("stand-in: db.Job.modify is not modelled")

    def group_id(self):
        raise NotImplementedError("stand-in: db.Job.group_id() is not modelled")

    def group_name(self):
        raise NotImplementedError("stand-in: db.Job.group_name() is not modelled")

    # -- properties (db/job.pyx) ------------------------------------------------------
    @property
    def id(self):
        return int(self._row["JobIDRaw"])

    @property
    def name(self):
        return _str(self._row, "JobName")

    @property
    def account(self):
        return _str(self._row, "Account")

    @property
    def cluster(self):
        return _str(self._row, "Cluster")

    @property
    def partition(self):
        return _str(self._row, "Partition")

    @property
    def qos(self):
        return _str(self._row, "QOS")

    @property
    def state(self):
        value = _str(self._row, "State")
        return value.split()[0] if value else None  # "CANCELLED by 0" -> "CANCELLED"

    @property
    def state_reason(self):
        return _str(self._row, "Reason")

    @property
    def exit_code(self):
        return cv._get_exit_code(cv.raw_wait_status(self._row.get("ExitCode")))[0]

    @property
    def exit_code_signal(self):
        return cv._get_exit_code(cv.raw_wait_status(self._row.get("ExitCode")))[1]

    @property
    def derived_exit_code(self):
        return cv._get_exit_code(cv.raw_wait_status(self._row.get("DerivedExitCode")))[0]

    @property
    def derived_exit_code_signal(self):
        return cv._get_exit_code(cv.raw_wait_status(self._row.get("DerivedExitCode")))[1]

    @property
    def num_nodes(self):
        value = _num(self._row, "NNodes", None)
        return value if value else None

    @property
    def nodelist(self):
        return _str(self._row, "NodeList")

    @property
    def time_limit(self):
        value = _str(self._row, "TimelimitRaw")
        if value is None or value == "Partition_Limit":
            raw = cv.NO_VAL
        elif value.upper() == "UNLIMITED":
            raw = cv.INFINITE
        else:
            raw = _num(self._row, "TimelimitRaw", cv.NO_VAL)
        return cv._raw_time(raw, "PartitionLimit")

    @property
    def elapsed_time(self):
        return cv._raw_time(_num(self._row, "ElapsedRaw"))

    @property
    def submit_time(self):
        return cv._raw_time(_epoch(self._row, "Submit"))

    @property
    def start_time(self):
        return cv._raw_time(_epoch(self._row, "Start"))

    @property
    def end_time(self):
        return cv._raw_time(_epoch(self._row, "End"))

    @property
    def eligible_time(self):
        return cv._raw_time(_epoch(self._row, "Eligible"))

    @property
    def suspended_time(self):
        value = self._row.get("Suspended")
        try:
            return cv._raw_time(cv.timestr_to_secs(value)) if value else None
        except ValueError:
            return None

    @property
    def user_id(self):
        return cv.u_parse(_num(self._row, "UID", cv.NO_VAL), cv.NO_VAL, cv.INFINITE, zero_is_noval=False)

    @property
    def user_name(self):
        return cv.uid_to_name(_num(self._row, "UID", cv.NO_VAL))

    @property
    def priority(self):
        return cv.u_parse(_num(self._row, "Priority", cv.NO_VAL), cv.NO_VAL, cv.INFINITE, zero_is_noval=False)

    @property
    def cpus(self):
        value = _tres_count(self._row.get("AllocTRES"), "cpu")
        if value is not None:
            return int(value)
        return cv.u_parse(_num(self._row, "ReqCPUS", cv.NO_VAL), cv.NO_VAL, cv.INFINITE, on_noval=1)

    @property
    def memory(self):
        value = _tres_count(self._row.get("ReqTRES"), "mem")
        return cv.dehumanize(value) if value else None

    @property
    def requeue_count(self):
        # sacct has "Restarts" from 23.02 on; older sacct cannot show it (0 here).
        return cv.u_parse(_num(self._row, "Restarts"), cv.NO_VAL16, cv.INFINITE16, on_noval=0)

    @property
    def working_directory(self):
        return _str(self._row, "WorkDir")

    @property
    def standard_output(self):
        # sacct has "StdOut" from 23.02 on; older sacct cannot show it (None here).
        return _str(self._row, "StdOut")

    @property
    def standard_error(self):
        return _str(self._row, "StdErr")

    @property
    def standard_input(self):
        return _str(self._row, "StdIn")

    @property
    def comment(self):
        return self._changes.get("comment", _str(self._row, "Comment"))

    @property
    def admin_comment(self):
        return self._changes.get("admin_comment", _str(self._row, "AdminComment"))

    @property
    def system_comment(self):
        return self._changes.get("system_comment", _str(self._row, "SystemComment"))

    @property
    def wckey(self):
        return self._changes.get("wckey", _str(self._row, "WCKey"))

    @property
    def extra(self):
        return self._changes.get("extra", _str(self._row, "Extra"))

    @property
    def submit_command(self):
        return _str(self._row, "SubmitLine")

    @property
    def reservation(self):
        return _str(self._row, "Reservation")

    @property
    def db_index(self):
        value = _num(self._row, "DBIndex", None)
        return value if value else None

    @property
    def association_id(self):
        value = _num(self._row, "AssocID", None)
        return value if value else None

    @property
    def mcs_label(self):
        return _str(self._row, "McsLabel")

    @property
    def failed_node(self):
        return _str(self._row, "FailedNode")

    @property
    def constraints(self):
        value = _str(self._row, "Constraints")
        return value.split(",") if value else []
