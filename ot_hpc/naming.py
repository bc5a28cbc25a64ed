"""Job names: generated when absent, sanitized always (Slurm and file paths accept them)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Optional

MAX_JOB_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MODEL_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[bB](?![A-Za-z])")


def sanitize_job_name(name: str) -> str:
    """Keep ``A-Z a-z 0-9 . _ -``; every other run of characters becomes ``-``.

    Leading/trailing ``-``/``.`` are dropped (no hidden files, no option-like names);
    the result is at most 100 characters and may be empty (the caller reports that).
    """
    cleaned = _UNSAFE.sub("-", name.strip())
    cleaned = cleaned.strip("-.")
    return cleaned[:MAX_JOB_NAME].rstrip("-.")


def model_size(model_path: Optional[str]) -> Optional[str]:
    """``Qwen/Qwen2.5-1.5B-Instruct`` -> ``1.5b``; None when the name has no size."""
    if not model_path:
        return None
    last = model_path.rstrip("/").split("/")[-1]
    match = _MODEL_SIZE.search(last)
    return f"{match.group(1)}b" if match else None


def generate_job_name(
    config_name: Optional[str], model_path: Optional[str], num_nodes: int, now: datetime
) -> str:
    """``<config>-<model size>-<N>n-<YYYYmmdd-HHMMSS>``, e.g. ``gsm8k-1.5b-2n-20250301-141502``."""
    parts = [config_name or "ot-job"]
    size = model_size(model_path)
    if size:
        parts.append(size)
    parts.append(f"{num_nodes}n")
    parts.append(now.strftime("%Y%m%d-%H%M%S"))
    return sanitize_job_name("-".join(parts)) or "ot-job"
