"""SkyRL's training progress, read from the trainer's output as it streams (pure).

:class:`ProgressParser` takes the output in chunks split anywhere (``feed(text)`` returns
the :class:`~.progress_text.Bar` and :class:`~.progress_text.StepMetrics` events the chunk
completed); :class:`TrainingProgress` is what they add up to (``apply(event)``), and its
``to_dict()`` is what the run-state file carries (``RunState.progress``).

The stream is cut into pieces at ``\\n`` and ``\\r``: each tqdm redraw is one piece, and
the last one wins. ANSI codes are dropped; a Ray prefix ``(name pid=N)`` at the start of
a line says whose line it is, so a ``Step N:`` dict is put together from its own process's
lines even when another process's lines come in between. The dict is collected from the
``Step N:`` line while its lines continue it (pprint indents every line after the first)
until its brackets balance, then read with :func:`ast.literal_eval` (never ``eval``);
one that does not balance within :data:`MAX_DICT_LINES` lines / :data:`MAX_DICT_CHARS`
characters, does not read, or is interrupted, is dropped. Unknown text yields nothing.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .progress_text import (Bar, StepMetrics, drop_ray_repeat_note, find_bar, headline_keys,
                            metric_values, parse_bar, split_ray_prefix, step_header, strip_ansi)

Event = Union[Bar, StepMetrics]

MAX_PARTIAL_CHARS = 64 * 1024  # a longer piece without \n or \r is skipped (never a bar)
MAX_DICT_LINES = 4000
MAX_DICT_CHARS = 512 * 1024
MAX_DICT_DEPTH = 16
MAX_SOURCES = 64  # processes with a dict under way at once
REWARD_HISTORY = 60  # rewards kept for ot-status's sparkline

_SEPARATOR = re.compile(r"[\r\n]")
_OPEN, _CLOSE = "{[(", "}])"


def bracket_depth(text: str, depth: int) -> Optional[int]:
    """``depth`` after ``text`` (brackets in quoted strings do not count); None when a
    string is left open, a bracket closes what was never opened, or it nests too deep."""
    quote = None
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
            if depth > MAX_DICT_DEPTH:
                return None
        elif char in _CLOSE:
            depth -= 1
            if depth < 0:
                return None
    return None if quote else depth


def read_metrics(step: int, text: str) -> Optional[StepMetrics]:
    """The ``Step N:`` dict's numbers, or None when it is not a dict of at least one."""
    try:
        data = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    values = metric_values(data)
    return StepMetrics(step, values) if values else None


@dataclass
class _Collecting:
    """A ``Step N:`` dict being put together from one process's lines."""

    step: int
    lines: List[str] = field(default_factory=list)
    chars: int = 0
    depth: int = 0


