"""Why a job is pending: Slurm's reason code as a category and one plain phrase.

Pure. Categories (as SkyPilot's ``pending.py`` groups them):

``resources``   the job waits its turn for nodes/GPUs (it will start by itself);
``quota``       a limit of the QOS, the account or the partition holds it back;
``held``        someone must release it (or a begin time must pass);
``dependency``  it waits for other jobs;
``other``       anything else, including codes this table does not know.

The raw code is always kept so nothing is lost in translation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

RESOURCES = "resources"
QUOTA = "quota"
HELD = "held"
DEPENDENCY = "dependency"
OTHER = "other"
CATEGORIES = (RESOURCES, QUOTA, HELD, DEPENDENCY, OTHER)


@dataclass(frozen=True)
class PendingReason:
    code: str  # Slurm's code as given ("" when Slurm gave none)
    category: str  # one of CATEGORIES
    phrase: str  # one plain phrase, no trailing period

    def text(self) -> str:
        """``phrase (Code)``, the form ot-status prints."""
        return f"{self.phrase} ({self.code})" if self.code else self.phrase

    def to_dict(self) -> dict:
        return {"code": self.code, "category": self.category, "explanation": self.phrase}


# Exact codes. Keys are Slurm's spellings (squeue %r / scontrol Reason=).
_EXACT = {
    # resources: it starts by itself once something frees up
    "Resources": (RESOURCES, "waiting for enough free nodes/GPUs"),
    "Priority": (RESOURCES, "other jobs with higher priority go first"),
    "ReqNodeNotAvail": (RESOURCES, "a node it needs is down, drained or reserved"),
    "NodeDown": (RESOURCES, "a node it needs is down"),
    "PartitionDown": (RESOURCES, "the partition is down"),
    "PartitionInactive": (RESOURCES, "the partition is not scheduling jobs"),
    "Reservation": (RESOURCES, "waiting for its reservation to start"),
    "Licenses": (RESOURCES, "waiting for free licenses"),
    "FrontEndDown": (RESOURCES, "no front-end node is available"),
    "Cleaning": (RESOURCES, "waiting for a previous run of the job to be cleaned up"),
    "Prolog": (RESOURCES, "the node prolog is still running"),
    "Scheduling": (RESOURCES, "the scheduler has not looked at it yet"),
    "PowerUpNode": (RESOURCES, "waiting for its nodes to power up"),
    "BurstBufferResources": (RESOURCES, "waiting for burst buffer space"),
    "BurstBufferStageIn": (RESOURCES, "staging in its burst buffer"),
    # quota: limits of the partition (the job may never start as requested)
    "PartitionTimeLimit": (QUOTA, "its time limit is above the partition's maximum"),
    "PartitionNodeLimit": (QUOTA, "its node count is outside the partition's limits"),
    "PartitionConfig": (QUOTA, "it asks for more than the partition allows"),
    "JobArrayTaskLimit": (QUOTA, "the array's limit of running tasks is reached"),
    "QOSUsageThreshold": (QUOTA, "the QOS usage threshold is reached"),
    "QOSJobLimit": (QUOTA, "the QOS limit on running jobs is reached"),
    "QOSResourceLimit": (QUOTA, "a QOS resource limit is reached"),
    "QOSTimeLimit": (QUOTA, "the QOS time limit is reached"),
    "AssociationJobLimit": (QUOTA, "the account's limit on running jobs is reached"),
    "AssociationResourceLimit": (QUOTA, "an account resource limit is reached"),
    "AssociationTimeLimit": (QUOTA, "the account's time limit is reached"),
    # held: someone must act, or a time must come
    "JobHeldUser": (HELD, "held by its user: release with scontrol release"),
    "JobHeldAdmin": (HELD, "held by an administrator"),
    "JobHoldMaxRequeue": (HELD, "held after being requeued too many times"),
    "launch failed requeued held": (HELD, "held after a failed launch: ask an administrator"),
    "BeginTime": (HELD, "waiting for its requested start time"),
    # dependency
    "Dependency": (DEPENDENCY, "waiting for the jobs it depends on"),
    "DependencyNeverSatisfied": (DEPENDENCY, "its dependency can never be met: cancel it"),
    # other: usually a problem with the request itself
    "BadConstraints": (OTHER, "its constraints cannot be met by any node"),
    "InvalidAccount": (OTHER, "its account is invalid"),
    "InvalidQOS": (OTHER, "its QOS is invalid"),
    "AccountNotAllowed": (OTHER, "its account may not use this partition"),
    "QOSNotAllowed": (OTHER, "its QOS may not use this partition"),
    "SystemFailure": (OTHER, "a Slurm system failure"),
    "NonZeroExitCode": (OTHER, "it exited with a non-zero code"),
}

# QOSGrpGRES, QOSMaxCpuPerUserLimit, AssocGrpNodeLimit, AssocMaxJobsLimit, ...
_LIMIT = (  # compiled on first use (re caches it): most reasons are in _EXACT
    r"^(?P<who>QOS|Assoc)(?P<scope>Grp|Max|Min)(?P<what>.*?)"
    r"(?P<per>PerUser|PerJob|PerAccount|PerNode|PerMinute)?(?:Limit)?$"
)
_WHAT_WORDS = (
    ("GRESRunMinutes", "GPU/GRES minutes"),
    ("CpuRunMinutes", "CPU minutes"),
    ("NodeRunMinutes", "node minutes"),
    ("MemRunMinutes", "memory minutes"),
    ("BillingRunMinutes", "billing minutes"),
    ("GRESMinutes", "GPU/GRES minutes"),
    ("CpuMinutes", "CPU minutes"),
    ("NodeMinutes", "node minutes"),
    ("BillingMinutes", "billing minutes"),
    ("GRES", "GPUs/GRES"),
    ("Cpu", "CPUs"),
    ("Node", "nodes"),
    ("Mem", "memory"),
    ("Billing", "billing"),
    ("SubmitJob", "submitted jobs"),
    ("Jobs", "running jobs"),
    ("Job", "running jobs"),
    ("Wall", "run time"),
    ("Energy", "energy"),
)


def _limit_phrase(code: str) -> Optional[str]:
    match = re.match(_LIMIT, code)
    if not match:
        return None
    who = "QOS" if match.group("who") == "QOS" else "account"
    what_code = match.group("what")
    lowered = what_code.lower()
    what = next((word for prefix, word in _WHAT_WORDS if lowered.startswith(prefix.lower())), None)
    thing = what or "resources"
    scope, per = match.group("scope"), match.group("per")
    if scope == "Min":
        return f"it asks for fewer {thing} than the {who} minimum"
    if per == "PerJob" or (scope == "Max" and lowered.startswith("wall")):
        return f"it asks for more {thing} than the {who} allows per job"
    if per == "PerUser":
        return f"your {who} limit on {thing} is reached"
    if scope == "Grp":
        return f"the {who} group limit on {thing} is used up"
    return f"the {who} limit on {thing} is reached"


def explain_pending(code: Optional[str]) -> PendingReason:
    """Category and phrase for a reason code; never raises (unknown codes -> other)."""
    raw = (code or "").strip()
    if raw.startswith("(") and raw.endswith(")"):  # squeue %R spelling
        raw = raw[1:-1].strip()
    if raw in ("", "null", "None"):
        return PendingReason("", RESOURCES, "the scheduler has not looked at it yet")
    known = _EXACT.get(raw)
    if known is not None:
        return PendingReason(raw, known[0], known[1])
    head = raw.split(",", 1)[0].strip()
    if head.startswith("Nodes required for job are DOWN") or head.startswith("ReqNodeNotAvail"):
        return PendingReason(raw, RESOURCES, "a node it needs is down, drained or reserved")
    phrase = _limit_phrase(head)
    if phrase is not None:
        return PendingReason(raw, QUOTA, phrase)
    if head.startswith("Dependency"):
        return PendingReason(raw, DEPENDENCY, "waiting for the jobs it depends on")
    if "held" in head.lower() or head.startswith("JobHeld"):
        return PendingReason(raw, HELD, "held: release with scontrol release")
    # The explicit unknown branch: say so, keep the code.
    return PendingReason(raw, OTHER, "a reason code ot-hpc does not know: see man squeue, JOB REASON CODES")
