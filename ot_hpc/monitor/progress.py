"""Training progress in ot-status (pure): the run-state file's ``progress`` checked field by
field, and the line under a job::

    training step 84/200, 44 s/step, ETA 1h25m, reward 0.41 ▂▃▄▅▆▇, loss 0.123

A field of the wrong type or out of range is left out (the file is the runner's, but an
older or newer runner may have written it); with neither a step nor a metric there is
no line at all. The sparkline is the rewards of the steps seen, oldest first.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .table import fit

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 20  # the last this many rewards
METRICS = ("reward", "loss", "eval")  # in this order on the line


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _rewards(raw: Any) -> List[List[float]]:
    pairs = []
    for pair in raw if isinstance(raw, list) else []:
        if isinstance(pair, list) and len(pair) == 2 and _int(pair[0]) is not None:
            value = _number(pair[1])
            if value is not None:
                pairs.append([pair[0], value])
    return pairs


def read_progress(raw: Any) -> Optional[Dict[str, Any]]:
    """The well-typed part of a run-state file's ``progress``; None when it says nothing."""
    if not isinstance(raw, Mapping):
        return None
    step, total = _int(raw.get("step")), _int(raw.get("total"))
    if total is not None and (total == 0 or step is None or step > total):
        total = None
    found: Dict[str, Any] = {"step": step, "total": total, "metrics_step": _int(raw.get("metrics_step"))}
    for name in ("seconds_per_step", "eta_seconds", "elapsed_seconds", "updated_at"):
        value = _number(raw.get(name))
        found[name] = value if value is not None and value >= 0 else None
    if found["seconds_per_step"] == 0:
        found["seconds_per_step"] = None
    metrics = raw.get("metrics") if isinstance(raw.get("metrics"), Mapping) else {}
    found["metrics"] = {name: _number(metrics.get(name)) for name in METRICS
                        if _number(metrics.get(name)) is not None}
    keys = raw.get("metric_keys") if isinstance(raw.get("metric_keys"), Mapping) else {}
    found["metric_keys"] = {name: key for name, key in keys.items()
                            if name in found["metrics"] and isinstance(key, str)}
    found["rewards"] = _rewards(raw.get("rewards"))
    if step is None and found["metrics_step"] is None and not found["metrics"]:
        return None
    return found


def format_eta(seconds: float) -> str:
    """The two largest units: ``45s``, ``12m30s``, ``1h25m``, ``2d3h``."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_rate(seconds_per_step: float) -> str:
    if seconds_per_step >= 10:
        return f"{seconds_per_step:.0f} s/step"
    if seconds_per_step >= 1:
        return f"{seconds_per_step:.1f} s/step"
    return f"{1 / seconds_per_step:.1f} steps/s"


def format_metric(value: float) -> str:
    """``0.41``, ``0.123``, ``12.5``, ``1234``, ``1.2e-05``: short, trailing zeros dropped."""
    size = abs(value)
    if size >= 100:
        return f"{value:.0f}"
    if size == 0 or size >= 0.001:
        text = f"{value:.2f}" if size >= 1 else f"{value:.3f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.1e}"


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """``▁▃▅█`` of the last ``width`` values (empty for fewer than two)."""
    shown = list(values)[-width:] if width > 0 else []
    if len(shown) < 2:
        return ""
    low, high = min(shown), max(shown)
    if high == low:
        return SPARK[len(SPARK) // 2 - 1] * len(shown)
    top = len(SPARK) - 1
    return "".join(SPARK[int(round((v - low) / (high - low) * top))] for v in shown)


def progress_parts(progress: Mapping[str, Any], with_sparkline: bool = True) -> List[str]:
    step = progress.get("step")
    if step is None:
        step = progress.get("metrics_step")
    total = progress.get("total")
    parts = ["training" + ("" if step is None else f" step {step}" + (f"/{total}" if total else ""))]
    if progress.get("seconds_per_step"):
        parts.append(format_rate(progress["seconds_per_step"]))
    if progress.get("eta_seconds") is not None and total and step is not None and step < total:
        parts.append(f"ETA {format_eta(progress['eta_seconds'])}")
    for name in METRICS:
        value = progress.get("metrics", {}).get(name)
        if value is None:
            continue
        text = f"{name} {format_metric(value)}"
        spark = sparkline([v for _, v in progress.get("rewards", [])]) if name == "reward" else ""
        parts.append(f"{text} {spark}" if spark and with_sparkline else text)
    return parts


def progress_line(progress: Mapping[str, Any], width: int, with_sparkline: bool = True) -> str:
    """The line under a job, at most ``width`` characters (the sparkline goes first)."""
    line = ", ".join(progress_parts(progress, with_sparkline))
    if len(line) > width:
        line = ", ".join(progress_parts(progress, with_sparkline=False))
    return fit(line, width)
