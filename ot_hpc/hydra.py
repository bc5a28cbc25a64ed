"""Hydra override values: quoting strings so Hydra reads back exactly what was meant.

The one home of the quoting rules: the mapped settings (``MODEL_PATH``, ``TRAIN_DATA``,
``VAL_DATA``, see :mod:`ot_hpc.stage.plan`), the checkpoint path validation adds, and
anything else that writes a Hydra value for SkyRL use these.
"""
from __future__ import annotations

import re
from typing import List

_SAFE_HYDRA_VALUE = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./:@+-]*$")
_HYDRA_WORDS = {"null", "true", "false", "nan", "inf", "-inf", "+inf"}


def hydra_quote(value: str) -> str:
    """A Hydra override value that Hydra reads back as exactly the string ``value``.

    Plain paths and ids stay as they are (``Qwen/Qwen2.5-1.5B-Instruct``); anything
    Hydra would read as another type or syntax (spaces, quotes, commas, brackets,
    ``null``, ``123``) is single-quoted. ``${...}`` stays an OmegaConf interpolation.
    """
    if _SAFE_HYDRA_VALUE.match(value) and value.lower() not in _HYDRA_WORDS:
        return value
    return hydra_quote_always(value)


def hydra_quote_always(value: str) -> str:
    """Single-quote for Hydra: backslashes are escaped only before a quote or the end."""
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    return "'" + escaped.replace("'", "\\'") + "'"


def hydra_list(items: List[str]) -> str:
    """``['a','b']``: a Hydra list of strings."""
    return "[" + ",".join(hydra_quote_always(item) for item in items) + "]"
