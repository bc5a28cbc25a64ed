# Stand-in for pyslurm 25.11.2 Job and Jobs:
#   class, properties, methods: pyslurm/core/job/job.pyx (Jobs.load, Job.__init__, Job.load,
#   send_signal, cancel, suspend, unsuspend, hold, release, requeue, the @property list,
#   _calc_run_time, run_time_remaining); writable attributes: pyslurm/core/job/job.pxd
#   (`cdef public: steps, stats, pids`).
# Values come from `scontrol show job -o` (SLURM_TIME_FORMAT=%s, so times are epochs) and
# are converted the way job.pyx converts the C struct: _raw_time (0/NO_VAL -> None,
# INFINITE -> None), u32_parse/u16_parse (0 -> None unless noted), _get_exit_code on the
# raw wait status, uid_to_name. A name that is not a pyslurm 25.11.2 Job attribute raises
# AttributeError (as the cdef class does); a real one the stand-in does not model raises
# NotImplementedError, so neither passes silently.
from __future__ import annotations

import time

from ... import _bridge
from ... import _convert as cv
from ... import settings
from ...xcollections import MultiClusterMap
from ..error import RPCError, ERRNO_NAMES

# Every @property of Job in job.pyx (141 names).
REAL_PROPERTIES = frozenset("""
name id association_id account user_id user_name group_id group_name priority nice qos
min_cpus_per_node state state_reason is_requeueable requeue_count is_batch_job
requires_node_reboot dependencies time_limit time_limit_min submit_time eligible_time
accrue_time start_time resize_time deadline preempt_eligible_time preempt_time suspend_time
last_sched_evaluation_time pre_suspension_time mcs_label partition submit_host
submit_session_id batch_host num_nodes max_nodes allocated_nodes required_nodes
excluded_nodes scheduled_nodes derived_exit_code derived_exit_code_signal exit_code
exit_code_signal batch_constraints federation_origin federation_siblings_active
federation_siblings_viable cpus cpus_per_task cpus_per_gpu boards_per_node
sockets_per_board sockets_per_node cores_per_socket threads_per_core ntasks
ntasks_per_node ntasks_per_board ntasks_per_socket ntasks_per_core ntasks_per_gpu
delay_boot_time constraints preferred_features cluster cluster_constraints reservation
resource_sharing requires_contiguous_nodes licenses allocated_licenses network command
working_directory admin_comment system_comment container container_id comment
standard_input standard_output standard_error required_switches max_wait_time_switches
burst_buffer burst_buffer_state cpu_frequency_min cpu_frequency_max cpu_frequency_governor
billable_tres wckey mail_user mail_types heterogeneous_id heterogeneous_offset
temporary_disk_per_node array_id array_tasks_parallel array_task_id array_tasks_waiting
end_time run_time cores_reserved_for_system threads_reserved_for_system memory
memory_per_cpu memory_per_node memory_per_gpu gres_per_node gpus gres tres tres_per_node
tres_per_task tres_per_job tres_per_socket allocated_tres requested_tres profile_types
gres_binding gres_tasks_per_sharing kill_on_invalid_dependency kill_step_when_oom
spreads_over_nodes is_cronjob cronjob_time elapsed_cpu_time submit_line run_time_remaining
extra failed_node reserved_ports selinux_context segment_size spread_segments
consolidate_segments slurm_protocol_version
""".split())
REAL_METHODS = frozenset("""
load as_dict to_dict send_signal cancel suspend unsuspend modify hold release requeue
notify load_stats get_batch_script get_resource_layout_per_node
""".split())

_NULLS = ("", "(null)")


def _str(fields, key):
    value = fields.get(key)
    return None if value is None or value in _NULLS else value


def _int(fields, key, default=0):
    value = fields.get(key)
    try:
        return int(str(value).split("(")[0].split("-")[0])
    except (TypeError, ValueError):
        return default


def _epoch(fields, key):
    """scontrol with SLURM_TIME_FORMAT=%s: an epoch, or Unknown/None/N/A for 0."""
    value = fields.get(key)
    if value is None or not str(value).isdigit():
        return 0
    return int(value)


def _minutes(text):
    """TimeLimit (D-HH:MM:SS, HH:MM:SS, MM:SS, UNLIMITED) as the struct's minutes."""
    if text is None or text in ("", "N/A", "NONE", "(null)"):
        return cv.NO_VAL
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return cv.INFINITE
    if text == "Partition_Limit":
        return cv.NO_VAL
    secs = cv._slurm_time_str2secs(text)
    if secs in (cv.NO_VAL, cv.INFINITE):
        return secs
    return secs // 60


