"""Shared-node detection for the egress WARNING: what scontrol says, decided purely."""
from ot_hpc.runner import egress
from ot_hpc.runner.sharing import decide, shared_nodes

JOB_OK = "JobId=7 JobName=a b UserId=u(1) Partition=debug OverSubscribe=OK Contiguous=0 NodeList=n[1-2]"


def fake(job_line, partition_line=None):
    calls = []

    def run(argv):
        calls.append(list(argv))
        return job_line if argv[2] == "job" else partition_line

    return run, calls


def test_exclusive_job_is_alone_in_one_call():
    run, calls = fake(JOB_OK.replace("OverSubscribe=OK", "OverSubscribe=NO"))
    assert shared_nodes("7", run) is None
    assert calls == [["scontrol", "show", "job", "-o", "7"]]


def test_exclusive_user_job_is_alone():
    run, _ = fake(JOB_OK.replace("OverSubscribe=OK", "OverSubscribe=USER"))
    assert shared_nodes("7", run) is None


def test_shareable_job_in_a_shared_partition_is_shared():
    run, calls = fake(JOB_OK, "PartitionName=debug OverSubscribe=NO ExclusiveUser=NO State=UP")
    why = shared_nodes("7", run)
    assert "OverSubscribe=OK" in why and "partition debug" in why and "--exclusive" in why
    assert calls[1] == ["scontrol", "show", "partition", "-o", "debug"]


def test_exclusive_partitions_keep_other_users_out():
    for partition in ("PartitionName=p OverSubscribe=EXCLUSIVE ExclusiveUser=NO",
                      "PartitionName=p OverSubscribe=NO ExclusiveUser=YES"):
        run, _ = fake(JOB_OK, partition)
        assert shared_nodes("7", run) is None


def test_no_answer_counts_as_maybe_shared_and_is_never_fatal():
    run, _ = fake(None)
    assert "did not say" in shared_nodes("7", run)
    run, _ = fake(JOB_OK, None)  # the partition lookup failed: the job's own answer decides
    assert "OverSubscribe=OK" in shared_nodes("7", run)


def test_decide_reads_the_old_shared_field_too():
    assert decide({"Shared": "NO"}, None) is None
    assert decide({"OverSubscribe": "MCS", "Partition": "p"}, None).startswith("the job's OverSubscribe=MCS")


def test_the_warning_line(monkeypatch):
    monkeypatch.setattr("ot_hpc.runner.sharing._scontrol", lambda argv: JOB_OK if argv[2] == "job" else None)
    line = egress.shared_node_warning("7")
    assert line.startswith("WARNING: other users' jobs may share these nodes: the job's OverSubscribe=OK")
    assert "127.0.0.1" in line and "password" in line
