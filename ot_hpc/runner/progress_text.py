"""One piece of SkyRL's output at a time: what a bar, a ``Step N:`` line or a metrics
dict says (pure functions; the stream around them is :mod:`.progress`).

SkyRL (skyrl-train 0.3 and skyrl 0.4 alike) says how training goes in two ways:

- tqdm's bar on stderr, redrawn with ``\\r``::

      Training Batches Processed:  42%|████▏     | 84/200 [1:01:36<1:25:04, 44.00s/it]

  (``?it/s`` and ``<?`` before the first step, ``2.27it/s`` when steps are fast, ``#``
  for the bar where the output cannot take Unicode);
- the console tracker (``skyrl_train.utils.tracking.ConsoleLogger``, the same in
  ``skyrl.train.utils.tracking``): ``logger.info(f"Step {step}: \\n{pprint.pformat(data)}")``
  with every float already turned into a string (``'0.4100'``), so the dict spans lines::

      2026-12-03 10:00:00.123 | INFO     | skyrl_train.utils.tracking:log:107 - Step 84: 
      {'policy/policy_loss': '0.1230',
       'reward/avg_raw_reward': '0.4100',
       ...}

SkyRL's loop runs in a Ray task, so the runner usually sees each line as Ray's driver
prints it: ``(skyrl_entrypoint pid=2786)`` in front (in colour on a terminal, with
``, ip=...`` from another node). Anything else is not progress: unknown text gives nothing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

BAR_NAMES = ("Training Batches Processed", "Training Step Progress")  # the second: older skyrl-train

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_RAY_PREFIX = re.compile(r"^\((?P<source>(?:[\w.:\-]+ )?pid=\d+(?:, ip=[\w.:\-]+)?)\) ?")
_RAY_REPEATED = re.compile(r" \[repeated \d+x across cluster\]\s*$")
_BAR = re.compile(
    r"(?:" + "|".join(re.escape(name) for name in BAR_NAMES) + r"):\s*"
    r"(?:(?P<pct>\d{1,3})%\|[^|\r\n]*\|\s*)?"
    r"(?P<n>\d+)(?:/(?P<total>\d+)|it)\s*"
    r"\[(?P<inner>[^\[\]\r\n]*)\]")
_CLOCK = re.compile(r"^(?:(?P<d>\d+)d,? )?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d\d)$")
_RATE = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<unit>s/it|it/s)$")
_STEP = re.compile(r"(?:^|[\s|:\-])Step (?P<step>\d+):[ \t]*(?P<rest>\{.*)?$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")

REWARD_KEYS = ("reward/avg_raw_reward", "reward/mean_raw_reward", "reward/avg_reward",
               "reward/mean_reward", "reward/mean")
LOSS_KEYS = ("policy/policy_loss", "policy/loss", "policy_loss", "train/loss")
EVAL_KEYS = ("eval/all/avg_score",)
_NOT_A_MEAN_REWARD = ("pass_at", "std", "positive", "min", "max", "num_", "frac")  # in the last part


@dataclass(frozen=True)
class Bar:
    """One drawing of the training bar."""

    step: int
    total: Optional[int]
    elapsed_seconds: float
    remaining_seconds: Optional[float]
    seconds_per_step: Optional[float]


@dataclass(frozen=True)
class StepMetrics:
    """One ``Step N:`` dict, its numbers only (nested dicts flattened with ``/``)."""

    step: int
    values: Mapping[str, float]


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def split_ray_prefix(line: str) -> Tuple[Optional[str], str]:
    """``(skyrl_entrypoint pid=1) text`` -> (``skyrl_entrypoint pid=1``, ``text``)."""
    match = _RAY_PREFIX.match(line)
    if not match:
        return None, line
    return match.group("source"), line[match.end():]


def drop_ray_repeat_note(text: str) -> str:
    return _RAY_REPEATED.sub("", text) if "repeated" in text else text


def clock_seconds(text: str) -> Optional[int]:
    """tqdm's ``MM:SS`` / ``H:MM:SS`` (hours may pass 24) in seconds; None otherwise."""
    match = _CLOCK.match(text.strip())
    if not match:
        return None
    days, hours = int(match.group("d") or 0), int(match.group("h") or 0)
    minutes, seconds = int(match.group("m")), int(match.group("s"))
    if seconds > 59 or (match.group("h") is not None and minutes > 59):
        return None
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def seconds_per_step(text: str) -> Optional[float]:
    """``44.00s/it`` -> 44.0, ``4.17it/s`` -> 0.24; ``?it/s`` and scaled units -> None."""
    match = _RATE.match(text.strip())
    if not match:
        return None
    value = float(match.group("value"))
    if match.group("unit") == "s/it":
        return value if value > 0 else None
    return 1.0 / value if value > 0 else None


