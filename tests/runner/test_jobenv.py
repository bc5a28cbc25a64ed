"""JobEnvironment from plain dicts of SLURM_* variables (no Slurm needed)."""
import pytest

from ot_hpc.runner.jobenv import (
    JobEnvironment, NotInSlurmJob, count_visible_gpus, expand_counts, inner_srun_environment,
)

BASE = {
    "SLURM_JOB_ID": "4711",
    "SLURM_JOB_NAME": "gsm8k",
    "SLURM_JOB_NODELIST": "jrc[0001-0003]",
    "SLURMD_NODENAME": "jrc0001",
    "SLURM_JOB_CPUS_PER_NODE": "48(x3)",
    "CUDA_VISIBLE_DEVICES": "0,1,2,3",
    "SLURM_CLUSTER_NAME": "jureca",
}


def test_from_environ_basic():
    job = JobEnvironment.from_environ(BASE)
    assert job.job_id == "4711"
    assert job.nodes == ("jrc0001", "jrc0002", "jrc0003")
    assert job.batch_node == "jrc0001"
    assert job.worker_nodes == ("jrc0002", "jrc0003")
    assert job.cpus_per_node == (48, 48, 48)
    assert job.gpus_per_node == 4
    assert job.restart_count == 0
    assert job.cluster_name == "jureca"
    assert job.num_nodes == 3


def test_batch_node_not_first_is_ordered_first():
    job = JobEnvironment.from_environ({**BASE, "SLURMD_NODENAME": "jrc0002"})
    assert job.ordered_nodes == ("jrc0002", "jrc0001", "jrc0003")


def test_uneven_cpus_and_restart_count():
    env = {**BASE, "SLURM_JOB_CPUS_PER_NODE": "128,64(x2)", "SLURM_RESTART_COUNT": "2"}
    job = JobEnvironment.from_environ(env)
    assert job.cpus_per_node == (128, 64, 64)
    assert job.cpus_on("jrc0003") == 64
    assert job.restart_count == 2


def test_cpus_fall_back_to_cpus_on_node():
    env = {k: v for k, v in BASE.items() if k != "SLURM_JOB_CPUS_PER_NODE"}
    env["SLURM_CPUS_ON_NODE"] = "72"
    assert JobEnvironment.from_environ(env).cpus_per_node == (72, 72, 72)


def test_not_in_a_job():
    with pytest.raises(NotInSlurmJob):
        JobEnvironment.from_environ({"PATH": "/bin"})


@pytest.mark.parametrize("env,count", [
    ({"CUDA_VISIBLE_DEVICES": "0,1,2"}, 3),
    ({"CUDA_VISIBLE_DEVICES": ""}, 0),
    ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 0),
    ({"SLURM_GPUS_ON_NODE": "4"}, 4),
    ({"SLURM_JOB_GPUS": "0,1"}, 2),
    ({"SLURM_GPUS_PER_NODE": "gpu:a100:3"}, 3),
    ({"SLURM_GPUS_PER_NODE": "1"}, 1),
    ({}, 0),
])
def test_gpu_count(env, count):
    assert count_visible_gpus(env) == count


def test_expand_counts():
    assert expand_counts("2(x3),1") == [2, 2, 2, 1]
    assert expand_counts("") == []
    with pytest.raises(ValueError):
        expand_counts("2(y3)")


def test_inner_srun_environment_drops_conflicts_keeps_job():
    env = {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "3", "SLURM_MEM_PER_CPU": "1024",
           "SLURM_EXPORT_ENV": "PATH", "HF_TOKEN": "x", "SLURM_JOB_NODELIST": "n[1-3]"}
    out = inner_srun_environment(env)
    assert out == {"SLURM_JOB_ID": "1", "HF_TOKEN": "x", "SLURM_JOB_NODELIST": "n[1-3]"}
