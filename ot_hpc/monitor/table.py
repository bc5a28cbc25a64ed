"""Plain-text tables that fit a terminal width (pure), and colour only for terminals.

Widths are computed on the plain text; colour codes are added afterwards, so a
coloured line takes exactly as many columns as its plain twin.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, List, Mapping, Optional, Sequence, Tuple, Union

DEFAULT_WIDTH = 100
GAP = "  "
ELLIPSIS = "..."

# A cell is its text, or (text, colour name) to paint it on a terminal.
Cell = Union[str, Tuple[str, Optional[str]]]

_ANSI = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
         "cyan": "36", "dim": "2", "bold": "1"}

_STATE_COLOURS = {
    "RUNNING": "green", "COMPLETING": "green", "COMPLETED": "green",
    "PENDING": "yellow", "REQUEUED": "yellow", "SUSPENDED": "yellow",
    "CANCELLED": "magenta",
}


@dataclass(frozen=True)
class Column:
    header: str
    min_width: int = 0  # > 0: may be cut down to this many characters to fit
    align_right: bool = False
    cut_left: bool = False  # cut the start instead of the end (paths)


def use_colour(stream: IO[str], environ: Optional[Mapping[str, str]] = None) -> bool:
    """Colour only on a terminal, never with NO_COLOR set or TERM=dumb."""
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def takes_unicode(stream: IO[str], sample: str = "▁█") -> bool:
    """Whether ``stream`` can print ``sample`` (a StringIO, with no encoding, can)."""
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return True
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def paint(text: str, colour: Optional[str], enabled: bool) -> str:
    if not enabled or not colour or colour not in _ANSI or not text:
        return text
    return f"\x1b[{_ANSI[colour]}m{text}\x1b[0m"


def state_colour(state: str) -> Optional[str]:
    """Green running/completed, yellow pending, magenta cancelled, red any failure."""
    if state in _STATE_COLOURS:
        return _STATE_COLOURS[state]
    return "red" if state not in ("", "UNKNOWN") else None


def fit(text: str, width: int, cut_left: bool = False) -> str:
    """``text`` cut to at most ``width`` characters, marking the cut with ``...``."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ELLIPSIS) + 2:
        return text[-width:] if cut_left else text[:width]
    keep = width - len(ELLIPSIS)
    return ELLIPSIS + text[-keep:] if cut_left else text[:keep] + ELLIPSIS


def column_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> List[int]:
    """Natural widths, then the cuttable columns shrunk (widest first) until the line fits."""
    widths = [len(c.header) for c in columns]
    for row in rows:
        for i, text in enumerate(row):
            if len(text) > widths[i]:
                widths[i] = len(text)
    excess = sum(widths) + len(GAP) * (len(columns) - 1) - width
    while excess > 0:
        candidates = [i for i, c in enumerate(columns) if c.min_width and widths[i] > c.min_width]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        others = [widths[i] for i in candidates if i != widest]
        target = max(columns[widest].min_width, max(others) if others else 0, widths[widest] - excess)
        if target >= widths[widest]:
            target = widths[widest] - 1
        excess -= widths[widest] - target
        widths[widest] = target
    return widths


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]],
                 width: int = DEFAULT_WIDTH, colour: bool = False) -> List[str]:
    """Header line plus one line per row, each at most ``width`` columns wide."""
    texts = [[cell[0] or "" if isinstance(cell, tuple) else cell or "" for cell in row] for row in rows]
    widths = column_widths(columns, texts, width)
    overflow = sum(widths) + len(GAP) * (len(columns) - 1) > width
    last = len(columns) - 1
    layout = [(widths[i], column.align_right, column.cut_left, i == last) for i, column in enumerate(columns)]

    def cells(row: Sequence[str]) -> List[str]:
        out = []
        for text, (size, right, cut_left, is_last) in zip(row, layout):
            if len(text) > size:
                text = fit(text, size, cut_left)
            out.append(text if is_last else (text.rjust(size) if right else text.ljust(size)))
        return out

    headers = [c.header for c in columns]
    plain = [GAP.join(cells(row)).rstrip() for row in [headers] + texts]
    if overflow:  # even the minimum widths do not fit: cut the plain lines
        return [line[:width] for line in plain]
    if not colour:
        return plain
    tints = [["bold"] * len(columns)]
    tints += [[cell[1] if isinstance(cell, tuple) else None for cell in row] for row in rows]
    lines = []
    for row, row_tints in zip([headers] + texts, tints):
        padded = cells(row)
        lines.append(GAP.join(_paint_padded(p, t, True) for p, t in zip(padded, row_tints)).rstrip())
    return lines


def _paint_padded(cell: str, tint: Optional[str], enabled: bool) -> str:
    """Paint the text but not its padding (so underline/bold do not run on)."""
    stripped = cell.rstrip()
    if not enabled or not tint or not stripped:
        return cell
    lead = len(stripped) - len(stripped.lstrip())
    core = stripped[lead:]
    return cell[:lead] + paint(core, tint, True) + cell[lead + len(core):]


def terminal_width(stream: IO[str], default: int = DEFAULT_WIDTH) -> int:
    """The terminal's width when writing to one (at least 40), else ``default``."""
    try:
        if stream.isatty():
            import shutil  # $COLUMNS first, then the terminal; 0 (an unsized pty) -> default

            return max(40, shutil.get_terminal_size((default, 24)).columns)
    except (AttributeError, ValueError, OSError):
        pass
    return default
