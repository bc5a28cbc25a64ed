"""Time windows for the history commands and ages for ot-rmlogs (pure).

``--hours H`` (a positive number, fractions allowed) or ``--since DATE`` (ISO 8601:
``2026-11-27``, ``2026-11-27T08:30``, ``2026-11-27 08:30:00``, optionally with a
``+01:00``/``Z`` offset; without one it is local time). The window always ends now.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

DEFAULT_HOURS = 24.0


@dataclass(frozen=True)
class Window:
    start: datetime  # aware
    end: datetime  # aware
    label: str  # "in the last 24 h", "since 2026-11-27 08:30"

    def contains(self, moment: Optional[datetime]) -> bool:
        return moment is not None and self.start <= moment <= self.end

    def to_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _number_text(value: float) -> str:
    return f"{value:g}"


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO date or date-time as an aware datetime (local time unless an offset is given).

    Raises ValueError for text that is not a date, or a moment after ``now``.
    """
    value = str(text).strip()
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"--since must be an ISO date or date-time such as 2026-11-27 or "
            f"2026-11-27T08:30, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive: local time
    if moment > now:
        raise ValueError(f"--since {text!r} is in the future")
    return moment


def make_window(now: datetime, hours: Optional[float] = None, since: Optional[str] = None) -> Window:
    """The window ending ``now`` (aware): from ``since`` if given, else the last ``hours``."""
    if since is not None:
        start = parse_since(since, now)
        shown = start.strftime("%Y-%m-%d") if _DATE_ONLY.match(since.strip()) else start.strftime("%Y-%m-%d %H:%M")
        return Window(start, now, f"since {shown}")
    span = DEFAULT_HOURS if hours is None else hours
    if not math.isfinite(span) or span <= 0:
        raise ValueError(f"--hours must be a positive number, not {span!r}")
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    try:
        start = max(epoch, now - timedelta(hours=span))
    except OverflowError:
        start = epoch
    return Window(start, now, f"in the last {_number_text(span)} h")