def _id_in_parens(text):
    """'root(0)' -> 0."""
    if not text or "(" not in text:
        return cv.NO_VAL
    try:
        return int(text.rsplit("(", 1)[1].rstrip(")"))
    except ValueError:
        return cv.NO_VAL


def _memory_mib(text):
    if not text or text in ("0", "N/A"):
        return None
    try:
        return cv.dehumanize(text[:-1] + text[-1].upper() if text[-1].isalpha() else text)
    except (ValueError, KeyError):
        return None


class Jobs(MultiClusterMap):
    """Stand-in for pyslurm.Jobs (a MultiClusterMap of Job)."""

    __slots__ = ("frozen", "stats")

    def __init__(self, jobs=None, frozen=False):
        super().__init__(data=jobs, typ="Jobs", val_type=Job, id_attr=Job.id)
        self.frozen = frozen
        self.stats = None

    @staticmethod
    def load(preload_passwd_info=False, frozen=False):
        """Retrieve all Jobs from the Slurm controller (every user's)."""
        jobs = Jobs(frozen=frozen)
        for fields in _bridge.show_jobs():
            job = Job._from_fields(fields)
            jobs._add(job.cluster, job.id, job)
        return jobs

    def reload(self):
        raise NotImplementedError("stand-in: Jobs.reload is not modelled")

    def load_steps(self):
        raise NotImplementedError("stand-in: Jobs.load_steps is not modelled")

    def load_stats(self):
        raise NotImplementedError("stand-in: Jobs.load_stats is not modelled")


