"""Override values: quoting strings so SkyRL's parser (Hydra for skyrl-train, OmegaConf's
YAML-based CLI grammar for skyrl >= 0.3) reads back exactly what was meant.

The one home of the quoting rules: the mapped settings (``MODEL_PATH``, ``TRAIN_DATA``,
``VAL_DATA``, see :mod:`ot_hpc.stage.plan`), the checkpoint path validation adds, and
anything else that writes a Hydra value for SkyRL use these.
"""
from __future__ import annotations

import re
from typing import List

_SAFE_HYDRA_VALUE = re.compile(r"^(?:[A-Za-z_/]|\.(?![0-9]))[A-Za-z0-9_./:@+-]*$")  # not .5
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


# --- skyrl >= 0.3: OmegaConf.from_cli reads each value with YAML (OmegaConf's loader) ---

_SAFE_YAML_VALUE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./:@+-]*$")
# Plain YAML 1.1 scalars that are not strings (OmegaConf's loader keeps these resolvers).
_YAML_WORDS = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"}


def omegaconf_quote(value: str) -> str:
    """A value that ``OmegaConf.from_cli`` (YAML) reads back as exactly the string ``value``.

    Plain paths and ids stay as they are; anything else becomes a YAML double-quoted
    scalar with every backslash, quote and non-printable-ASCII character escaped, so
    quotes, ``#``, ``: ``, leading/trailing spaces, newlines and non-ASCII text survive.
    ``${...}`` stays an OmegaConf interpolation, as with Hydra.
    """
    if _SAFE_YAML_VALUE.match(value) and value.lower() not in _YAML_WORDS and not value.endswith(":"):
        return value
    return omegaconf_quote_always(value)


def omegaconf_quote_always(value: str) -> str:
    out = []
    for char in value:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def omegaconf_list(items: List[str]) -> str:
    """``["a","b"]``: a YAML flow list of strings, for ``OmegaConf.from_cli``."""
    return "[" + ",".join(omegaconf_quote_always(item) for item in items) + "]"


def quote_for(line: str, value: str) -> str:
    """The value quoted for the parser of SkyRL ``line`` (``skyrl``: OmegaConf/YAML,
    ``skyrl-train``: Hydra)."""
    return omegaconf_quote(value) if line == "skyrl" else hydra_quote(value)


def list_for(line: str, items: List[str]) -> str:
    return omegaconf_list(items) if line == "skyrl" else hydra_list(items)
