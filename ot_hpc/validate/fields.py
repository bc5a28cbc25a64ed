"""Reading one setting as a typed value, or as a :class:`Problem` naming the fix.

A section checker makes one :class:`Fields` over the merged config, reads what it needs
(``fields.integer("NUM_NODES", 1)`` ...) and returns ``fields.section(values)``: its
typed values with the problems and warnings found on the way.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional

from ..config.merge import MergedConfig
from ..config.problems import Problem
from ..config.settings import SETTINGS_BY_KEY
from ..scheduler.base import PartitionLimits

_INT = re.compile(r"^[0-9]+$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Context:
    """What every section checker may read: the config and the world around it."""

    config: MergedConfig
    cwd: str
    now: datetime
    environ: Mapping[str, str]  # the login shell's environment (for the default HF cache)
    partition_limits: Optional[PartitionLimits] = None  # the scheduler's, when known
    run_skyrl_check: bool = True


@dataclass
class Section:
    """What one checker found: typed values for the job, its problems and warnings."""

    values: Dict[str, Any] = field(default_factory=dict)
    problems: List[Problem] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def int_of(value: Optional[str]) -> Optional[int]:
    """An override value as an int (quotes allowed), or None."""
    if value is None:
        return None
    text = value.strip().strip("'\"")
    return int(text) if _INT.match(text) else None


def others_can_read(path: str) -> bool:
    """Whether every user may read ``path`` (mode o+r)."""
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def group_or_other_readable(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def unwritable_ancestor(path: str) -> Optional[str]:
    """None when ``mkdir -p path`` could work (its nearest existing ancestor is a directory
    this process can write into), else that ancestor, for the problem line."""
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return None if os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK) else probe


class Fields:
    """Typed reads of settings; every failed read adds one problem."""

    def __init__(self, config: MergedConfig, cwd: str) -> None:
        self.config = config
        self.cwd = cwd
        self.problems: List[Problem] = []
        self.warnings: List[str] = []

    def section(self, values: Optional[Dict[str, Any]] = None) -> Section:
        return Section(dict(values or {}), self.problems, self.warnings)

    def value(self, key: str) -> Optional[str]:
        value = self.config.value(key)
        return None if value is None or value.strip() == "" else value.strip()

    def problem(self, key: str, message: str, fix: str, value: Optional[str] = "<same>") -> None:
        shown = self.config.value(key) if value == "<same>" else value
        self.problems.append(Problem(key, shown, message, fix, self.config.source(key)))

    def flag(self, key: str) -> str:
        setting = SETTINGS_BY_KEY[key]
        return f"{key}=... in the job config or {setting.flag}"

    def integer(self, key: str, low: int, high: Optional[int] = None,
                high_reason: str = "") -> Optional[int]:
        text = self.value(key)
        if text is None:
            return None
        if not _INT.match(text):
            self.problem(key, "is not a whole number", f"set {self.flag(key)} to digits only")
            return None
        number = int(text)
        if number < low:
            self.problem(key, f"must be at least {low}", f"set {self.flag(key)} to {low} or more")
            return None
        if high is not None and number > high:
            self.problem(key, f"is more than {high_reason or high}",
                         f"set {self.flag(key)} to {low}..{high}")
            return None
        return number

    def duration_seconds(self, key: str) -> Optional[int]:
        """A duration setting in seconds: minutes (60), MM:SS, HH:MM:SS or D-HH:MM:SS; 0 = off."""
        text = self.value(key)
        if text is None:
            return None
        from ..durations import parse_duration_seconds

        try:
            seconds = parse_duration_seconds(text)
        except ValueError:
            seconds = None
        if seconds is None:
            self.problem(key, "is not a duration", f"set {self.flag(key)} to minutes (60), "
                         "MM:SS (0:30), HH:MM:SS, or 0 for never")
        return seconds

    def required(self, key: str) -> bool:
        if self.value(key) is None:
            setting = SETTINGS_BY_KEY[key]
            self.problem(key, "is missing", f"set {key}=<value> in the job config or "
                         f"{setting.flag} <value> ({setting.help})", value=None)
            return False
        return True

    def boolean(self, key: str) -> Optional[bool]:
        text = self.value(key)
        if text is None:
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        self.problem(key, "is not true/false", f"set {key} to true or false")
        return None

    def choice(self, key: str) -> Optional[str]:
        text = self.value(key)
        choices = SETTINGS_BY_KEY[key].choices
        if text is None:
            return None
        if text.lower() not in choices:
            self.problem(key, "is not a valid choice", f"use one of {', '.join(choices)}")
            return None
        return text.lower()

    def absolute(self, text: str) -> str:
        return os.path.abspath(os.path.join(self.cwd, os.path.expanduser(text)))

    def path(self, key: str, kind: str = "any", executable: bool = False) -> Optional[str]:
        """A path that must exist on the login node (shared filesystem); made absolute."""
        text = self.value(key)
        if text is None:
            return None
        path = self.absolute(text)
        if not os.path.exists(path):
            self.problem(key, f"{path} does not exist", "fix the path (it must exist on the "
                         "shared filesystem, as seen from this login node)")
            return None
        if kind == "dir" and not os.path.isdir(path):
            self.problem(key, f"{path} is not a directory", "point it at a directory")
            return None
        if kind == "file" and not os.path.isfile(path):
            self.problem(key, f"{path} is not a file", "point it at a file")
            return None
        if executable and not os.access(path, os.X_OK):
            self.problem(key, f"{path} is not executable", "point it at a Python interpreter")
            return None
        return path
