"""The run-state file: a small JSON file the runner keeps next to the job log.

The runner rewrites it (atomically) at every phase change; ``ot-status`` reads it to
show what a running job is doing. Path: ``<logs>/<job_name>_<jobid>.state.json``.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional

STATE_SUFFIX = ".state.json"

@dataclass(frozen=True)
class RunState:
    job_id: str
    phase: str = "starting"
    phase_started_at: float = 0.0  # epoch seconds
    updated_at: float = 0.0
    head_address: Optional[str] = None  # "ip:port" of the Ray GCS
    dashboard_url: Optional[str] = None
    nodes_ready: int = 0
    nodes_expected: int = 0
    restart_count: int = 0
    max_restarts: int = 0
    log_path: Optional[str] = None
    tunnel: Optional[str] = None  # e.g. "socks5h://10.0.0.1:41234" or None
    tunnel_restarts: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)  # phase -> seconds
    message: Optional[str] = None  # last error or note, one line
    exit_code: Optional[int] = None
    # Runner extras for humans and tests: "ports" (first-last), "nodes" {name: ip},
    # "tunnel_pid", "marker". Keys may be added; readers must not require any.
    details: Mapping[str, Any] = field(default_factory=dict)
    # SkyRL's training progress read from the trainer's output (runner/progress.py), None
    # until some is seen: "step", "total", "elapsed_seconds", "seconds_per_step",
    # "eta_seconds" (tqdm's bar), "metrics_step", "metrics" {"reward"/"loss"/"eval": number},
    # "metric_keys" {name: SkyRL's key}, "rewards" [[step, reward], ...] (the last 60),
    # "updated_at". Any may be null; readers check every type (monitor/progress.py).
    progress: Optional[Mapping[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["timings"] = dict(self.timings)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunState":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def describe_phase(state: RunState) -> str:
    """One short phrase for ot-status, e.g. ``Ray 2/3 ready`` or ``training (restart 1/2)``."""
    if state.phase == "ray":
        text = f"Ray {state.nodes_ready}/{state.nodes_expected} ready"
    elif state.phase == "shutdown":
        text = "shutting down"
    else:
        text = state.phase
    if state.max_restarts:
        text += f" (restart {state.restart_count}/{state.max_restarts})"
    return text


def write_state(path: str, state: RunState) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state.to_dict(), handle, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_state(path: str) -> Optional[RunState]:
    """The state, or None when the file is missing or unreadable (never raises)."""
    try:
        with open(path) as handle:
            return RunState.from_dict(json.load(handle))
    except (OSError, ValueError, TypeError):
        return None