class ProgressParser:
    """Incremental: ``feed`` text as it comes, ``close`` at the end of the stream."""

    def __init__(self) -> None:
        self._partial = ""
        self._skipping = False  # inside an over-long piece
        self._at_line_start = True
        self._source: Optional[str] = None  # the Ray prefix of the current line
        self._collecting: Dict[Optional[str], _Collecting] = {}
        self._peeked: Optional[Bar] = None  # the bar already read from the unfinished piece

    def feed(self, text: str) -> List[Event]:
        events: List[Event] = []
        data = self._partial + text
        start = 0
        for match in _SEPARATOR.finditer(data):
            self._piece(data[start:match.start()], events)
            self._peeked = None
            self._at_line_start = match.group() == "\n"
            start = match.end()
        self._partial = data[start:]
        if len(self._partial) > MAX_PARTIAL_CHARS:
            self._partial, self._skipping = "", True
        elif self._partial and not self._skipping:
            bar = parse_bar(strip_ansi(self._partial))  # a redraw not yet followed by the next
            if bar is not None and bar != self._peeked:
                events.append(bar)
                self._peeked = bar  # counted: not again when the piece completes
        return events

    def close(self) -> List[Event]:
        """The end of the stream: a last piece without a newline still counts."""
        events: List[Event] = []
        if self._partial:
            self._piece(self._partial, events)
        self._partial, self._peeked = "", None
        self._at_line_start = True
        self._collecting.clear()
        return events

    def _piece(self, raw: str, events: List[Event]) -> None:
        if self._skipping:
            self._skipping = False
            return
        text = strip_ansi(raw)
        if self._at_line_start:
            self._source, text = split_ray_prefix(text)
        text = drop_ray_repeat_note(text)
        if not text.strip():
            return
        bar, end = find_bar(text)
        if bar is not None:
            if bar != self._peeked:
                events.append(bar)
            text = text[end:]  # a log line may follow a redraw that ended without a newline
            if not text.strip():
                return
        collecting = self._collecting.get(self._source)
        if collecting is not None:
            if self._continue(collecting, text, events):
                return
            del self._collecting[self._source]  # interrupted: not a pprinted dict after all
        header = step_header(text)
        if header is not None:
            step, rest = header
            if len(self._collecting) >= MAX_SOURCES:
                self._collecting.clear()
            collecting = self._collecting[self._source] = _Collecting(step)
            if rest is not None:
                self._continue(collecting, rest, events)

    def _continue(self, collecting: _Collecting, text: str, events: List[Event]) -> bool:
        """Add ``text`` to the dict; False when it cannot be the dict's next line."""
        if not collecting.lines:
            text = text.lstrip()
            if not text.startswith("{"):
                return False
        elif not text[:1].isspace():
            return False
        depth = bracket_depth(text, collecting.depth)
        collecting.lines.append(text)
        collecting.chars += len(text) + 1
        if depth is None or len(collecting.lines) > MAX_DICT_LINES or collecting.chars > MAX_DICT_CHARS:
            del self._collecting[self._source]
            return True
        collecting.depth = depth
        if depth == 0:
            del self._collecting[self._source]
            metrics = read_metrics(collecting.step, "\n".join(collecting.lines))
            if metrics is not None:
                events.append(metrics)
        return True


@dataclass(frozen=True)
class TrainingProgress:
    """What the events so far say; ``None`` where nothing was seen."""

    step: Optional[int] = None  # from the bar: steps done
    total: Optional[int] = None
    elapsed_seconds: Optional[float] = None
    seconds_per_step: Optional[float] = None
    eta_seconds: Optional[float] = None
    metrics_step: Optional[int] = None  # the last ``Step N:`` dict's N
    metrics: Mapping[str, float] = field(default_factory=dict)  # "reward", "loss", "eval"
    metric_keys: Mapping[str, str] = field(default_factory=dict)  # e.g. reward -> reward/avg_raw_reward
    rewards: Tuple[Tuple[int, float], ...] = ()  # (step, reward), the last REWARD_HISTORY

    def apply(self, event: Event) -> "TrainingProgress":
        if isinstance(event, Bar):
            return dataclasses.replace(
                self, step=event.step, total=event.total, elapsed_seconds=event.elapsed_seconds,
                seconds_per_step=event.seconds_per_step, eta_seconds=event.remaining_seconds)
        keys = headline_keys(event.values)
        metrics = dict(self.metrics)
        metrics.update({name: event.values[key] for name, key in keys.items()})
        names = dict(self.metric_keys)
        names.update(keys)
        rewards = self.rewards
        if "reward" in keys:
            kept = [pair for pair in self.rewards if pair[0] != event.step]
            kept.append((event.step, event.values[keys["reward"]]))
            rewards = tuple(sorted(kept)[-REWARD_HISTORY:])
        return dataclasses.replace(self, metrics_step=event.step, metrics=metrics,
                                   metric_keys=names, rewards=rewards)

    @property
    def known(self) -> bool:
        return self.step is not None or self.metrics_step is not None

    def to_dict(self) -> Dict[str, Any]:
        """The run-state file's ``progress`` (JSON: the rewards as ``[step, value]`` pairs)."""
        return {
            "step": self.step, "total": self.total, "elapsed_seconds": self.elapsed_seconds,
            "seconds_per_step": self.seconds_per_step, "eta_seconds": self.eta_seconds,
            "metrics_step": self.metrics_step, "metrics": dict(self.metrics),
            "metric_keys": dict(self.metric_keys), "rewards": [list(pair) for pair in self.rewards],
        }
