"""Record factories for the pure tests."""
from __future__ import annotations

from datetime import datetime, timezone

from ot_hpc.scheduler.base import JobRecord, JobState

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def record(job_id=101, name="gsm8k-1.5b-2n-20261128-120000", state=JobState.RUNNING, **changes):
    values = dict(job_id=job_id, name=name, user="alice", state=state, raw_state=state.value,
                  partition="gpu", account="team", node_count=2, node_list="n[1-2]",
                  time_limit_minutes=60, elapsed_seconds=125, time_left_seconds=3475,
                  submit_time=T0, start_time=T0)
    if state is JobState.PENDING:
        values.update(node_list="", elapsed_seconds=0, time_left_seconds=3600, start_time=None,
                      reason="Resources")
    values.update(changes)
    return JobRecord(**values)
