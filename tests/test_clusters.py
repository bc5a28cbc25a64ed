"""Cluster registry and detection: a table of real login and compute hostnames."""
from __future__ import annotations

import pytest

from ot_hpc import clusters
from ot_hpc.cluster_facts import from_facts, interconnect_hostname, to_facts
from ot_hpc.clusters import (
    ClusterFileError,
    ClusterNotFound,
    detect_cluster,
    get_cluster,
    known_clusters,
)

# (hostname as `hostname` prints it, FQDN, expected cluster)
HOSTS = [
    ("jrlogin05", "jrlogin05.jureca", "jsc_jureca"),
    ("jrlogin05.jureca", "jrlogin05.jureca", "jsc_jureca"),
    ("jrlogin12", "jrlogin12.jureca.fz-juelich.de", "jsc_jureca"),
    ("jrc0123", "jrc0123.jureca", "jsc_jureca"),
    ("jrc0123", "jrc0123", "jsc_jureca"),
    ("jrc0123i", "jrc0123i", "jsc_jureca"),
    ("jwlogin22", "jwlogin22.juwels", "jsc_juwels"),
    ("jwlogin22.juwels", "", "jsc_juwels"),
    ("jwb0042", "jwb0042.juwels", "jsc_juwels"),
    ("jwb0042", "jwb0042", "jsc_juwels"),
    ("jpbl-s01-01", "jpbl-s01-01.jupiter.internal", "jsc_jupiter"),
    ("jpbl-s01-01", "jpbl-s01-01", "jsc_jupiter"),
    ("jpbo-012-03", "jpbo-012-03.jupiter.internal", "jsc_jupiter"),
    ("jpbo-012-03", "jpbo-012-03", "jsc_jupiter"),
    ("login1", "login1.vista.tacc.utexas.edu", "tacc_vista"),
    ("login1.vista.tacc.utexas.edu", "login1.vista.tacc.utexas.edu", "tacc_vista"),
    ("c608-021", "c608-021.vista.tacc.utexas.edu", "tacc_vista"),
    ("login2", "login2.ls6.tacc.utexas.edu", "tacc_lonestar"),
    ("c302-005.ls6.tacc.utexas.edu", "c302-005.ls6.tacc.utexas.edu", "tacc_lonestar"),
    ("c302-005", "c302-005.ls6.tacc.utexas.edu", "tacc_lonestar"),
    ("login01", "login01.leonardo.local", "leonardo"),
    ("login01.leonardo.local", "", "leonardo"),
    ("lrdn0123", "lrdn0123.leonardo.local", "leonardo"),
    ("lrdn0123", "lrdn0123", "leonardo"),
]


@pytest.mark.parametrize("hostname,fqdn,expected", HOSTS)
def test_detects_login_and_compute_nodes(hostname, fqdn, expected):
    assert detect_cluster(hostname, fqdn, {}).name == expected


@pytest.mark.parametrize("hostname", ["vm", "login1", "c608-021", "laptop.example.org",
                                      "xjrc0123", "jrc0123.evil.com", "login01"])
def test_unknown_or_ambiguous_host_is_one_line_naming_the_fix(hostname):
    with pytest.raises(ClusterNotFound) as caught:
        detect_cluster(hostname, hostname, {})
    message = str(caught.value)
    assert "\n" not in message
    assert hostname in message and "--cluster" in message
    for name in ("jsc_jureca", "tacc_vista", "leonardo", "local"):
        assert name in message


def test_explicit_beats_environment_beats_slurm_name_beats_hostname():
    env = {"OT_HPC_CLUSTER": "tacc_vista", "SLURM_CLUSTER_NAME": "jureca"}
    assert detect_cluster("jwb0042", "jwb0042", env, explicit="local").name == "local"
    assert detect_cluster("jwb0042", "jwb0042", env).name == "tacc_vista"
    assert detect_cluster("jwb0042", "jwb0042", {"SLURM_CLUSTER_NAME": "jureca"}).name == "jsc_jureca"
    assert detect_cluster("vm", "vm", {"SLURM_CLUSTER_NAME": "local"}).name == "local"
    # an unknown SLURM_CLUSTER_NAME falls through to the hostname
    assert detect_cluster("jwb0042", "", {"SLURM_CLUSTER_NAME": "other"}).name == "jsc_juwels"


def test_unknown_explicit_cluster_names_the_known_ones():
    with pytest.raises(ClusterNotFound, match="jsc_jureca"):
        get_cluster("jurecca")
    assert not isinstance(ClusterNotFound("x"), KeyError)


