"""Unit tests of the pyslurm backend's pure mapping, loading and error handling.

No Slurm and no real pyslurm needed: records are built from simple stand-in objects and
from the strict stand-in (tests/standin/pyslurm) without calling its Slurm bridge.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ot_hpc.scheduler import pyslurm_backend as pb
from ot_hpc.scheduler import pyslurm_convert as pc
from ot_hpc.scheduler import pyslurm_listing as pl
from ot_hpc.scheduler.base import (
    AccountingUnavailable,
    BackendUnavailable,
    ControllerUnreachable,
    JobRequest,
    JobState,
    SchedulerError,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN_DIR = os.path.join(REPO, "tests", "standin")
EPOCH = 1_700_000_000


# -- helpers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def standin():
    """The strict stand-in, imported without slurm_init and without staying in sys.modules."""
    saved = {n: m for n, m in sys.modules.items() if n == "pyslurm" or n.startswith("pyslurm.")}
    for name in saved:
        del sys.modules[name]
    old_env = os.environ.get("PYSLURM_DISABLE_AUTO_INIT")
    os.environ["PYSLURM_DISABLE_AUTO_INIT"] = "1"
    sys.path.insert(0, STANDIN_DIR)
    try:
        module = importlib.import_module("pyslurm")
        importlib.import_module("pyslurm.db")
        submission = importlib.import_module("pyslurm.core.job.submission")
    finally:
        sys.path.remove(STANDIN_DIR)
        if old_env is None:
            del os.environ["PYSLURM_DISABLE_AUTO_INIT"]
        else:
            os.environ["PYSLURM_DISABLE_AUTO_INIT"] = old_env
        for name in [n for n in sys.modules if n == "pyslurm" or n.startswith("pyslurm.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    module._submission_module = submission  # for the sbatch-translation checks below
    return module


def make_request(**changes):
    values = dict(
        script="#!/bin/bash\nsrun hostname\n",
        name="unit-job",
        nodes=2,
        ntasks_per_node=1,
        time_limit_minutes=30,
        environment={"PATH": "/usr/bin:/bin", "MARK": "given"},
    )
    values.update(changes)
    return JobRequest(**values)


# The passwd database the fake jobs' owners are in (injected: no real lookups).
PASSWD = {"alice": 1001, "bob": 1002, "carol": 1003}


def live_job(**changes):
    """A live pyslurm.Job as plain attributes (names from core/job/job.pyx)."""
    values = dict(
        id=42, name="unit-job", user_id=1001, user_name="alice", state="RUNNING",
        state_reason="None", partition="gpu", account="proj", num_nodes=2,
        allocated_nodes="n[1-2]", time_limit=30, run_time=600, run_time_remaining=1200,
        submit_time=EPOCH - 60, start_time=EPOCH, end_time=EPOCH + 1800, exit_code=0,
        exit_code_signal=0, standard_output="/logs/unit-42.out", working_directory="/work",
        requeue_count=1, preempt_time=0,
    )
    values.update(changes)
    if "user_name" in changes and "user_id" not in changes:
        values["user_id"] = PASSWD[changes["user_name"]]
    return SimpleNamespace(**values)


def db_job(**changes):
    """An accounting pyslurm.db.Job as plain attributes (names from db/job.pyx)."""
    values = dict(
        id=7, name="acct-job", user_id=1001, user_name="alice", state="FAILED", state_reason="None",
        partition="debug", account="proj", num_nodes=1, nodelist="n1", time_limit=5,
        elapsed_time=12, submit_time=EPOCH - 30, start_time=EPOCH, end_time=EPOCH + 12,
        exit_code=3, exit_code_signal=0, standard_output=None, working_directory="/work",
        requeue_count=0,
    )
    values.update(changes)
    if "user_name" in changes and "user_id" not in changes:
        values["user_id"] = PASSWD[changes["user_name"]]
    return SimpleNamespace(**values)


def local(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).astimezone()


# -- JobRequest -> submit kwargs ----------------------------------------------------------
def test_submit_kwargs_maps_every_field():
    request = make_request(
        cpus_per_task=4, gpus_per_node=4, memory_per_node_mb=8000, partition="gpu",
        account="proj", qos="high", exclude_nodes=("n3", "n4"), output_path="/logs/%x-%j.out",
        working_directory="/work", signal_name="USR2", signal_seconds_before_end=300,
        requeue=True, append_output=True, hold=True,
    )
    assert pc.submit_kwargs(request) == {
        "name": "unit-job",
        "script": "#!/bin/bash\nsrun hostname\n",
        "nodes": 2,
        "ntasks": 2,
        "ntasks_per_node": 1,
        "time_limit": 30,
        "environment": {"PATH": "/usr/bin:/bin", "MARK": "given"},
        "is_requeueable": True,
        "log_files_open_mode": "append",
        "cpus_per_task": 4,
        "gres_per_node": "gpu:4",
        "memory_per_node": 8000,
        "partitions": "gpu",
        "account": "proj",
        "qos": "high",
        "excluded_nodes": ["n3", "n4"],
        "standard_output": "/logs/%x-%j.out",
        "working_directory": "/work",
        "signal": "B:SIGUSR2@300",
        "priority": 0,
    }


def test_submit_kwargs_minimal_request_sets_tasks_and_never_priority():
    kwargs = pc.submit_kwargs(make_request(nodes=3, ntasks_per_node=2))
    assert kwargs["ntasks"] == 6 and kwargs["ntasks_per_node"] == 2 and kwargs["nodes"] == 3
    assert isinstance(kwargs["time_limit"], int)  # "30" would be a TypeError in pyslurm
    assert kwargs["is_requeueable"] is False
    for absent in ("priority", "signal", "gres_per_node", "partitions", "qos", "excluded_nodes",
                   "memory_per_node", "standard_output", "working_directory", "cpus_per_task"):
        assert absent not in kwargs


def test_empty_environment_stays_a_dict_so_the_login_environment_is_not_exported():
    env = pc.submit_kwargs(make_request(environment={}))["environment"]
    assert isinstance(env, dict) and env  # {} would become "ALL" inside pyslurm
    assert env == pc.EMPTY_ENVIRONMENT_MARKER


@pytest.mark.parametrize("name, batch_only, seconds, expected", [
    ("USR2", True, 300, "B:SIGUSR2@300"),
    ("SIGTERM", False, 60, "SIGTERM@60"),
    ("usr1", False, 0, "SIGUSR1@0"),
    ("12", True, 90, "B:12@90"),
])
def test_signal_uses_names_pyslurm_can_resolve(name, batch_only, seconds, expected):
    request = make_request(signal_name=name, signal_batch_only=batch_only,
                           signal_seconds_before_end=seconds)
    assert pc.submit_kwargs(request)["signal"] == expected


def test_unknown_signal_is_a_scheduler_error():
    with pytest.raises(SchedulerError, match="NOPE"):
        pc.submit_kwargs(make_request(signal_name="NOPE"))


def test_submit_kwargs_are_accepted_by_the_strict_standin(standin):
    request = make_request(
        cpus_per_task=2, gpus_per_node=2, memory_per_node_mb=500, partition="gpu", qos="normal",
        exclude_nodes=("n3",), output_path="/tmp/x-%j.out", working_directory="/tmp",
        signal_name="USR2", signal_seconds_before_end=120, requeue=True, hold=True,
    )
    desc = standin.JobSubmitDescription(**pc.submit_kwargs(request))
    options, env, script = desc._create_job_submit_desc()  # the sbatch translation, no Slurm
    for option in ("--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--time=30",
                   "--cpus-per-task=2", "--gres=gpu:2", "--mem=500M", "--partition=gpu",
                   "--qos=normal", "--exclude=n3", "--output=/tmp/x-%j.out", "--chdir=/tmp",
                   "--signal=B:12@120", "--requeue", "--hold", "--export=ALL"):
        assert option in options, (option, options)
    assert script == request.script
    assert {k: v for k, v in env.items() if not k.startswith("SLURM_")} == dict(request.environment)


# -- the strict stand-in rejects what pyslurm 25.11.2 rejects --------------------------------
def test_standin_rejects_unknown_submit_attribute(standin):
    with pytest.raises(AttributeError, match="partition"):
        standin.JobSubmitDescription(partition="gpu")  # the real name is "partitions"
    desc = standin.JobSubmitDescription()
    with pytest.raises(AttributeError):
        desc.requeue = True  # the real name is "is_requeueable"


def test_standin_reproduces_pyslurm_type_rules(standin):
    base = dict(script="#!/bin/bash\ntrue\n", environment={"A": "1"})
    with pytest.raises(TypeError):
        standin.JobSubmitDescription(time_limit="5", **base)._create_job_submit_desc()
    options, _, _ = standin.JobSubmitDescription(time_limit="01:30:00", **base)._create_job_submit_desc()
    assert "--time=90" in options
    with pytest.raises(ValueError, match="#!"):
        standin.JobSubmitDescription(script="echo hi\n", time_limit=5)._create_job_submit_desc()
    with pytest.raises(ValueError, match="Invalid Signal"):
        standin.JobSubmitDescription(signal="B:USR2@60", **base)._create_job_submit_desc()
    with pytest.raises(TypeError):
        standin.JobSubmitDescription(name=5, **base)._create_job_submit_desc()
    with pytest.raises(NotImplementedError):
        standin.JobSubmitDescription(array="1-3", **base)._create_job_submit_desc()


def test_standin_empty_environment_dict_exports_everything_like_pyslurm(standin, monkeypatch):
    monkeypatch.setenv("OT_UNIT_LEAK", "yes")
    _, env, _ = standin.JobSubmitDescription(
        script="#!/bin/bash\n", environment={})._create_job_submit_desc()
    assert env.get("OT_UNIT_LEAK") == "yes"  # why the backend never passes {}


def test_standin_job_objects_reject_wrong_attribute_names(standin):
    job = standin.Job(5)
    with pytest.raises(AttributeError):
        job.user  # the real name is "user_name"
    with pytest.raises(AttributeError):
        job.restart_cnt  # the real name is "requeue_count"
    with pytest.raises(AttributeError):
        job.name = "x"  # read-only property
    with pytest.raises(NotImplementedError):
        job.dependencies  # real, but not modelled by the stand-in
    db_job_ = standin.db.Job(5)
    with pytest.raises(AttributeError):
        db_job_.allocated_nodes  # live-job name; db.Job has "nodelist"
    with pytest.raises(AttributeError):
        standin.db.JobFilter(state=["FAILED"])  # no state filter in 25.11.2


def test_standin_jobfilter_drops_root_from_users(standin):
    selection = standin.db.JobFilter(users=["root"], start_time=EPOCH, end_time=EPOCH + 60)._sacct_selection()
    assert "-a" in selection and "-u" not in selection


# -- pyslurm objects -> JobRecord -----------------------------------------------------------
def test_running_job_record():
    record = pc.record_from_job(live_job())
    assert record.job_id == 42 and record.name == "unit-job" and record.user == "alice"
    assert record.state is JobState.RUNNING and record.raw_state == "RUNNING"
    assert record.reason is None  # pyslurm says 'None'
    assert record.partition == "gpu" and record.account == "proj"
    assert record.node_count == 2 and record.node_list == "n[1-2]"
    assert record.time_limit_minutes == 30
    assert record.elapsed_seconds == 600 and record.time_left_seconds == 1200
    assert record.submit_time == local(EPOCH - 60) and record.submit_time.tzinfo is not None
    assert record.start_time == local(EPOCH)
    assert record.end_time is None  # a running job's end_time is only the expected end
    assert record.exit_code is None and record.exit_signal is None
    assert record.stdout_path == "/logs/unit-42.out" and record.restart_count == 1


def test_pending_held_job_record():
    record = pc.record_from_job(live_job(
        state="PENDING", state_reason="JobHeldUser", allocated_nodes=None, run_time=0,
        run_time_remaining=1800, start_time=EPOCH + 500, end_time=0, requeue_count=0))
    assert record.state is JobState.PENDING and record.reason == "JobHeldUser"
    assert record.node_list == "" and record.start_time is None and record.end_time is None
    assert record.elapsed_seconds == 0 and record.time_left_seconds == 1800


def test_finished_job_record_zero_epochs_unlimited_and_exit_split():
    record = pc.record_from_job(live_job(
        state="FAILED", state_reason="NonZeroExitCode", time_limit=None, run_time_remaining=None,
        submit_time=0, exit_code=3, exit_code_signal=0, run_time=12))
    assert record.state is JobState.FAILED and record.reason == "NonZeroExitCode"
    assert record.time_limit_minutes is None and record.time_left_seconds is None
    assert record.submit_time is None
    assert record.end_time == local(EPOCH + 1800)
    assert (record.exit_code, record.exit_signal) == (3, 0)


def test_time_left_only_for_active_jobs():
    done = pc.record_from_job(live_job(state="COMPLETED", run_time=2300))
    assert done.time_left_seconds is None
    over = pc.record_from_job(live_job(state="RUNNING", run_time=1805))  # 30 min limit
    assert over.time_left_seconds == 0
    unlimited = pc.record_from_job(live_job(state="RUNNING", time_limit=None))
    assert unlimited.time_left_seconds is None


def test_time_left_is_run_time_remainings_formula_from_values_already_read():
    # job.pyx:1343: run_time_remaining = time_limit * 60 - run_time (run_time recomputed).
    for limit, run_time in ((30, 600), (1, 0), (2, 119)):
        job = live_job(time_limit=limit, run_time=run_time)
        assert pc.remaining_seconds(JobState.RUNNING, limit, run_time) == limit * 60 - run_time
        assert pc.record_from_job(job).time_left_seconds == limit * 60 - run_time


def test_signalled_job_exit_parts():
    record = pc.record_from_job(live_job(state="CANCELLED", exit_code=0, exit_code_signal=9,
                                         state_reason=""))
    assert (record.exit_code, record.exit_signal) == (0, 9) and record.reason is None


def test_db_job_record():
    record = pc.record_from_db_job(db_job())
    assert record.job_id == 7 and record.state is JobState.FAILED
    assert (record.exit_code, record.exit_signal) == (3, 0)
    assert record.elapsed_seconds == 12 and record.time_left_seconds is None
    assert record.start_time == local(EPOCH) and record.end_time == local(EPOCH + 12)
    assert record.node_list == "n1" and record.reason is None
    assert record.extra["source"] == "accounting"


def test_db_job_record_odd_values():
    record = pc.record_from_db_job(db_job(
        elapsed_time=None, time_limit="PartitionLimit", nodelist="None assigned", num_nodes=None,
        state="CANCELLED", start_time=None, submit_time=0))
    assert record.elapsed_seconds == 0  # pyslurm gives None for 0 s
    assert record.time_limit_minutes is None and record.node_list == "" and record.node_count == 0
    assert record.start_time is None and record.submit_time is None


def test_records_from_standin_objects_use_only_real_names(standin):
    fields = {
        "JobId": "9", "JobName": "contract-x", "UserId": "root(0)", "Account": "local",
        "JobState": "FAILED", "Reason": "NonZeroExitCode", "Restarts": "0",
        "ExitCode": "3:0", "TimeLimit": "00:07:00", "SubmitTime": str(EPOCH),
        "StartTime": str(EPOCH + 1), "EndTime": str(EPOCH + 3), "Partition": "gpu",
        "NodeList": "n1", "NumNodes": "1", "StdOut": "/tmp/x-9.out",
    }
    record = pc.record_from_job(standin.Job._from_fields(fields))
    assert record.user == "root" and record.time_limit_minutes == 7 and record.exit_code == 3
    assert record.elapsed_seconds == 2 and record.end_time == local(EPOCH + 3)
    row = {"JobIDRaw": "9", "JobName": "contract-x", "UID": "0", "State": "CANCELLED by 0",
           "ExitCode": "0:15", "TimelimitRaw": "UNLIMITED", "ElapsedRaw": "0",
           "Start": "Unknown", "End": str(EPOCH + 3), "NodeList": "None assigned", "NNodes": "1",
           "Cluster": "local"}
    record = pc.record_from_db_job(standin.db.Job._from_row(row))
    assert record.state is JobState.CANCELLED and record.raw_state == "CANCELLED"
    assert (record.exit_code, record.exit_signal) == (0, 15)
    assert record.time_limit_minutes is None and record.node_list == "" and record.elapsed_seconds == 0


# -- loading pyslurm --------------------------------------------------------------------------
def _no_import(name):
    raise AssertionError(f"must not import {name} when the Slurm config is missing")


def test_missing_slurm_conf_is_backend_unavailable_without_importing():
    with pytest.raises(BackendUnavailable) as info:
        pb.import_pyslurm(environ={"SLURM_CONF": "/nonexistent/slurm.conf"},
                          exists=lambda path: False, importer=_no_import)
    assert "SLURM_CONF=/nonexistent/slurm.conf" in str(info.value) and "\n" not in str(info.value)


def test_no_config_anywhere_is_backend_unavailable_without_importing():
    with pytest.raises(BackendUnavailable, match="SLURM_CONF is unset"):
        pb.import_pyslurm(environ={}, exists=lambda path: False, importer=_no_import)


def test_default_config_path_is_enough():
    module = pb.import_pyslurm(environ={}, exists=lambda path: path == "/etc/slurm/slurm.conf",
                               importer=lambda name: SimpleNamespace(name=name))
    assert module.name == "pyslurm"


def test_scheduler_with_bad_slurm_conf_raises_backend_unavailable(monkeypatch):
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    with pytest.raises(BackendUnavailable, match="SLURM_CONF"):
        pb.PyslurmScheduler()


def test_import_error_carries_pyslurms_text_on_one_line():
    def broken(name):
        raise ImportError("libslurm.so.43: cannot open shared object file:\n  No such file or directory")

    with pytest.raises(BackendUnavailable) as info:
        pb.import_pyslurm(environ={"SLURM_CONF": "/etc/slurm.conf"}, exists=lambda p: True, importer=broken)
    message = str(info.value)
    assert "libslurm.so.43: cannot open shared object file: No such file or directory" in message
    assert "\n" not in message and "ImportError" in message


def test_other_pyslurm_series_is_refused(standin):
    fake = SimpleNamespace(__version__="24.11.0", Job=object, Jobs=object,
                           JobSubmitDescription=object, RPCError=Exception, db=object)
    with pytest.raises(BackendUnavailable, match="24.11.0"):
        pb.PyslurmScheduler(pyslurm_module=fake)


def test_module_import_is_cheap_and_backend_has_no_subprocess():
    code = ("import sys; import ot_hpc.scheduler.pyslurm_backend; "
            "assert 'pyslurm' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    source = open(pb.__file__).read()
    for forbidden in ("import subprocess", "from subprocess", "os.system", "os.popen", "Popen"):
        assert forbidden not in source


# -- error mapping and filtering with a fake module ------------------------------------------
class FakeRPCError(Exception):
    def __init__(self, errno=-1, msg=None):
        self.errno, self.msg = errno, msg
        super().__init__(msg)


def fake_module(**overrides):
    class Job:
        calls = []

        def __init__(self, job_id):
            self.job_id = job_id

        @staticmethod
        def load(job_id):
            raise FakeRPCError(2017, "Invalid job id specified")

        def cancel(self):
            Job.calls.append(("cancel", self.job_id))

        def requeue(self, hold=False):
            Job.calls.append(("requeue", self.job_id, hold))

        def release(self):
            Job.calls.append(("release", self.job_id))

    class Collection:
        def __init__(self, items):
            self.items = items

        def values(self):
            return list(self.items)

    db = SimpleNamespace(
        JobFilter=lambda **kw: SimpleNamespace(**kw),
        Jobs=SimpleNamespace(load=lambda db_filter=None: Collection([])),
    )
    module = SimpleNamespace(
        __version__="25.11.2", Job=Job, Jobs=SimpleNamespace(load=lambda: Collection([])),
        JobSubmitDescription=lambda **kw: SimpleNamespace(submit=lambda: 99), RPCError=FakeRPCError,
        PyslurmError=Exception, db=db, Collection=Collection,
        SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR=1800, ESLURM_INVALID_JOB_ID=2017,
    )
    for key, value in overrides.items():
        setattr(module, key, value)
    return module


def fake_passwd(calls=None):
    """getpwnam/getpwuid over PASSWD, recording each lookup in ``calls``."""
    calls = [] if calls is None else calls
    names = {uid: name for name, uid in PASSWD.items()}

    def getpwnam(name):
        calls.append(("getpwnam", name))
        return SimpleNamespace(pw_name=name, pw_uid=PASSWD[name])

    def getpwuid(uid):
        calls.append(("getpwuid", uid))
        return SimpleNamespace(pw_name=names[uid], pw_uid=uid)

    return SimpleNamespace(getpwnam=getpwnam, getpwuid=getpwuid, calls=calls)


def scheduler_for(module, passwd=None):
    sleeps = []
    sched = pb.PyslurmScheduler(pyslurm_module=module, sleep=sleeps.append,
                                passwd=passwd or fake_passwd())
    return sched, sleeps


def test_unreachable_controller_retries_then_raises():
    module = fake_module()

    def down(job_id):
        raise FakeRPCError(1800, "Unable to contact slurm controller (connect failure)")

    module.Job.load = staticmethod(down)
    sched, sleeps = scheduler_for(module)
    with pytest.raises(ControllerUnreachable, match="connect failure"):
        sched.get_job(5)
    assert sleeps == list(pb.RETRY_PAUSES_SECONDS)


def test_controller_back_after_a_retry():
    module = fake_module()
    attempts = []

    def flaky(job_id):
        attempts.append(job_id)
        if len(attempts) == 1:
            raise FakeRPCError(1800, "Unable to contact slurm controller (connect failure)")
        return live_job(id=job_id)

    module.Job.load = staticmethod(flaky)
    sched, sleeps = scheduler_for(module)
    assert sched.get_job(5).job_id == 5 and sleeps == [0.2]


def test_refused_submission_is_one_line_scheduler_error():
    def submit():
        raise FakeRPCError(2000, "Invalid partition name specified\n(extra line)")

    module = fake_module(JobSubmitDescription=lambda **kw: SimpleNamespace(submit=submit))
    sched, sleeps = scheduler_for(module)
    with pytest.raises(SchedulerError) as info:
        sched.submit(make_request(partition="nope"))
    assert not isinstance(info.value, ControllerUnreachable)
    assert str(info.value) == "Batch job submission failed: Invalid partition name specified (extra line)"
    assert "\n" not in str(info.value) and sleeps == []


def test_submit_receive_failure_is_not_retried():
    calls = []

    def submit():
        calls.append(1)
        raise FakeRPCError(1802, "Unable to contact slurm controller (receive failure)")

    module = fake_module(JobSubmitDescription=lambda **kw: SimpleNamespace(submit=submit))
    sched, _ = scheduler_for(module)
    with pytest.raises(SchedulerError):
        sched.submit(make_request())
    assert calls == [1]  # the job may exist: never submit twice


def test_submit_returns_the_id_and_passes_kwargs():
    seen = {}

    def description(**kw):
        seen.update(kw)
        return SimpleNamespace(submit=lambda: 1234)

    sched, _ = scheduler_for(fake_module(JobSubmitDescription=description))
    assert sched.submit(make_request(hold=True)) == 1234
    assert seen["priority"] == 0 and seen["ntasks"] == 2


def test_get_job_falls_back_to_accounting_and_none():
    module = fake_module()
    filters = []

    def load(db_filter=None):
        filters.append(db_filter)
        return module.Collection([db_job(id=5)])

    module.db.Jobs.load = load
    sched, _ = scheduler_for(module)
    record = sched.get_job(5)
    assert record.job_id == 5 and record.extra["source"] == "accounting"
    assert filters[0].ids == [5]
    assert sched.get_job(6) is None


def test_get_job_without_accounting_is_none():
    module = fake_module()

    def load(db_filter=None):
        raise FakeRPCError(-1, "Failed to get Jobs from slurmdbd")

    module.db.Jobs.load = load
    sched, _ = scheduler_for(module)
    assert sched.get_job(5) is None


def test_list_jobs_filters_users_accounts_and_states():
    module = fake_module()
    jobs = [live_job(id=1, user_name="alice"), live_job(id=2, user_name="bob"),
            live_job(id=3, user_name="alice", state="COMPLETED"),
            live_job(id=4, user_name="alice", account="other", state="PENDING")]
    module.Jobs = SimpleNamespace(load=lambda: module.Collection(jobs))
    sched, _ = scheduler_for(module)
    assert [r.job_id for r in sched.list_jobs(user="alice")] == [1, 4]
    assert [r.job_id for r in sched.list_jobs(user="alice", include_finished=True)] == [1, 3, 4]
    assert [r.job_id for r in sched.list_jobs(account="proj")] == [1, 2]
    assert [r.job_id for r in sched.list_jobs(user="alice", account="other")] == [4]
    assert [r.job_id for r in sched.list_jobs()] == [1, 2, 4]
    assert [r.user for r in sched.list_jobs()] == ["alice", "bob", "alice"]


class TrackedJob:
    """A live pyslurm.Job that records every attribute read. ``user_name`` (a passwd
    lookup per read) and ``run_time_remaining`` (recomputes run_time) raise: the backend
    must never need them for a listing."""

    FORBIDDEN = ("user_name", "run_time_remaining")

    def __init__(self, reads, **changes):
        self._reads = reads
        self._values = vars(live_job(**changes))

    def __getattr__(self, name):
        self._reads.append((self._values["id"], name))
        if name in self.FORBIDDEN:
            raise AssertionError(f"job {self._values['id']}: {name} read")
        return self._values[name]


def queue_of_others(reads, others=5000, ours=(("alice", "RUNNING"), ("alice", "PENDING"))):
    """``others`` jobs of bob and carol, then ours (ids from 10**6)."""
    jobs = [TrackedJob(reads, id=i, user_name="bob" if i % 2 else "carol", state="PENDING",
                       account="other-team") for i in range(1, others + 1)]
    jobs += [TrackedJob(reads, id=10**6 + i, user_name=user, state=state)
             for i, (user, state) in enumerate(ours)]
    return jobs


def listing_scheduler(jobs):
    module = fake_module()
    loads = []

    def load():
        loads.append(1)
        return module.Collection(jobs)

    module.Jobs = SimpleNamespace(load=load)
    passwd = fake_passwd()
    sched, _ = scheduler_for(module, passwd)
    return sched, passwd, loads


def test_other_users_jobs_are_compared_by_uid_and_never_converted():
    reads = []
    sched, passwd, loads = listing_scheduler(queue_of_others(reads))
    records = sched.list_jobs(user="alice")
    assert [(r.job_id, r.user, r.state) for r in records] == [
        (10**6, "alice", JobState.RUNNING), (10**6 + 1, "alice", JobState.PENDING)]
    foreign = {name for job_id, name in reads if job_id < 10**6}
    assert foreign == {"user_id"}  # one int read each: no name, no account, no state
    assert not [name for _, name in reads if name in TrackedJob.FORBIDDEN]
    assert passwd.calls == [("getpwnam", "alice")] and loads == [1]  # resolved once, one RPC
    ours = [name for job_id, name in reads if job_id == 10**6]
    assert len(ours) == len(set(ours))  # each attribute of a kept job read once


def test_account_listing_reads_accounts_and_asks_passwd_once_per_owner():
    reads = []
    jobs = queue_of_others(reads, others=300, ours=(("alice", "RUNNING"), ("bob", "PENDING"),
                                                     ("alice", "COMPLETED")))
    sched, passwd, _ = listing_scheduler(jobs)
    records = sched.list_jobs(account="proj")
    assert [(r.job_id, r.user) for r in records] == [(10**6, "alice"), (10**6 + 1, "bob")]
    assert {name for job_id, name in reads if job_id < 10**6} == {"account"}
    assert sorted(passwd.calls) == [("getpwuid", 1001), ("getpwuid", 1002)]
    assert not [name for _, name in reads if name in TrackedJob.FORBIDDEN]


def test_unknown_user_lists_nothing_like_squeue_without_asking_slurm():
    # CommandScheduler: `squeue -u no-such-user` prints "Invalid user" and lists nothing
    # (exit 0), so list_jobs gives []; digits are no uid there either (squeue -u 99999).
    sched, passwd, loads = listing_scheduler(queue_of_others([], others=3))
    assert sched.list_jobs(user="no-such-user") == []
    assert sched.list_jobs(user="1001") == []
    assert sched.list_jobs(user="no-such-user", account="proj", include_finished=True) == []
    assert loads == []


def test_user_names_of_uids_passwd_does_not_know_are_the_uid():
    # uid_to_name (helpers.pyx:46): the uid as a string; NO_VAL/INFINITE: None.
    passwd = fake_passwd()
    name_of = pl.name_lookup(passwd.getpwuid)
    assert name_of(4242) == "4242" and name_of(None) == "" and name_of("UNLIMITED") == ""
    assert name_of(1001) == name_of(1001) == "alice" and name_of(True) == ""
    assert passwd.calls == [("getpwuid", 4242), ("getpwuid", 1001)]  # once per uid


def test_uid_of_user_only_for_login_names():
    passwd = fake_passwd()
    assert pl.uid_of_user("bob", passwd.getpwnam) == 1002
    assert pl.uid_of_user("nobody-here", passwd.getpwnam) is None
    assert pl.uid_of_user("1002", passwd.getpwnam) is None  # squeue -u 1002 names no one


def test_standin_listing_compares_user_id_without_user_name(standin, monkeypatch):
    lines = [{"JobId": str(i), "JobName": f"j{i}", "UserId": f"x({uid})", "Account": "local",
              "JobState": "PENDING", "Reason": "JobHeldUser", "TimeLimit": "00:05:00",
              "NumNodes": "1"} for i, uid in ((1, 0), (2, 65534), (3, 0))]
    monkeypatch.setattr(standin.Jobs, "load", staticmethod(lambda *a, **k: _standin_jobs(standin, lines)))

    def refuse(self):
        raise AssertionError("user_name read")

    monkeypatch.setattr(standin.Job, "user_name", property(refuse))
    sched = pb.PyslurmScheduler(pyslurm_module=standin, passwd=fake_passwd_with_root())
    assert [(r.job_id, r.user) for r in sched.list_jobs(user="root")] == [(1, "root"), (3, "root")]


def _standin_jobs(standin, lines):
    jobs = standin.Jobs()
    for fields in lines:
        job = standin.Job._from_fields(fields)
        jobs._add(job.cluster, job.id, job)
    return jobs


def fake_passwd_with_root():
    return SimpleNamespace(getpwnam=lambda name: SimpleNamespace(pw_uid={"root": 0}[name]),
                           getpwuid=lambda uid: SimpleNamespace(pw_name={0: "root"}[uid]))


def test_list_finished_jobs_window_user_states_newest_first():
    module = fake_module()
    filters = []
    rows = [
        db_job(id=1, end_time=EPOCH + 10),
        db_job(id=2, end_time=EPOCH + 50, state="COMPLETED", exit_code=0),
        db_job(id=3, end_time=EPOCH + 30, user_name="bob"),
        db_job(id=4, end_time=None, state="RUNNING"),
        db_job(id=5, end_time=EPOCH + 5000),  # ended after the window
        db_job(id=6, end_time=EPOCH - 5000),  # ended before the window
    ]

    def load(db_filter=None):
        filters.append(db_filter)
        return module.Collection(rows)

    module.db.Jobs.load = load
    sched, _ = scheduler_for(module)
    start, end = local(EPOCH), local(EPOCH + 100)
    assert [r.job_id for r in sched.list_finished_jobs("alice", start, end)] == [2, 1]
    assert [r.job_id for r in sched.list_finished_jobs(None, start, end)] == [2, 3, 1]
    assert filters[0].start_time == EPOCH and filters[0].end_time >= EPOCH + 100
    assert not hasattr(filters[0], "users")  # root would be silently dropped
    # A uid passwd does not know is named by its number (uid_to_name), as before.
    rows.append(db_job(id=8, end_time=EPOCH + 20, user_id=4242, user_name="4242"))
    assert [r.job_id for r in sched.list_finished_jobs("4242", start, end)] == [8]
    assert [r.user for r in sched.list_finished_jobs(None, start, end)] == ["alice", "bob", "4242", "alice"]


class NamelessDbJob(SimpleNamespace):
    @property
    def user_name(self):
        raise AssertionError(f"user_name of accounting job {self.id} read")


def test_list_finished_jobs_compares_uids_and_never_reads_user_name():
    module = fake_module()
    rows = [NamelessDbJob(**{**vars(db_job(id=i, end_time=EPOCH + i)), "user_id": 1002})
            for i in range(1, 200)]
    rows.append(NamelessDbJob(**{**vars(db_job(id=500, end_time=EPOCH + 50)), "user_id": 1001}))
    for row in rows:
        del row.__dict__["user_name"]
    module.db.Jobs.load = lambda db_filter=None: module.Collection(rows)
    passwd = fake_passwd()
    sched, _ = scheduler_for(module, passwd)
    found = sched.list_finished_jobs("alice", local(EPOCH), local(EPOCH + 1000))
    assert [(r.job_id, r.user) for r in found] == [(500, "alice")]
    assert passwd.calls == [("getpwnam", "alice")]


def test_list_finished_jobs_without_accounting():
    module = fake_module()

    def load(db_filter=None):
        raise FakeRPCError(-1, "Failed to open onnection to slurmdbd")

    module.db.Jobs.load = load
    sched, _ = scheduler_for(module)
    with pytest.raises(AccountingUnavailable, match="slurmdbd"):
        sched.list_finished_jobs("alice", local(EPOCH), local(EPOCH) + timedelta(hours=1))


def test_controls_call_the_real_method_names():
    module = fake_module()
    sched, _ = scheduler_for(module)
    sched.cancel(3)
    sched.requeue(3)
    sched.release(3)
    assert module.Job.calls == [("cancel", 3), ("requeue", 3, False), ("release", 3)]


def test_control_error_is_scheduler_error():
    module = fake_module()

    def requeue(self, hold=False):
        raise FakeRPCError(2037, "Requested operation is presently disabled")

    module.Job.requeue = requeue
    sched, _ = scheduler_for(module)
    with pytest.raises(SchedulerError, match="presently disabled"):
        sched.requeue(3)


# -- what the dry run shows: the JobSubmitDescription this backend would build -------------
API_DOC = os.path.join(REPO, "docs", "pyslurm-25.11.2-api.md")


def test_submit_description_lines_name_real_job_submit_description_fields(standin):
    request = make_request(
        cpus_per_task=72, gpus_per_node=1, memory_per_node_mb=4096, partition="gh",
        account="CCR24067", qos="normal", exclude_nodes=("n3",), output_path="/exp/logs/j_%j.log",
        working_directory="/exp", signal_name="USR2", signal_seconds_before_end=300,
        requeue=True, append_output=True, hold=True,
    )
    lines = pc.submit_description_lines(request)
    assert lines[0] == "# pyslurm.JobSubmitDescription(" and lines[-1] == "# )"
    body = lines[1:-1]
    assert all(line.startswith("#     ") and line.endswith(",") and "=" in line for line in body)
    names = [line[len("#     "):].split("=", 1)[0] for line in body]
    assert names == sorted(pc.submit_kwargs(request)) and names == sorted(names)
    documented = open(API_DOC).read()
    for name in names:
        assert name in standin._submission_module.PUBLIC_ATTRIBUTES, name
        assert f"`{name}`" in documented, name
    assert "#     nodes=2," in body and "#     partitions='gh'," in body
    assert "#     priority=0," in body and "#     signal='B:SIGUSR2@300'," in body
    # the script and the environment are shown elsewhere in the dry run
    assert "#     script=...," in body and "#     environment=...," in body
    assert not any("srun hostname" in line or "MARK" in line for line in lines)


def test_pyslurm_scheduler_describes_without_calling_pyslurm():
    def refuse(**kwargs):
        raise AssertionError("JobSubmitDescription built for a description")

    sched, _ = scheduler_for(fake_module(JobSubmitDescription=refuse))
    request = make_request(partition="gpu")
    assert sched.describe_submission(request) == pc.submit_description_lines(request)
