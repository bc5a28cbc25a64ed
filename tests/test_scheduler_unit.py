"""Pure logic of the scheduler layer: state taxonomy, durations, hostlists, parsers."""
from datetime import datetime
from pathlib import Path

import pytest

from ot_hpc.durations import (
    format_duration,
    parse_duration_seconds,
    parse_slurm_timestamp,
    parse_time_limit_minutes,
)
from ot_hpc.hostlist import expand_hostlist
from ot_hpc.scheduler import JobRequest, JobState, normalize_state
from ot_hpc.scheduler.commands import CommandScheduler, sbatch_arguments, sbatch_lines
from ot_hpc.scheduler.output_path import expand_output_pattern, job_output_path
from ot_hpc.scheduler.slurm_text import (
    DELIMITER,
    SACCT_FIELDS,
    clean_slurm_message,
    decode_squeue_exit,
    decode_wait_status,
    parse_exit_code,
    parse_sacct,
    parse_scontrol_fields,
    parse_squeue,
    record_from_scontrol,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("PENDING", JobState.PENDING),
        ("PD", JobState.PENDING),
        ("running", JobState.RUNNING),
        ("R", JobState.RUNNING),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("OUT_OF_ME+", JobState.OUT_OF_MEMORY),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("TIMEOUT", JobState.TIMEOUT),
        ("NODE_FAIL", JobState.NODE_FAIL),
        ("BOOT_FAIL", JobState.BOOT_FAIL),
        ("PREEMPTED", JobState.PREEMPTED),
        ("DEADLINE", JobState.DEADLINE),
        ("REQUEUED", JobState.REQUEUED),
        ("REQUEUE_HOLD", JobState.REQUEUED),
        ("SUSPENDED", JobState.SUSPENDED),
        ("COMPLETING", JobState.COMPLETING),
        ("COMPLETED", JobState.COMPLETED),
        ("CONFIGURING", JobState.PENDING),
        ("RESIZING", JobState.RUNNING),
        ("SPECIAL_EXIT", JobState.REQUEUED),
        ("SE", JobState.REQUEUED),
        ("RESV_DEL_HOLD", JobState.PENDING),
        ("SIGNALING", JobState.RUNNING),
        ("STAGE_OUT", JobState.COMPLETING),
        ("REVOKED", JobState.UNKNOWN),
        ("", JobState.UNKNOWN),
        (None, JobState.UNKNOWN),
        ("something new in Slurm 27", JobState.UNKNOWN),
        ("   ", JobState.UNKNOWN),
    ],
)
def test_normalize_state(raw, expected):
    assert normalize_state(raw) is expected