class Job:
    """Stand-in for pyslurm.Job: read-only properties over one `scontrol show job` line."""

    __slots__ = ("_fields", "_now", "steps", "stats", "pids")

    def __init__(self, job_id):
        object.__setattr__(self, "_fields", {"JobId": str(int(job_id)), "JobState": "PENDING"})
        object.__setattr__(self, "_now", None)
        self.steps = None
        self.stats = None
        self.pids = {}

    @classmethod
    def _from_fields(cls, fields):
        job = cls.__new__(cls)
        object.__setattr__(job, "_fields", dict(fields))
        object.__setattr__(job, "_now", None)
        job.steps = None
        job.stats = None
        job.pids = {}
        return job

    def __setattr__(self, name, value):
        if name in ("steps", "stats", "pids"):
            object.__setattr__(self, name, value)
            return
        if name in REAL_PROPERTIES:
            raise AttributeError(f"attribute '{name}' of 'pyslurm.core.job.job.Job' objects is not writable")
        raise AttributeError(f"'pyslurm.core.job.job.Job' object has no attribute '{name}'")

    def __getattr__(self, name):
        # Only reached when normal lookup failed.
        if name in REAL_PROPERTIES or name in REAL_METHODS:
            raise NotImplementedError(f"stand-in: pyslurm.Job.{name} exists in pyslurm 25.11.2 but is not modelled")
        raise AttributeError(f"'pyslurm.core.job.job.Job' object has no attribute '{name}'")

    def __repr__(self):
        return f"pyslurm.{self.__class__.__name__}({self.id})"

    # -- RPCs -------------------------------------------------------------------------
    @staticmethod
    def load(job_id):
        """Load information for a specific Job (RPCError if the controller has none)."""
        found = [f for f in _bridge.show_jobs(int(job_id)) if f.get("JobId") == str(int(job_id))]
        if not found:
            raise RPCError(msg="RPC was successful but got no job data, this should never happen")
        return Job._from_fields(found[0])

    def send_signal(self, signal, steps="children", hurry=False):
        sig = cv.signal_to_num(signal)
        argv = ["scancel", f"--signal={sig}"]
        if steps.casefold() == "all":
            argv.append("--full")
        elif steps.casefold() == "batch":
            argv.append("--batch")
        if hurry:
            argv.append("--hurry")
        self._kill(argv + [str(self.id)], sig)

    def cancel(self):
        """Cancel a Job: send_signal(9); unknown or finished jobs are not an error."""
        self._kill(["scancel", str(self.id)], 9)

    def _kill(self, argv, sig):
        result = _bridge.run(argv)
        lines = " ".join(_bridge.error_lines(result.stderr)).lower()
        done = ERRNO_NAMES["ESLURM_ALREADY_DONE"]
        invalid = ERRNO_NAMES["ESLURM_INVALID_JOB_ID"]
        if "already completing or completed" in lines:
            return  # ESLURM_ALREADY_DONE is ignored
        if "invalid job id" in lines and sig == 9:
            return  # ESLURM_INVALID_JOB_ID with SIGKILL is ignored
        if result.returncode != 0 or lines:
            err = _bridge.rpc_error(result.stderr)
            if err.errno in (done,) or (err.errno == invalid and sig == 9):
                return
            raise err

    def suspend(self):
        _bridge.control(["scontrol", "suspend", str(self.id)])

    def unsuspend(self):
        _bridge.control(["scontrol", "resume", str(self.id)])

    def modify(self, changes):
        raise NotImplementedError("stand-in: Job.modify is not modelled (hold/release are)")

    def hold(self, mode=None):
        """modify(JobSubmitDescription(priority=0)) == scontrol hold."""
        if mode and mode.casefold() == "user":
            # job.pyx writes job_sub.ptr.alloc_sid while ptr is still NULL.
            raise RuntimeError("pyslurm 25.11.2 Job.hold(mode='user') dereferences a NULL pointer "
                               "and crashes the interpreter; use hold()")
        _bridge.control(["scontrol", "hold", str(self.id)])

    def release(self):
        """modify(JobSubmitDescription(priority=INFINITE)) == scontrol release."""
        _bridge.control(["scontrol", "release", str(self.id)])

    def requeue(self, hold=False):
        """slurm_requeue(id, JOB_REQUEUE_HOLD if hold else 0)."""
        _bridge.control(["scontrol", "requeuehold" if hold else "requeue", str(self.id)])

    def to_dict(self, recursive=False):
        raise NotImplementedError("stand-in: Job.to_dict is not modelled")

    as_dict = to_dict

    # -- properties (job.pyx) ---------------------------------------------------------
    @property
    def name(self):
        return _str(self._fields, "JobName")

    @property
    def id(self):
        return int(self._fields["JobId"])

    @property
    def account(self):
        return _str(self._fields, "Account")

    @property
    def user_id(self):
        return cv.u_parse(_id_in_parens(self._fields.get("UserId")), cv.NO_VAL, cv.INFINITE,
                          zero_is_noval=False)

    @property
    def user_name(self):
        return cv.uid_to_name(_id_in_parens(self._fields.get("UserId")))

    @property
    def group_id(self):
        return cv.u_parse(_id_in_parens(self._fields.get("GroupId")), cv.NO_VAL, cv.INFINITE,
                          zero_is_noval=False)

    @property
    def priority(self):
        return cv.u_parse(_int(self._fields, "Priority", cv.NO_VAL), cv.NO_VAL, cv.INFINITE,
                          zero_is_noval=False)

    @property
    def qos(self):
        return _str(self._fields, "QOS")

    @property
    def state(self):
        return self._fields.get("JobState")

    @property
    def state_reason(self):
        # state_desc if set (scontrol shows its blanks as '_'), else the reason string;
        # "None" when there is no reason.
        return self._fields.get("Reason")

    @property
    def is_requeueable(self):
        return _int(self._fields, "Requeue") not in (0, cv.NO_VAL16)

    @property
    def requeue_count(self):
        return cv.u_parse(_int(self._fields, "Restarts"), cv.NO_VAL16, cv.INFINITE16, on_noval=0)

    @property
    def is_batch_job(self):
        return _int(self._fields, "BatchFlag") not in (0, cv.NO_VAL16)

    @property
    def time_limit(self):
        return cv._raw_time(_minutes(self._fields.get("TimeLimit")))

    @property
    def time_limit_min(self):
        return cv._raw_time(_minutes(self._fields.get("TimeMin")))

    @property
    def submit_time(self):
        return cv._raw_time(_epoch(self._fields, "SubmitTime"))

    @property
    def eligible_time(self):
        return cv._raw_time(_epoch(self._fields, "EligibleTime"))

    @property
    def accrue_time(self):
        return cv._raw_time(_epoch(self._fields, "AccrueTime"))

    @property
    def start_time(self):
        return cv._raw_time(_epoch(self._fields, "StartTime"))

    @property
    def end_time(self):
        return cv._raw_time(_epoch(self._fields, "EndTime"))

    @property
    def preempt_time(self):  # job.pyx: _raw_time(self.ptr.preempt_time); scontrol's PreemptTime
        return cv._raw_time(_epoch(self._fields, "PreemptTime"))

    @property
    def deadline(self):
        return cv._raw_time(_epoch(self._fields, "Deadline"))

    @property
    def suspend_time(self):
        return cv._raw_time(_epoch(self._fields, "SuspendTime"))

    @property
    def last_sched_evaluation_time(self):
        return cv._raw_time(_epoch(self._fields, "LastSchedEval"))

    @property
    def pre_suspension_time(self):
        return cv._raw_time(_int(self._fields, "SecsPreSuspend"))

    @property
    def partition(self):
        return _str(self._fields, "Partition")

    @property
    def submit_host(self):
        value = _str(self._fields, "AllocNode:Sid")
        return value.rsplit(":", 1)[0] if value else None

    @property
    def batch_host(self):
        return _str(self._fields, "BatchHost")

    @property
    def num_nodes(self):
        return cv.u_parse(_int(self._fields, "NumNodes"), cv.NO_VAL, cv.INFINITE)

    @property
    def allocated_nodes(self):
        return _str(self._fields, "NodeList")

    @property
    def required_nodes(self):
        return _str(self._fields, "ReqNodeList")

    @property
    def excluded_nodes(self):
        return _str(self._fields, "ExcNodeList")

    @property
    def exit_code(self):
        return cv._get_exit_code(cv.raw_wait_status(self._fields.get("ExitCode")))[0]

    @property
    def exit_code_signal(self):
        return cv._get_exit_code(cv.raw_wait_status(self._fields.get("ExitCode")))[1]

    @property
    def derived_exit_code(self):
        return cv._get_exit_code(cv.raw_wait_status(self._fields.get("DerivedExitCode")))[0]

    @property
    def derived_exit_code_signal(self):
        return cv._get_exit_code(cv.raw_wait_status(self._fields.get("DerivedExitCode")))[1]

    @property
    def cpus(self):
        return cv.u_parse(_int(self._fields, "NumCPUs"), cv.NO_VAL, cv.INFINITE, on_noval=1)

    @property
    def cpus_per_task(self):
        return cv.u_parse(_int(self._fields, "CPUs/Task"), cv.NO_VAL16, cv.INFINITE16, on_noval=1)

    @property
    def ntasks(self):
        return cv.u_parse(_int(self._fields, "NumTasks"), cv.NO_VAL, cv.INFINITE, on_noval=1)

    @property
    def ntasks_per_node(self):
        value = (self._fields.get("NtasksPerN:B:S:C") or "").split(":")[0]
        return int(value) if value.isdigit() and int(value) else None

    @property
    def cluster(self):
        return settings.LOCAL_CLUSTER

    @property
    def reservation(self):
        return _str(self._fields, "Reservation")

    @property
    def command(self):
        return _str(self._fields, "Command")

    @property
    def working_directory(self):
        return _str(self._fields, "WorkDir")

    @property
    def comment(self):
        return _str(self._fields, "Comment")

    @property
    def standard_input(self):
        return _str(self._fields, "StdIn")

    @property
    def standard_output(self):
        return _str(self._fields, "StdOut")

    @property
    def standard_error(self):
        return _str(self._fields, "StdErr")

    @property
    def memory_per_cpu(self):
        return _memory_mib(self._fields.get("MinMemoryCPU"))

    @property
    def memory_per_node(self):
        return _memory_mib(self._fields.get("MinMemoryNode"))

    @property
    def failed_node(self):
        return _str(self._fields, "FailedNode")

    def _is(self, state):
        return (self._fields.get("JobState") or "").split()[0:1] == [state]

    @property
    def run_time(self):
        # job.pyx _calc_run_time (a copy of Slurm's job_info.c logic).
        start = _epoch(self._fields, "StartTime")
        end = _epoch(self._fields, "EndTime")
        if self._is("PENDING") or not start:
            return 0
        if self._is("SUSPENDED"):
            return self.pre_suspension_time
        now = int(time.time())
        etime = now if (self._is("RUNNING") or end == 0) else end
        suspend = _epoch(self._fields, "SuspendTime")
        if suspend:
            rtime = etime - suspend + _int(self._fields, "SecsPreSuspend")
        else:
            rtime = etime - start
        return rtime if rtime else 0

    @property
    def run_time_remaining(self):
        limit = self.time_limit
        if limit is None:
            return None
        return (self.time_limit * 60) - self.run_time

    @property
    def elapsed_cpu_time(self):
        return self.cpus * self.run_time
