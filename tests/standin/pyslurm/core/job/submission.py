# Stand-in for pyslurm 25.11.2 JobSubmitDescription:
#   attribute names: pyslurm/core/job/submission.pxd (the `cdef public` block)
#   behaviour:       pyslurm/core/job/submission.pyx (__init__, submit, _create_job_submit_desc,
#                    _set_defaults, _validate_options, _set_environment, _set_memory,
#                    _set_signal, _parse_nodes, _parse_signal_str_to_dict,
#                    _validate_batch_script)
# Unknown attribute names raise AttributeError, as on the Cython cdef class. Values are
# converted with the same helpers (see _convert.py), so wrong types fail the same way
# (e.g. time_limit="5" -> TypeError). submit() then runs sbatch with explicit options
# and the script on stdin (see _bridge.py); attributes the stand-in cannot translate
# raise NotImplementedError instead of being silently dropped.
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ... import _bridge
from ... import _convert as cv
from ..error import RPCError

# submission.pxd, `cdef public:` (order kept).
PUBLIC_ATTRIBUTES = (
    "name", "account", "user_id", "group_id", "priority", "site_factor", "wckey", "array",
    "batch_constraints", "begin_time", "clusters", "cluster_constraints", "comment",
    "admin_comment", "requires_contiguous_nodes", "cores_reserved_for_system",
    "threads_reserved_for_system", "working_directory", "cpu_frequency", "nodes", "deadline",
    "delay_boot_time", "dependencies", "excluded_nodes", "required_nodes", "constraints",
    "kill_on_node_fail", "licenses", "mail_user", "mail_types", "mcs_label", "memory_per_cpu",
    "memory_per_node", "memory_per_gpu", "network", "nice", "log_files_open_mode",
    "overcommit", "partitions", "profile_types", "accounting_gather_frequency", "qos",
    "requires_node_reboot", "is_requeueable", "reservations", "script", "script_args",
    "environment", "resource_sharing", "distribution", "time_limit", "time_limit_min",
    "container", "container_id", "cpus_per_task", "cpus_per_gpu", "sockets_per_node",
    "cores_per_socket", "threads_per_core", "gpus", "gpus_per_socket", "gpus_per_task",
    "gres_per_node", "gpu_binding", "ntasks", "ntasks_per_node", "ntasks_per_socket",
    "ntasks_per_core", "ntasks_per_gpu", "switches", "signal", "standard_in",
    "standard_output", "standard_error", "kill_on_invalid_dependency", "spreads_over_nodes",
    "use_min_nodes", "gres_binding", "gres_tasks_per_sharing", "temporary_disk_per_node",
    "get_user_environment", "min_cpus_per_node", "wait_all_nodes", "selinux_context",
    "segment_size", "reserved_ports", "extra",
)

# Translated to sbatch by this stand-in; any other attribute set to a value raises
# NotImplementedError at submit().
_TRANSLATED = frozenset({
    "name", "account", "priority", "working_directory", "nodes", "excluded_nodes",
    "required_nodes", "constraints", "memory_per_cpu", "memory_per_node", "memory_per_gpu",
    "partitions", "qos", "is_requeueable", "reservations", "script", "environment",
    "time_limit", "time_limit_min", "cpus_per_task", "gres_per_node", "gpus", "ntasks",
    "ntasks_per_node", "signal", "standard_in", "standard_output", "standard_error",
    "get_user_environment", "comment", "nice", "wckey", "begin_time", "dependencies",
    "kill_on_node_fail", "overcommit", "log_files_open_mode",
})


