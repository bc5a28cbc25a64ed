"""Slurm's time strings, parsed and formatted (pure functions).

Slurm writes durations the same way in user input (``--time``) and in its own
output (squeue ``%M``/``%l``, sacct ``Elapsed``), so one parser serves both:

=============  ==========================
``MM``         minutes
``MM:SS``      minutes and seconds
``HH:MM:SS``   hours, minutes, seconds
``D-HH``       days and hours
``D-HH:MM``    days, hours, minutes
``D-HH:MM:SS`` days, hours, minutes, secs
=============  ==========================
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Optional

_UNSET_WORDS = frozenset({"", "UNLIMITED", "INFINITE", "INVALID", "NOT_SET", "N/A", "NONE",
                          "UNKNOWN", "PARTITION_LIMIT"})
_DURATION = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_duration_seconds(text: Optional[str]) -> Optional[int]:
    """Seconds in a Slurm duration; None for UNLIMITED/N/A and the like.

    Raises ValueError for text that is not a duration at all.
    """
    if text is None:
        return None
    value = text.strip()
    if value.upper() in _UNSET_WORDS:
        return None
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a Slurm duration: {text!r}")
    days, first, second, third = match.groups()
    if days is not None:
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"not a Slurm duration: {text!r}")
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if second is None:  # "MM"
        return int(first) * 60
    if third is None:  # "MM:SS"
        if int(second) > 59:
            raise ValueError(f"not a Slurm duration: {text!r}")
        return int(first) * 60 + int(second)
    if int(second) > 59 or int(third) > 59:  # "HH:MM:SS"
        raise ValueError(f"not a Slurm duration: {text!r}")
    return (int(first) * 60 + int(second)) * 60 + int(third)


def parse_time_limit_minutes(text: Optional[str]) -> Optional[int]:
    """A time limit in whole minutes (rounded up, as Slurm does); None when unlimited."""
    seconds = parse_duration_seconds(text)
    if seconds is None:
        return None
    return (seconds + 59) // 60


def format_duration(seconds: Optional[int]) -> str:
    """``D-HH:MM:SS`` (days only when needed); ``-`` for None."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def format_minutes(minutes: Optional[int]) -> str:
    """A time limit as Slurm prints it; ``UNLIMITED`` for None."""
    return "UNLIMITED" if minutes is None else format_duration(minutes * 60)


def parse_slurm_timestamp(text: Optional[str]) -> Optional[datetime]:
    """``2026-11-28T21:10:13`` (controller's local time) as an aware datetime; None for
    ``Unknown``/``N/A``/``None``/empty."""
    if text is None:
        return None
    value = text.strip()
    if value.upper() in _UNSET_WORDS:
        return None
    try:
        # fromisoformat is ~6x faster than strptime: it matters over 5,000 sacct rows.
        return datetime.fromisoformat(value).astimezone()
    except ValueError:
        return None