def test_state_groups_are_disjoint_and_cover_the_taxonomy():
    active = {s for s in JobState if s.is_active}
    finished = {s for s in JobState if s.is_finished}
    assert not active & finished
    assert set(JobState) - active - finished == {JobState.UNKNOWN}
    assert JobState.FAILED.is_failure and not JobState.CANCELLED.is_failure
    assert not JobState.COMPLETED.is_failure


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("5", 300),
        ("05:30", 330),
        ("1:00:00", 3600),
        ("24:00:00", 86400),
        ("2-00", 2 * 86400),
        ("1-02:03", 86400 + 2 * 3600 + 3 * 60),
        ("1-02:03:04", 86400 + 7384),
        ("UNLIMITED", None),
        ("Partition_Limit", None),
        ("N/A", None),
        (None, None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["abc", "1:2:3:4", "10:75", "1-25:00:00", "-5", "1.5"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration_seconds(bad)


def test_time_limit_minutes_rounds_up_and_formats():
    assert parse_time_limit_minutes("00:00:30") == 1
    assert parse_time_limit_minutes("90") == 90
    assert format_duration(90061) == "1-01:01:01"
    assert format_duration(59) == "00:00:59"
    assert format_duration(None) == "-"


def test_timestamps():
    assert parse_slurm_timestamp("Unknown") is None
    assert parse_slurm_timestamp("N/A") is None
    stamp = parse_slurm_timestamp("2026-11-28T21:10:13")
    assert stamp.tzinfo is not None and stamp.replace(tzinfo=None) == datetime(2026, 11, 28, 21, 10, 13)


@pytest.mark.parametrize(
    "text, names",
    [
        ("n[1-3]", ["n1", "n2", "n3"]),
        ("jrc[0001-0002,0010],jwb0042", ["jrc0001", "jrc0002", "jrc0010", "jwb0042"]),
        ("c608-[021-022].vista", ["c608-021.vista", "c608-022.vista"]),
        ("a[1-2]b[3-4]", ["a1b3", "a1b4", "a2b3", "a2b4"]),
        ("", []),
        ("single", ["single"]),
    ],
)
def test_expand_hostlist(text, names):
    assert expand_hostlist(text) == names


@pytest.mark.parametrize("bad", ["n[1-3", "n1-3]", "n[3-1]", "n[a-b]"])
def test_expand_hostlist_rejects(bad):
    with pytest.raises(ValueError):
        expand_hostlist(bad)


def test_parse_exit_code():
    assert parse_exit_code("3:0") == (3, 0)
    assert parse_exit_code("0:15") == (0, 15)
    assert parse_exit_code("") == (None, None)


def test_parse_squeue_line():
    line = DELIMITER.join(
        ["42", "my job|with bar", "alice", "PENDING", "JobHeldUser", "gpu", "proj", "2", "",
         "1:00:00", "0:00", "1:00:00", "2026-11-28T21:10:13", "N/A", "N/A", "/logs/%x_%j.log", "0", "0", ""]
    )
    (record,) = parse_squeue(line + "\n\n")
    assert record.job_id == 42 and record.name == "my job|with bar" and record.user == "alice"
    assert record.state is JobState.PENDING and record.reason == "JobHeldUser"
    assert record.node_count == 2 and record.node_list == "" and record.time_limit_minutes == 60
    assert record.start_time is None and record.time_left_seconds == 3600
    assert record.stdout_path == "/logs/my job|with bar_42.log" and record.exit_code is None


def test_parse_squeue_finished_job_decodes_wait_status():
    line = DELIMITER.join(
        ["6", "fail", "root", "FAILED", "NonZeroExitCode", "debug", "local", "1", "n1", "5:00",
         "0:03", "INVALID", "2026-11-28T21:15:04", "2026-11-28T21:15:07", "2026-11-28T21:15:10",
         "/tmp/fail-%j.out", "1", "768", ""]
    )
    (record,) = parse_squeue(line)
    assert record.exit_code == 3 and record.exit_signal == 0 and record.restart_count == 1
    assert record.time_left_seconds is None and record.end_time is not None
    assert decode_wait_status("15") == (0, 15)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("/l/%x_%j.log", "/l/train_77.log"),
        ("/l/slurm-%A.out", "/l/slurm-77.out"),
        ("/l/%u/%N-%5j.out", "/l/root/n1-00077.out"),
        ("/l/100%%-%j", "/l/100%-77"),
        ("/l/%q-unknown", "/l/%q-unknown"),
        ("/already/expanded_77.log", "/already/expanded_77.log"),
    ],
)
def test_expand_output_pattern(pattern, expected):
    assert expand_output_pattern(pattern, 77, "train", "root", "n[1-2]") == expected


def test_parse_sacct_line():
    values = ["7", "train", "bob", "CANCELLED by 0", "None", "debug", "acct", "1", "n1",
              "5", "12", "2026-11-28T21:00:00", "2026-11-28T21:00:01", "2026-11-28T21:00:13", "0:15"]
    assert len(values) == len(SACCT_FIELDS)
    (record,) = parse_sacct(DELIMITER.join(values))
    assert record.state is JobState.CANCELLED and record.exit_signal == 15
    assert record.elapsed_seconds == 12 and record.reason is None and record.time_limit_minutes == 5