class JobSubmitDescription:
    __slots__ = PUBLIC_ATTRIBUTES + ("is_update",)

    def __init__(self, **kwargs):
        for attr in type(self).__slots__:
            object.__setattr__(self, attr, None)
        # Initialize explicitly provided attributes, if any (as submission.pyx does).
        for k, v in kwargs.items():
            setattr(self, k, v)

    def __setattr__(self, name, value):
        if name not in PUBLIC_ATTRIBUTES:
            raise AttributeError(
                f"'pyslurm.core.job.submission.JobSubmitDescription' object has no attribute '{name}'"
            )
        object.__setattr__(self, name, value)

    def __repr__(self):
        return f"pyslurm.{self.__class__.__name__}"

    # -- the real method's steps ------------------------------------------------------
    def submit(self):
        """Submit a batch job description; returns the job id (int)."""
        options, env, script = self._create_job_submit_desc()
        result = _bridge.run(["sbatch", "--parsable", *options], stdin=script, env=env)
        if result.returncode != 0:
            raise _bridge.rpc_error(result.stderr)
        text = result.stdout.strip().splitlines()
        first = text[-1].split(";")[0] if text else ""
        if not first.isdigit():
            raise RPCError(msg=f"stand-in: sbatch printed no job id: {result.stdout!r}")
        return int(first)

    def load_environment(self, overwrite=False):
        raise NotImplementedError("stand-in: JobSubmitDescription.load_environment is not modelled")

    def load_sbatch_options(self, overwrite=False):
        raise NotImplementedError("stand-in: JobSubmitDescription.load_sbatch_options is not modelled")

    def _validate_options(self):
        if not self.script:
            raise ValueError("You need to provide a batch script.")
        if (self.memory_per_node and self.memory_per_cpu
                or self.memory_per_gpu and self.memory_per_cpu
                or self.memory_per_node and self.memory_per_gpu):
            raise ValueError("Only one of memory_per_cpu, memory_per_node or "
                             "memory_per_gpu can be set.")
        if self.ntasks_per_gpu and (self.nodes or self.gpus_per_task
                                    or self.gpus_per_socket or self.ntasks_per_node):
            raise ValueError("ntasks_per_gpu is mutually exclusive with "
                             "nodes, gpus_per_task, gpus_per_socket and "
                             "ntasks_per_node.")
        if self.cpus_per_gpu and self.cpus_per_task:
            raise ValueError("cpus_per_task and cpus_per_gpu are mutually exclusive.")

    def _set_defaults(self):
        if not self.ntasks:
            self.ntasks = 1
        if not self.cpus_per_task:
            self.cpus_per_task = 1
        if not self.working_directory:
            self.working_directory = str(os.getcwd())
        if not self.environment:
            # By default, sbatch also exports everything in the users env.
            self.environment = "ALL"

    def _create_job_submit_desc(self):
        object.__setattr__(self, "is_update", False)
        untranslated = [a for a in PUBLIC_ATTRIBUTES
                        if a not in _TRANSLATED and getattr(self, a) not in (None, False, "", [], {})]
        self._validate_options()
        self._set_defaults()

        opts = []

        def flag(option, value):
            if value is not None:
                opts.append(f"--{option}={value}")

        # char* fields (cstr.fmalloc: str only)
        flag("job-name", cv.check_cstr("name", self.name))
        flag("account", cv.check_cstr("account", self.account))
        flag("wckey", cv.check_cstr("wckey", self.wckey))
        flag("comment", cv.check_cstr("comment", self.comment))
        flag("chdir", cv.check_cstr("working_directory", self.working_directory))
        flag("constraint", cv.check_cstr("constraints", self.constraints))
        flag("qos", cv.check_cstr("qos", self.qos))
        flag("input", cv.check_cstr("standard_in", self.standard_in))
        flag("output", cv.check_cstr("standard_output", self.standard_output))
        flag("error", cv.check_cstr("standard_error", self.standard_error))
        gpus = cv.from_gres_dict(self.gpus, "gpu")
        if gpus:
            flag("gpus", ",".join(g.replace("gres:", "", 1).replace("gpu::", "gpu:") for g in gpus.split(",")))
        gres = cv.from_gres_dict(self.gres_per_node)
        if gres:
            flag("gres", ",".join(g.replace("gres:", "", 1) for g in gres.split(",")))
        if self.dependencies is not None:
            if not isinstance(self.dependencies, str):
                raise NotImplementedError("stand-in: dict dependencies are not modelled")
            flag("dependency", self.dependencies)
        # lists (cstr.from_list)
        for option, attr in (("exclude", "excluded_nodes"), ("nodelist", "required_nodes"),
                             ("partition", "partitions"), ("reservation", "reservations")):
            value = cv.list_to_str(getattr(self, attr))
            flag(option, cv.check_cstr(attr, value))
        # times
        begin = cv.date_to_timestamp(self.begin_time)
        if begin:
            flag("begin", _epoch_to_slurm(begin))
        limit = cv._c_uint(cv.timestr_to_mins(self.time_limit), 32)
        if limit != cv.NO_VAL:
            flag("time", "UNLIMITED" if limit == cv.INFINITE else limit)
        limit_min = cv._c_uint(cv.timestr_to_mins(self.time_limit_min), 32)
        if limit_min != cv.NO_VAL:
            flag("time-min", "UNLIMITED" if limit_min == cv.INFINITE else limit_min)
        # integers (u16/u32: Cython coercion)
        priority = cv.u32(self.priority, zero_is_noval=False)
        ntasks = cv.u32(self.ntasks)
        cpus_per_task = cv.u16(self.cpus_per_task)
        ntasks_per_node = cv.u16(self.ntasks_per_node)
        if priority == 0:
            opts.append("--hold")
        elif priority not in (cv.NO_VAL, cv.INFINITE):
            flag("priority", priority)
        if ntasks != cv.NO_VAL:
            flag("ntasks", ntasks)
        if cpus_per_task != cv.NO_VAL16:
            flag("cpus-per-task", cpus_per_task)
        if ntasks_per_node != cv.NO_VAL16:
            flag("ntasks-per-node", ntasks_per_node)
        if self.nice:
            flag("nice", int(self.nice))
        # booleans (u16_bool: None keeps Slurm's default)
        requeue = cv.uint_bool(self.is_requeueable, cv.NO_VAL16)
        if requeue != cv.NO_VAL16:
            opts.append("--requeue" if requeue else "--no-requeue")
        kill = cv.uint_bool(self.kill_on_node_fail, cv.NO_VAL16)
        if kill != cv.NO_VAL16:
            opts.append("--no-kill" if not kill else "--no-kill=off")
        if self.overcommit:
            opts.append("--overcommit")
        # submission.pyx _set_open_mode: only "append"/"truncate" change anything.
        mode = str(self.log_files_open_mode or "").lower()
        if mode in ("append", "truncate"):
            opts.append(f"--open-mode={mode}")
        # nodes, script, environment (not is_update)
        nmin, nmax = _parse_nodes(self.nodes)
        flag("nodes", f"{nmin}-{nmax}" if nmax != nmin else nmin)
        script = _validate_batch_script(self.script, self.script_args)
        env, export = self._environment()
        opts.append(f"--export={export}")
        # memory, signal
        opts.extend(self._memory())
        signal_opt = self._signal()
        if signal_opt:
            flag("signal", signal_opt)
        if untranslated:
            raise NotImplementedError(
                "stand-in: JobSubmitDescription attribute(s) not translated to sbatch: "
                + ", ".join(untranslated)
            )
        return opts, env, script

    def _environment(self):
        """submission.pyx _set_environment, reproduced with sbatch: sbatch exports exactly
        the environment it runs with (--export=ALL), so it runs with what libslurm would
        send: the SLURM_* variables of this process plus the given dict."""
        vals = self.environment
        get_user_env = bool(self.get_user_environment)
        base = {k: v for k, v in os.environ.items() if k.startswith("SLURM_")}
        if isinstance(vals, str) or vals is None:
            if vals is None or vals.casefold() == "all":
                env = dict(os.environ)
            elif vals.casefold() == "none":
                env = dict(base)
                get_user_env = True
            else:
                env = dict(base)
                for idx, item in enumerate(vals.split(",")):
                    if idx == 0 and item.casefold() == "all":
                        env.update(os.environ)
                        continue
                    if "=" not in item:
                        continue
                    var, val = item.split("=", 1)
                    env[var] = str(val)
                get_user_env = True
        else:
            env = dict(base)
            for var, val in vals.items():
                env[var] = str(val)
        if get_user_env:
            env["SLURM_GET_USER_ENV"] = "1"
        # sbatch reads SBATCH_* as options; libslurm does not.
        env = {k: v for k, v in env.items() if not k.startswith("SBATCH_")}
        return env, "ALL"

    def _memory(self):
        if self.memory_per_cpu:
            return [f"--mem-per-cpu={cv._c_uint(cv.dehumanize(self.memory_per_cpu), 64)}M"]
        if self.memory_per_node:
            return [f"--mem={cv._c_uint(cv.dehumanize(self.memory_per_node), 64)}M"]
        if self.memory_per_gpu:
            return [f"--mem-per-gpu={cv._c_uint(cv.dehumanize(self.memory_per_gpu), 64)}M"]
        return []

    def _signal(self):
        vals = self.signal
        if not vals:
            return None
        if not isinstance(vals, dict):
            vals = _parse_signal_str_to_dict(vals)
        signum = cv.u16(vals.get("signal"))
        warn_time = cv.u16(vals.get("time"), on_noval=60)
        flags = ""
        if vals.get("batch_only"):
            flags += "B"
        if vals.get("allow_reservation_overlap"):
            flags += "R"
        if signum == cv.NO_VAL16:
            return None
        return f"{flags + ':' if flags else ''}{signum}@{warn_time}"


