"""Pending reason codes -> category + one plain phrase, raw code kept (pure)."""
from __future__ import annotations

import pytest

from ot_hpc.monitor.pending import (CATEGORIES, DEPENDENCY, HELD, OTHER, QUOTA, RESOURCES,
                                    explain_pending)


@pytest.mark.parametrize("code, category", [
    ("Resources", RESOURCES),
    ("Priority", RESOURCES),
    ("ReqNodeNotAvail", RESOURCES),
    ("ReqNodeNotAvail, UnavailableNodes:n[1-2]", RESOURCES),
    ("Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions", RESOURCES),
    ("QOSGrpGRES", QUOTA),
    ("QOSMaxGRESPerUser", QUOTA),
    ("AssocMaxJobsLimit", QUOTA),
    ("AssocGrpCPURunMinutesLimit", QUOTA),
    ("QOSMaxWallDurationPerJobLimit", QUOTA),
    ("PartitionTimeLimit", QUOTA),
    ("PartitionNodeLimit", QUOTA),
    ("JobHeldUser", HELD),
    ("JobHeldAdmin", HELD),
    ("BeginTime", HELD),
    ("Dependency", DEPENDENCY),
    ("DependencyNeverSatisfied", DEPENDENCY),
    ("InvalidQOS", OTHER),
])
def test_known_codes_get_their_category_and_keep_the_code(code, category):
    reason = explain_pending(code)
    assert reason.category == category
    assert reason.code == code
    assert reason.phrase and "\n" not in reason.phrase and not reason.phrase.endswith(".")
    assert reason.text().endswith(f"({code})")


def test_every_category_is_one_of_the_five():
    assert set(CATEGORIES) == {RESOURCES, QUOTA, HELD, DEPENDENCY, OTHER}


def test_unknown_code_is_other_and_says_so():
    reason = explain_pending("SomethingNewInSlurm26")
    assert reason.category == OTHER
    assert reason.code == "SomethingNewInSlurm26"
    assert "does not know" in reason.phrase


@pytest.mark.parametrize("code", [None, "", "   ", "(null)"])
def test_no_code_means_not_yet_scheduled(code):
    reason = explain_pending(code)
    assert reason.category == RESOURCES and reason.code == ""
    assert reason.text() == reason.phrase


def test_squeue_parenthesised_spelling_is_unwrapped():
    assert explain_pending("(Priority)").code == "Priority"


def test_phrases_name_the_limited_thing():
    assert "GPUs" in explain_pending("QOSGrpGRES").phrase
    assert "your" in explain_pending("QOSMaxGRESPerUser").phrase
    assert "running jobs" in explain_pending("AssocMaxJobsLimit").phrase
    assert "per job" in explain_pending("QOSMaxNodePerJobLimit").phrase
    assert "scontrol release" in explain_pending("JobHeldUser").phrase


def test_to_dict_keeps_raw_code():
    assert explain_pending("Resources").to_dict() == {
        "code": "Resources", "category": "resources",
        "explanation": explain_pending("Resources").phrase}
