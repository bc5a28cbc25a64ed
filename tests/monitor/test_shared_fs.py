"""ot-rmlogs on a filesystem shared by several clusters: the pure decision
(ot_hpc.monitor.shared_fs) and the planning step that reads the specs."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import pytest

from ot_hpc.cluster_facts import to_facts
from ot_hpc.clusters import get_cluster
from ot_hpc.monitor.rmlogs import Active, OtherClusters, close_all, make_plan
from ot_hpc.monitor.shared_fs import (PENDING_MARGIN_SECONDS, SpecFacts, horizon_seconds, is_here,
                                      keep_for_other_cluster, spec_facts)
from ot_hpc.spec import JobSpec, spec_to_json

DAY = 86400.0
NOW = 1_800_000_000.0
JURECA = frozenset({"jureca", "jurecadc", "jsc_jureca"})


def spec_text(cluster="jsc_juwels", created=NOW - 3600, limit=60, restarts=0, name="run"):
    stamp = datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return spec_to_json(JobSpec(
        job_name=name, cluster=cluster, num_nodes=1, experiments_dir="/e", trainer_python="/p",
        entrypoint_module="m", time_limit_minutes=limit, max_restarts=restarts, created_at=stamp,
        cluster_facts=to_facts(get_cluster(cluster))))


def test_spec_facts_reads_what_matters_and_nothing_breaks_it():
    facts = spec_facts(spec_text())
    assert facts.cluster == "jsc_juwels" and "juwels" in facts.slurm_cluster_names
    assert facts.created == NOW - 3600 and facts.time_limit_minutes == 60
    assert facts.max_time_minutes == 24 * 60 and facts.job_name == "run"
    for junk in ("", "{", "[1]", "null", '{"cluster": 5, "created_at": "yesterday"}',
                 '{"max_restarts": -3, "cluster_facts": []}'):
        assert spec_facts(junk).cluster is None and spec_facts(junk).max_restarts == 0
    newer = json.loads(spec_text())
    newer.update(version=99, some_new_field=1)
    assert spec_facts(json.dumps(newer)).cluster == "jsc_juwels"  # any schema version
    assert spec_facts(json.dumps({**newer, "max_restarts": 10 ** 9})).max_restarts == 100


@pytest.mark.parametrize("cluster, here, expected", [
    ("jsc_jureca", JURECA, True), ("jsc_juwels", JURECA, False),
    ("jsc_jureca", frozenset({"jureca"}), True),  # slurm.conf's ClusterName alone
    ("local", frozenset(), False),  # we cannot tell where we are: nobody is here
])
def test_is_here(cluster, here, expected):
    assert is_here(spec_facts(spec_text(cluster)), here) is expected


def test_horizon_is_every_run_at_the_longest_limit_plus_queue_time():
    facts = SpecFacts(time_limit_minutes=60, max_time_minutes=24 * 60, max_restarts=2)
    assert horizon_seconds(facts) == 3 * DAY + PENDING_MARGIN_SECONDS
    assert horizon_seconds(SpecFacts()) == 2 * DAY + PENDING_MARGIN_SECONDS


@pytest.mark.parametrize("text, mtime, expected", [
    (spec_text("jsc_juwels", created=NOW - 3600), NOW - 30 * DAY, True),  # young, elsewhere: kept
    (spec_text("jsc_juwels", created=NOW - 30 * DAY), NOW - 30 * DAY, False),  # far past its limits
    (spec_text("jsc_juwels", created=NOW - 7.5 * DAY), NOW, True),  # 1 day + a week's queue
    (spec_text("jsc_juwels", created=NOW - 8.5 * DAY), NOW, False),
    (spec_text("jsc_juwels", created=NOW - 20 * DAY, restarts=20), NOW, True),  # requeued for weeks
    (spec_text("jsc_jureca", created=NOW - 3600), NOW - 30 * DAY, False),  # here: the controller decides
    ("{", NOW - 3 * DAY, True),  # unreadable: by its mtime and the longest default limit
    ("{", NOW - 30 * DAY, False),
])
def test_keep_for_other_cluster(text, mtime, expected):
    assert keep_for_other_cluster(spec_facts(text), JURECA, NOW, mtime) is expected


def test_make_plan_keeps_the_specs_and_logs_of_other_clusters_jobs(tmp_path):
    now = time.time()
    exp = tmp_path / "exp"
    (exp / "logs").mkdir(parents=True)
    (exp / "specs").mkdir()
    files = {
        "specs/elsewhere_20260101T000000Z_aaaaaa.json": spec_text("jsc_juwels", now - 3600, name="elsewhere"),
        "logs/elsewhere_4242.log": "running on juwels\n",
        "logs/elsewhere_4242.state.json": "{}",
        "specs/gone_20260101T000000Z_bbbbbb.json": spec_text("jsc_juwels", now - 60 * DAY, name="gone"),
        "logs/gone_17.log": "long over\n",
        "specs/ours_20260101T000000Z_cccccc.json": spec_text("jsc_jureca", now - 3600, name="ours"),
        "logs/ours_18.log": "the controller says it is over\n",
        "logs/slurm-19.out": "no name\n",
    }
    for rel, text in files.items():
        path = exp / rel
        path.write_text(text)
        os.utime(path, (now - 30 * DAY, now - 30 * DAY))
    plan, fds = make_plan([str(exp)], now - 7 * DAY, Active(), os.getuid(), OtherClusters(JURECA, now))
    close_all(fds)
    deleted = sorted(name for d in plan.directories for name, _, _ in d.delete)
    assert deleted == ["gone_17.log", "gone_20260101T000000Z_bbbbbb.json", "ours_18.log",
                       "ours_20260101T000000Z_cccccc.json", "slurm-19.out"]
    assert plan.kept_other_cluster == 3
    assert [os.path.basename(d.directory) for d in plan.directories] == ["logs", "specs"]
    plan, fds = make_plan([str(exp)], now - 7 * DAY, Active(), os.getuid())  # without: as before
    close_all(fds)
    assert plan.files == len(files) and plan.kept_other_cluster == 0