def _epoch_to_slurm(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


def _parse_nodes(vals):
    nmin = nmax = 1
    if isinstance(vals, dict):
        nmin = cv.u32(vals.get("min", 1), on_noval=1)
        nmax = cv.u32(vals.get("max", 1), on_noval=nmin)
    elif vals is not None:
        v = str(vals).split("-", 1)
        nmin = int(v[0])
        if nmin == 0:
            nmin = 1
        if "-" in str(vals):
            nmax = int(v[1])
        else:
            nmax = nmin
    if not nmax:
        nmax = nmin
    if nmax < nmin:
        raise ValueError("Max Nodecount cannot be less than minimum nodecount.")
    return nmin, nmax


def _parse_signal_str_to_dict(vals):
    info = {}
    val_list = re.split("[:@]+", str(vals))
    if len(val_list):
        if ":" in str(vals):
            flags = val_list.pop(0).casefold()
            if "r" in flags:
                info["allow_reservation_overlap"] = True
            if "b" in flags:
                info["batch_only"] = True
        if "@" in str(vals):
            info["time"] = val_list[1]
        info["signal"] = cv.signal_to_num(val_list[0])
    return info


def _validate_batch_script(script, args=None):
    try:
        _is_file = Path(script).is_file()
    except (ValueError, OSError, TypeError):
        _is_file = False
    if _is_file:
        script = Path(script).read_text()
    elif args:
        raise ValueError("Passing arguments to a script is only allowed "
                         "if it was loaded from a file.")
    if not script or not len(script):
        raise ValueError("Batch script is empty or none was provided.")
    elif script.isspace():
        raise ValueError("Batch script contains only whitespace.")
    elif not script.startswith("#!"):
        msg = "Not a valid Batch script. "
        msg += "First line must start with '#!',"
        msg += "followed by the path to an interpreter"
        raise ValueError(msg)
    elif "\0" in script:
        raise ValueError("The Slurm Controller does not allow scripts that "
                         "contain a NULL character: '\\0'.")
    elif "\r\n" in script:
        raise ValueError("Batch script contains DOS line breaks (\\r\\n) "
                         "instead of expected UNIX line breaks (\\n).")
    return script