def _bar_of(match: "re.Match[str]") -> Optional[Bar]:
    step = int(match.group("n"))
    total = int(match.group("total")) if match.group("total") else None
    if total is not None and (total <= 0 or step > total):
        return None
    pct = match.group("pct")
    if pct is not None and (total is None or abs(int(pct) - 100.0 * step / total) > 1.0):
        return None
    parts = [part.strip() for part in match.group("inner").split(",")]
    elapsed_text, has_left, left_text = parts[0].partition("<")
    elapsed = clock_seconds(elapsed_text)
    if elapsed is None or (total is not None and not has_left):
        return None
    remaining = clock_seconds(left_text) if left_text.strip() != "?" else None
    if has_left and left_text.strip() != "?" and remaining is None:
        return None
    rate = seconds_per_step(parts[1]) if len(parts) > 1 else None
    return Bar(step, total, float(elapsed), None if remaining is None else float(remaining), rate)


def find_bar(text: str) -> Tuple[Optional[Bar], int]:
    """The last well-formed training bar in ``text`` and where it ends; (None, 0) if none."""
    found: Tuple[Optional[Bar], int] = (None, 0)
    if "Training" not in text:
        return found
    for match in _BAR.finditer(text):
        bar = _bar_of(match)
        if bar is not None:
            found = (bar, match.end())
    return found


def parse_bar(text: str) -> Optional[Bar]:
    """The last well-formed training bar in ``text`` (one ``\\r`` redraw), or None."""
    return find_bar(text)[0]


def step_header(text: str) -> Optional[Tuple[int, Optional[str]]]:
    """``... - Step 84: `` -> (84, None); ``Step 84: {'a': 1}`` -> (84, ``{'a': 1}``)."""
    if "Step " not in text:
        return None
    match = _STEP.search(text.rstrip())
    if not match:
        return None
    return int(match.group("step")), match.group("rest")


def as_number(value: Any) -> Optional[float]:
    """A finite number from an int, a float or a numeric string (``'0.4100'``); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def metric_values(data: Mapping[Any, Any], prefix: str = "") -> Dict[str, float]:
    """The numbers of a metrics dict by key; nested dicts as ``outer/inner``."""
    values: Dict[str, float] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, dict):
            values.update(metric_values(value, f"{prefix}{key}/"))
            continue
        number = as_number(value)
        if number is not None:
            values[prefix + key] = number
    return values


def _first(values: Mapping[str, float], keys) -> Optional[str]:
    return next((key for key in keys if key in values), None)


def _mean_reward_key(values: Mapping[str, float]) -> Optional[str]:
    """A key that names a mean reward (``.../avg_raw_reward``), the most general first."""
    def names_a_mean(key: str) -> bool:
        low = key.lower()
        last = low.rsplit("/", 1)[-1]
        return ("reward" in low and ("avg" in last or "mean" in last) and not low.startswith("eval/")
                and not any(word in last for word in _NOT_A_MEAN_REWARD))

    candidates = [key for key in values if names_a_mean(key)]
    candidates.sort(key=lambda key: ("raw" not in key, key.count("/"), len(key), key))
    return candidates[0] if candidates else None


def headline_keys(values: Mapping[str, float]) -> Dict[str, str]:
    """Which of SkyRL's keys the headline metrics (``reward``, ``loss``, ``eval``) come from."""
    chosen = {
        "reward": _first(values, REWARD_KEYS) or _mean_reward_key(values),
        "loss": _first(values, LOSS_KEYS) or next(
            (key for key in sorted(values) if key.endswith("policy_loss")), None),
        "eval": _first(values, EVAL_KEYS),
    }
    return {name: key for name, key in chosen.items() if key is not None}