def test_parse_scontrol_with_spaces_in_values():
    line = ("JobId=9 JobName=a name with spaces UserId=root(0) GroupId=root(0) JobState=FAILED "
            "Reason=NonZeroExitCode Dependency=(null) Restarts=2 ExitCode=3:0 RunTime=00:00:05 "
            "TimeLimit=00:10:00 SubmitTime=2026-11-28T21:00:00 StartTime=2026-11-28T21:00:01 "
            "EndTime=2026-11-28T21:00:06 Partition=debug NodeList=n[1-2] NumNodes=2 "
            "TRES=cpu=2,mem=200M,node=2 StdOut=/tmp/out dir/x.log Account=(null)")
    fields = parse_scontrol_fields(line)
    assert fields["JobName"] == "a name with spaces" and fields["TRES"] == "cpu=2,mem=200M,node=2"
    record = record_from_scontrol(fields)
    assert record.user == "root" and record.exit_code == 3 and record.restart_count == 2
    assert record.stdout_path == "/tmp/out dir/x.log" and record.account is None
    assert record.node_list == "n[1-2]" and record.end_time is not None and record.time_left_seconds is None


def _request(**changes):
    base = dict(script="#!/bin/bash\ntrue\n", name="t", nodes=2, time_limit_minutes=30,
                environment={"PATH": "/usr/bin"})
    base.update(changes)
    return JobRequest(**base)


def test_sbatch_arguments():
    args = sbatch_arguments(_request(gpus_per_node=4, partition="gpu", exclude_nodes=("n3", "n4"),
                                     signal_name="USR2", signal_seconds_before_end=300, requeue=True,
                                     hold=True, qos="normal", append_output=True))
    assert "--nodes=2" in args and "--ntasks=2" in args and "--ntasks-per-node=1" in args
    assert "--gres=gpu:4" in args and "--exclude=n3,n4" in args and "--signal=B:USR2@300" in args
    assert "--open-mode=append" in args and "--open-mode=append" not in sbatch_arguments(_request())
    assert "--requeue" in args and "--hold" in args and "--qos=normal" in args and "--time=30" in args


def test_request_rejects_bad_values():
    with pytest.raises(ValueError):
        _request(script="echo no shebang")
    with pytest.raises(ValueError):
        _request(nodes=0)


def test_clean_slurm_message():
    stderr = "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n"
    assert clean_slurm_message(stderr) == (
        "invalid partition specified: nope; Batch job submission failed: Invalid partition name specified"
    )


