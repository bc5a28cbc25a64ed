"""How each cluster asks for GPUs (issue 13, "site facts"): GRES where the site schedules
GPUs (JSC, Leonardo, the local cluster), whole nodes where GPUs come with the node (TACC:
``-p gh --nodes N --ntasks-per-node 1 --cpus-per-task=72``, never ``--gres``), Vista's
broken nodes excluded, and Ray's ``--num-gpus`` from what the node has in both styles."""
from __future__ import annotations

import pytest

from ot_hpc.cluster_facts import from_facts, to_facts
from ot_hpc.clusters import ClusterFileError, cluster_from_env_values, get_cluster
from ot_hpc.runner.jobenv import gpus_for_ray
from ot_hpc.scheduler.commands import sbatch_arguments
from ot_hpc.scheduler import pyslurm_convert as pc

from .test_pyslurm_backend_unit import standin  # noqa: F401  (a fixture)
from .test_submission import build, site  # noqa: F401  (a fixture)

VISTA_BROKEN = ("c610-021", "c611-011", "c640-041", "c611-041", "c611-122", "c637-082",
                "c637-091", "c610-111")


@pytest.mark.parametrize("name, style", [
    ("tacc_vista", "none"), ("tacc_lonestar", "none"), ("jsc_jureca", "gres"),
    ("jsc_jupiter", "gres"), ("jsc_juwels", "gres"), ("leonardo", "gres"), ("local", "gres")])
def test_every_cluster_says_how_it_asks_for_gpus(name, style):
    assert get_cluster(name).gpu_request == style


def test_tacc_follows_the_users_scripts():
    vista, lonestar = get_cluster("tacc_vista"), get_cluster("tacc_lonestar")
    assert (vista.partition, vista.cpus_per_node, vista.gpus_per_node) == ("gh", 72, 1)
    assert vista.exclude_nodes == VISTA_BROKEN
    assert (lonestar.partition, lonestar.cpus_per_node, lonestar.gpus_per_node) == ("gpu-a100", 128, 3)


def test_gpu_request_travels_in_the_spec_facts():
    for name in ("tacc_vista", "jsc_jureca", "local"):
        cluster = get_cluster(name)
        assert from_facts(to_facts(cluster)) == cluster
    facts = to_facts(get_cluster("tacc_vista"))
    old = {k: v for k, v in facts.items() if k not in ("gpu_request", "gpu_devices")}
    assert from_facts(old).gpu_request == "gres"  # facts written before the field: as before
    with pytest.raises(ValueError, match="gpu_request 'gpus'"):
        from_facts({**facts, "gpu_request": "gpus"})


def test_cluster_file_sets_the_style_and_refuses_a_typo():
    base = get_cluster("local")
    made = cluster_from_env_values("whole", {"CLUSTER_GPU_REQUEST": "None"}, base, "whole.env")
    assert made.gpu_request == "none" and made.gpu_devices == base.gpu_devices
    with pytest.raises(ClusterFileError, match="CLUSTER_GPU_REQUEST='gpu'.*not one of gres, none"):
        cluster_from_env_values("bad", {"CLUSTER_GPU_REQUEST": "gpu"}, base, "bad.env")


def test_vista_request_has_no_gres_and_excludes_the_broken_nodes_in_both_backends(site):  # noqa: F811
    request = build(site, "gsm8k.env", {"CLUSTER": "tacc_vista"}).job_request
    args = sbatch_arguments(request)
    assert not any(a.startswith("--gres") for a in args)
    for wanted in ("--partition=gh", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=72",
                   "--exclude=" + ",".join(VISTA_BROKEN)):
        assert wanted in args
    kwargs = pc.submit_kwargs(request)
    assert "gres_per_node" not in kwargs and "tres_per_node" not in kwargs
    assert kwargs["excluded_nodes"] == list(VISTA_BROKEN)
    assert kwargs["partitions"] == "gh" and kwargs["cpus_per_task"] == 72


def test_pyslurm_field_names_are_real_ones(standin, site):  # noqa: F811
    for config, cluster in (("gsm8k.env", "tacc_vista"), ("demo.env", "local")):
        request = build(site, config, {"CLUSTER": cluster, "GPUS_PER_NODE": "1",
                                       "EXCLUDE_NODES": "n3"}).job_request
        for name in pc.submit_kwargs(request):
            assert name in standin._submission_module.PUBLIC_ATTRIBUTES, name


def test_gres_cluster_still_requests_gres(site):  # noqa: F811
    request = build(site, "demo.env", {"CLUSTER": "local", "GPUS_PER_NODE": "2"}).job_request
    assert "--gres=gpu:2" in sbatch_arguments(request)
    assert pc.submit_kwargs(request)["gres_per_node"] == "gpu:2"


DEVICES = ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2"]


@pytest.mark.parametrize("environ, style, devices, expected", [
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, "gres", DEVICES, 2),  # what Slurm gave
    ({}, "gres", DEVICES, 0),  # asked for none: has none, whatever the node holds
    ({"SLURM_GPUS_ON_NODE": "4"}, "gres", [], 4),
    ({}, "none", DEVICES, 3),  # whole node: its devices
    ({}, "none", DEVICES + ["/dev/nvidia0"], 3),
    ({}, "none", [], 0),  # a whole CPU node
    ({"CUDA_VISIBLE_DEVICES": "0"}, "none", DEVICES, 1),  # the site set it anyway: trust it
    ({"CUDA_VISIBLE_DEVICES": ""}, "none", DEVICES, 3),
])
def test_ray_gets_what_the_node_has(environ, style, devices, expected):
    assert gpus_for_ray(environ, style, devices) == expected
