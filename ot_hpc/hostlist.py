"""Slurm hostlist expressions, expanded and compressed without calling scontrol.

``expand_hostlist("jrc[0001-0003,0007],jwb0042")`` ->
``["jrc0001", "jrc0002", "jrc0003", "jrc0007", "jwb0042"]``.
"""
from __future__ import annotations

import re
from typing import List

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def split_hostlist_items(text: str) -> List[str]:
    """Split on commas that are not inside brackets (``a[1,2],b`` -> ``a[1,2]``, ``b``);
    items are stripped, empty ones dropped. Raises ValueError on unbalanced brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in hostlist {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced '[' in hostlist {text!r}")
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def _expand_one(item: str) -> List[str]:
    start = item.find("[")
    if start < 0:
        return [item]
    end = item.find("]", start)
    prefix, body, rest = item[:start], item[start + 1 : end], item[end + 1 :]
    tails = _expand_one(rest) if rest else [""]
    names = []
    for chunk in body.split(","):
        match = _RANGE.match(chunk.strip())
        if not match:
            raise ValueError(f"bad range {chunk!r} in hostlist {item!r}")
        low, high = match.group(1), match.group(2) or match.group(1)
        width = len(low) if low.startswith("0") or len(low) == len(high) else 0
        if int(high) < int(low):
            raise ValueError(f"descending range {chunk!r} in hostlist {item!r}")
        for number in range(int(low), int(high) + 1):
            for tail in tails:
                names.append(f"{prefix}{number:0{width}d}{tail}")
    return names


def expand_hostlist(text: str) -> List[str]:
    """Expand a Slurm hostlist (``n[1-3]``, ``a[01-02]b``, ``x,y[1,3-4]``); keeps order."""
    names: List[str] = []
    for item in split_hostlist_items(text or ""):
        names.extend(_expand_one(item))
    return names