class _FakeProcess:
    def __init__(self, returncode, stdout="", stderr=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def test_cli_retries_while_controller_unreachable_then_fails(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    calls, pauses = [], []

    def run(argv, stdin, env, timeout=None):
        calls.append(argv)
        return _FakeProcess(1, stderr="squeue: error: Unable to contact slurm controller (connect failure)")

    scheduler = CommandScheduler(run=run, sleep=pauses.append)
    from ot_hpc.scheduler import ControllerUnreachable

    with pytest.raises(ControllerUnreachable, match="Unable to contact slurm controller"):
        scheduler.list_jobs(user="alice")
    assert len(calls) == 4 and pauses == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("slurm_conf", [None, "/etc/slurm/site.conf"])
def test_cli_submit_passes_only_the_given_environment(monkeypatch, slurm_conf):
    """Exactly the request's environment, plus SLURM_CONF when this process has one (so
    sbatch finds the cluster): whatever SLURM_CONF the machine running the tests says."""
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    monkeypatch.setenv("SECRET_IN_LOGIN_ENV", "hunter2")
    if slurm_conf is None:
        monkeypatch.delenv("SLURM_CONF", raising=False)
    else:
        monkeypatch.setenv("SLURM_CONF", slurm_conf)
    seen = {}

    def run(argv, stdin, env, timeout=None):
        seen.update(argv=argv, stdin=stdin, env=env)
        return _FakeProcess(0, stdout="123;local\n")

    job_id = CommandScheduler(run=run).submit(_request(environment={"PATH": "/usr/bin", "A": "1"}))
    assert job_id == 123
    expected = {"PATH": "/usr/bin", "A": "1"}
    if slurm_conf:
        expected["SLURM_CONF"] = slurm_conf
    assert seen["env"] == expected
    assert "hunter2" not in " ".join(seen["argv"]) and "--export=ALL" in seen["argv"]
    assert seen["stdin"].startswith("#!")


def test_cli_submit_never_retries_what_may_have_reached_the_controller(monkeypatch):
    import subprocess

    from ot_hpc.scheduler import ControllerUnreachable, SchedulerError

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    calls = []

    def timed_out(argv, stdin, env, timeout=None):
        calls.append(argv)
        raise subprocess.TimeoutExpired(argv, 60)

    with pytest.raises(ControllerUnreachable):
        CommandScheduler(run=timed_out, sleep=lambda s: None).submit(_request())
    assert len(calls) == 1

    calls.clear()

    def zero_bytes(argv, stdin, env, timeout=None):
        calls.append(argv)
        return _FakeProcess(1, stderr="sbatch: error: Batch job submission failed: Zero Bytes were transmitted or received")

    with pytest.raises(SchedulerError):
        CommandScheduler(run=zero_bytes, sleep=lambda s: None).submit(_request())
    assert len(calls) == 1

    calls.clear()
    answers = iter([_FakeProcess(1, stderr="sbatch: error: Unable to contact slurm controller (connect failure)"),
                    _FakeProcess(0, stdout="77\n")])

    def connect_then_ok(argv, stdin, env, timeout=None):
        calls.append(argv)
        return next(answers)

    assert CommandScheduler(run=connect_then_ok, sleep=lambda s: None).submit(_request()) == 77
    assert len(calls) == 2


def test_cli_sacct_does_not_retry_and_reports_no_accounting(monkeypatch):
    from datetime import datetime, timedelta

    from ot_hpc.scheduler import AccountingUnavailable

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    calls = []

    def dbd_down(argv, stdin, env, timeout=None):
        calls.append(argv)
        return _FakeProcess(1, stderr="sacct: error: Problem talking to the database: Connection refused")

    now = datetime.now().astimezone()
    with pytest.raises(AccountingUnavailable):
        CommandScheduler(run=dbd_down, sleep=lambda s: None).list_finished_jobs("alice", now - timedelta(hours=1), now)
    assert len(calls) == 1 and "-s" in calls[0]


# Captured from the local cluster (Slurm 22.05): scontrol show partition -o gpu
_PARTITION_LINE = (
    "PartitionName=gpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO "
    "QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO "
    "MaxNodes=UNLIMITED MaxTime=2-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED "
    "Nodes=n[1-3] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO "
    "OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=6 TotalNodes=3 "
    "SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED "
    "MaxMemPerNode=UNLIMITED TRES=cpu=6,mem=19284M,node=3,billing=6,gres/gpu=12"
)


def test_partition_from_scontrol_line():
    from ot_hpc.scheduler import PartitionInfo
    from ot_hpc.scheduler.slurm_text import parse_scontrol_fields, partition_from_scontrol

    info = partition_from_scontrol(parse_scontrol_fields(_PARTITION_LINE))
    assert info == PartitionInfo("gpu", 3, None, 2880, "UP")
    assert info.node_limit == 3
    limited = _PARTITION_LINE.replace("MaxNodes=UNLIMITED", "MaxNodes=2").replace(
        "MaxTime=2-00:00:00", "MaxTime=UNLIMITED").replace("State=UP", "State=DRAIN")
    info = partition_from_scontrol(parse_scontrol_fields(limited))
    assert (info.max_nodes_per_job, info.max_time_minutes, info.state, info.node_limit) == (2, None, "DRAIN", 2)
    assert partition_from_scontrol(parse_scontrol_fields("Foo=bar")) is None


def test_base_scheduler_get_partition_defaults_to_unknown():
    from ot_hpc.scheduler import Scheduler

    class Minimal(Scheduler):
        submit = get_job = list_jobs = list_finished_jobs = cancel = requeue = release = None

    assert Minimal().get_partition("debug") is None and Minimal().list_partition_names() is None


# -- describing a submission and partition limits through the interface --------------------
GOLDEN_DRY_RUN = Path(__file__).resolve().parent / "golden" / "gsm8k_tacc_vista_dryrun.txt"
# The job request behind the golden dry run (its <TMP> placeholders kept as they are).
GOLDEN_REQUEST = dict(
    script="#!/bin/bash\ntrue\n", name="gsm8k-1.5b-2n-20250301-141502", nodes=2,
    time_limit_minutes=60, environment={"PATH": "/usr/bin"}, cpus_per_task=72, gpus_per_node=0,
    partition="gh", account="CCR24067",
    exclude_nodes=("c610-021", "c611-011", "c640-041", "c611-041", "c611-122", "c637-082",
                   "c637-091", "c610-111"),
    output_path="<TMP>/exp/logs/gsm8k-1.5b-2n-20250301-141502_%j.log",
    working_directory="<TMP>/exp", signal_name="USR2", signal_seconds_before_end=300,
    requeue=True, append_output=True,
)


def test_sbatch_lines_are_the_golden_dry_runs_job_description():
    golden = [line for line in GOLDEN_DRY_RUN.read_text().split("\n") if line.startswith("#SBATCH ")]
    request = JobRequest(**GOLDEN_REQUEST)
    assert sbatch_lines(request) == golden
    assert sbatch_lines(request) == [f"#SBATCH {a}" for a in sbatch_arguments(request)]


def test_command_scheduler_describes_without_running_anything():
    def no_process(argv, stdin, env, timeout=None):
        raise AssertionError(f"ran {argv}")

    request = _request(hold=True, partition="gpu")
    assert CommandScheduler(run=no_process).describe_submission(request) == sbatch_lines(request)


def test_base_scheduler_describes_the_request_fields_without_script_and_environment():
    from ot_hpc.scheduler import Scheduler

    class Minimal(Scheduler):
        submit = get_job = list_jobs = list_finished_jobs = cancel = requeue = release = None

    lines = Minimal().describe_submission(_request(environment={"SECRET_LOOKING": "x"}))
    assert lines[0] == "# JobRequest(" and lines[-1] == "# )"
    assert "#     nodes=2," in lines and "#     script=...," in lines and "#     environment=...," in lines
    assert not any("SECRET_LOOKING" in line or "#!/bin/bash" in line for line in lines)


def _partitions(found=None, names=None, kill_wait=None):
    from ot_hpc.scheduler import Scheduler

    class Partitions(Scheduler):
        submit = get_job = list_jobs = list_finished_jobs = cancel = requeue = release = None

        def get_partition(self, name):
            return found if found is not None and found.name == name else None

        def list_partition_names(self):
            return names

        def kill_wait_seconds(self):
            return kill_wait

    return Partitions()


def test_partition_limits_from_get_partition_and_list_partition_names():
    from ot_hpc.scheduler import PartitionInfo, PartitionLimits

    gpu = PartitionInfo("gpu", total_nodes=3, max_nodes_per_job=None, max_time_minutes=2880, state="UP")
    assert _partitions(gpu, ["debug", "gpu"]).partition_limits("gpu") == PartitionLimits("gpu", 3, 2880)
    small = PartitionInfo("gpu", total_nodes=8, max_nodes_per_job=2, max_time_minutes=None, state="UP")
    assert _partitions(small).partition_limits("gpu") == PartitionLimits("gpu", 2, None)
    missing = _partitions(gpu, ["debug", "gpu"]).partition_limits("nosuch")
    assert missing == PartitionLimits("nosuch", exists=False, available=("debug", "gpu"))
    assert _partitions(None, None).partition_limits("gpu") is None  # the backend cannot tell
    assert _partitions(None, []).partition_limits("gpu") is None
    # The cluster's KillWait travels with the limits (the submit-time shutdown check).
    assert _partitions(gpu, kill_wait=10).partition_limits("gpu").kill_wait_seconds == 10
    assert _partitions(None, ["gpu"], kill_wait=45).partition_limits("x").kill_wait_seconds == 45


def test_kill_wait_from_scontrol_show_config_and_slurm_conf(tmp_path):
    from ot_hpc.scheduler.slurm_text import kill_wait_from_config
    from ot_hpc.scheduler.slurmconf import configured_kill_wait

    text = "Configuration data as of 2026-01-01T00:00:00\nJobRequeue              = 1\nKillWait                = 10 sec\n"
    assert kill_wait_from_config(text) == 10
    assert kill_wait_from_config("KillOnBadExit = 0\n") is None
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\n#KillWait=99\nkillwait = 45 # site\n")
    assert configured_kill_wait({"SLURM_CONF": str(conf)}) == 45
    conf.write_text("ClusterName=x\n")
    assert configured_kill_wait({"SLURM_CONF": str(conf)}) == 30  # Slurm's default
    assert configured_kill_wait({"SLURM_CONF": str(tmp_path / "none.conf")}) is None


def test_slurm_conf_cluster_name_and_which_cluster_it_serves(tmp_path):
    from types import SimpleNamespace

    from ot_hpc.scheduler.slurmconf import configured_cluster_name, serves_cluster

    conf = tmp_path / "slurm.conf"
    conf.write_text("# ClusterName=commented\nSlurmctldHost=c1\n clustername = Vista  # here\n")
    environ = {"SLURM_CONF": str(conf)}
    assert configured_cluster_name(environ) == "Vista"
    assert configured_cluster_name({"SLURM_CONF": str(tmp_path / "missing.conf")}) is None
    vista = SimpleNamespace(name="tacc_vista", slurm_cluster_names=("vista",))
    other = SimpleNamespace(name="leonardo", slurm_cluster_names=("leonardo",))
    assert serves_cluster(vista, environ) and not serves_cluster(other, environ)
    assert not serves_cluster(vista, {"SLURM_CONF": str(tmp_path / "missing.conf")})


@pytest.mark.parametrize("text, expected", [
    ("768", (3, 0)), ("15", (0, 15)), ("0", (0, 0)),  # 22.05: a raw wait status
    ("3:0", (3, 0)), ("0:9", (0, 9)), ("0:0", (0, 0)),  # 23.02 on: exit:signal
    ("", (None, None)), (None, (None, None)),
])
def test_squeue_exit_code_in_both_forms(text, expected):
    assert decode_squeue_exit(text) == expected


@pytest.mark.parametrize("pattern, node_list, work_dir, expected", [
    ("slurm-%j.out", "n1", "/w", "/w/slurm-77.out"),  # 25.11's squeue: relative, unexpanded
    ("/w/%x_%j.log", "n1", "/elsewhere", "/w/train_77.log"),  # 22.05's squeue: absolute
    ("/w/%x_%A_%a.out", "", "/w", "/w/train_77_4294967294.out"),  # %a of a non-array job
    ("/w/train_77_%N.out", "", "/w", "/w/train_77_%N.out"),  # pending: no node, no log yet
    ("/w/train_77_100%%.out", "n2", "/w", "/w/train_77_100%.out"),  # scontrol leaves %%
    ("rel.out", "n1", None, "rel.out"),
    (None, "n1", "/w", None),
])
def test_job_output_path(pattern, node_list, work_dir, expected):
    assert job_output_path(pattern, 77, "train", "root", node_list, work_dir) == expected