def test_registry_holds_every_cluster_with_legacy_defaults():
    names = known_clusters()
    for name in ("jsc_jureca", "jsc_jupiter", "jsc_juwels", "tacc_vista", "tacc_lonestar",
                 "leonardo", "local"):
        assert name in names
    jureca = get_cluster("jsc_jureca")
    assert (jureca.account, jureca.partition, jureca.gpus_per_node, jureca.cpus_per_node,
            jureca.max_nodes) == ("westai0007", "dc-hwai", 4, 48, 16)
    assert not jureca.compute_has_internet and jureca.nccl_socket_ifname == "ib0"
    assert get_cluster("tacc_lonestar").gpus_per_node == 3
    assert get_cluster("jsc_jupiter").cpu_arch == "aarch64"
    assert get_cluster("jsc_juwels").exclude_nodes[0].startswith("jwb[0059,")
    local = get_cluster("local")
    assert (local.partition, local.gpus_per_node, local.max_nodes, local.cpus_per_node) == (
        "debug", 4, 3, None)
    assert get_cluster("tacc_vista").interconnect_suffix == ""


@pytest.mark.parametrize("cluster,node,expected", [
    ("jsc_jureca", "jrc0123", "jrc0123i"),
    ("jsc_jureca", "jrc0123.jureca", "jrc0123i"),
    ("jsc_jureca", "jrc0123i", "jrc0123i"),
    ("jsc_juwels", "jwb0042", "jwb0042i"),
    ("jsc_jupiter", "jpbo-012-03", "jpbo-012-03i"),
    ("tacc_vista", "c608-021.vista.tacc.utexas.edu", "c608-021"),
    ("local", "n1", "n1"),
])
def test_interconnect_hostname(cluster, node, expected):
    assert interconnect_hostname(get_cluster(cluster), node) == expected


def test_user_cluster_file_adds_and_overrides(tmp_path):
    (tmp_path / "mybox.env").write_text(
        "CLUSTER_SITE=other\nCLUSTER_PARTITION=gpu\nCLUSTER_GPUS_PER_NODE=8\n"
        "CLUSTER_MAX_NODES=2\nCLUSTER_MAX_TIME_MINUTES=60\n"
        "CLUSTER_LOGIN_PATTERNS='mybox\\d+ mybox\\d+\\.lab\\.example'\n"
        "CLUSTER_COMPUTE_HAS_INTERNET=false\nCLUSTER_LOGIN_NODES=mybox1,mybox2\n")
    (tmp_path / "jsc_jureca.env").write_text("CLUSTER_PARTITION=dc-gpu\nCLUSTER_MAX_NODES=64\n")
    (tmp_path / "jureca_small.env").write_text("CLUSTER_BASE=jsc_jureca\nCLUSTER_MAX_NODES=2\n")
    env = {"OT_HPC_CLUSTERS_DIR": str(tmp_path), "HOME": str(tmp_path / "home")}
    mybox = get_cluster("mybox", env)
    assert (mybox.partition, mybox.gpus_per_node, mybox.compute_has_internet) == ("gpu", 8, False)
    assert mybox.login_nodes == ("mybox1", "mybox2")
    assert detect_cluster("mybox3", "mybox3.lab.example", env).name == "mybox"
    jureca = get_cluster("jsc_jureca", env)
    assert (jureca.partition, jureca.max_nodes, jureca.account) == ("dc-gpu", 64, "westai0007")
    assert jureca.source.endswith("jsc_jureca.env")
    small = get_cluster("jureca_small", env)
    assert (small.max_nodes, small.partition, small.nccl_socket_ifname) == (2, "dc-gpu", "ib0")
    assert get_cluster("jsc_jureca").partition == "dc-hwai"  # built-in untouched


@pytest.mark.parametrize("text,fragment", [
    ("CLUSTER_PARTITON=x\n", "CLUSTER_PARTITION"),
    ("CLUSTER_SITE=other\n", "CLUSTER_PARTITION"),
    ("CLUSTER_BASE=nope\n", "not a known cluster"),
    ("CLUSTER_BASE=local\nCLUSTER_MAX_NODES=three\n", "CLUSTER_MAX_NODES"),
    ("CLUSTER_BASE=local\nCLUSTER_LOGIN_PATTERNS=(\n", "CLUSTER_LOGIN_PATTERNS"),
])
def test_bad_cluster_file_is_one_line(tmp_path, text, fragment):
    (tmp_path / "bad.env").write_text(text)
    with pytest.raises(ClusterFileError) as caught:
        clusters.load_clusters({"OT_HPC_CLUSTERS_DIR": str(tmp_path), "HOME": str(tmp_path)})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", [c.name for c in clusters.BUILTIN_CLUSTERS])
def test_cluster_facts_round_trip_through_json(name):
    import json

    cluster = get_cluster(name)
    assert from_facts(json.loads(json.dumps(to_facts(cluster)))) == cluster


def test_cluster_facts_refuse_unknown_and_missing_fields():
    facts = to_facts(get_cluster("local"))
    with pytest.raises(ValueError, match="unknown fields"):
        from_facts(dict(facts, flux_capacitor=1))
    del facts["site"]
    with pytest.raises(ValueError, match="incomplete"):
        from_facts(facts)
