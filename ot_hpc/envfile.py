"""The env-file reader, for the login node and the job alike.

Env files are parsed by python-dotenv's parser (quotes, ``export``, comments) and its
``${VAR}``/``${VAR:-default}`` syntax:

* on the login node, :func:`read_env_file` keeps every binding with its line number and
  every line that did not parse, for :mod:`ot_hpc.config.merge` to layer and report;
* the job reads the secret env file with :func:`env_file_values`, which resolves ``${VAR}``
  as python-dotenv's ``dotenv_values`` does but with the lookup passed in explicitly:
  nothing here reads or changes ``os.environ``.
"""
from __future__ import annotations

import io
from collections import ChainMap
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple


@dataclass(frozen=True)
class EnvFile:
    """A parsed env file: bindings in file order, with line numbers and parse errors."""

    path: str
    bindings: Tuple[Tuple[str, Optional[str], int], ...]  # key, raw value, line
    errors: Tuple[Tuple[int, str], ...]  # line, text that did not parse


def parse_env_text(text: str, path: str) -> EnvFile:
    """Parse with python-dotenv's parser, keeping order, line numbers and errors."""
    from dotenv.parser import parse_stream

    bindings, errors = [], []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        leading = original[: len(original) - len(original.lstrip())]
        line = binding.original.line + leading.count("\n")
        if binding.error:
            errors.append((line, original.strip().splitlines()[0] if original.strip() else ""))
        elif binding.key is not None:
            bindings.append((binding.key, binding.value, line))
    return EnvFile(path=path, bindings=tuple(bindings), errors=tuple(errors))


def read_env_file(path: str) -> EnvFile:
    with open(path, encoding="utf-8") as handle:
        return parse_env_text(handle.read(), path)


def env_file_keys(path: str) -> List[str]:
    """The keys an env file defines (never its values): for the secret file check."""
    return [key for key, _value, _line in read_env_file(path).bindings]


def env_file_values(path: str, environ: Mapping[str, str]) -> Dict[str, str]:
    """Key -> value of the env file ``path``, ``${VAR}``/``${VAR:-default}`` resolved as
    python-dotenv's ``dotenv_values(path, interpolate=True)`` does: against the keys the
    file set earlier, then ``environ``; an undefined name without a default is empty.
    Keys without a value (``KEY`` without ``=``) are left out. ``os.environ`` is neither
    read nor changed.

    Raises ``FileNotFoundError`` (or another ``OSError``) when the file cannot be read and
    ``ValueError`` (``<path>:<line>: cannot parse ...``) when a line does not parse; the
    line's text is not in the message, as it may hold a secret.
    """
    env = read_env_file(path)
    if env.errors:
        line, _text = env.errors[0]
        raise ValueError(f"{path}:{line}: cannot parse this line (not shown: it may hold a "
                         "secret); write KEY=value, quoting values with spaces or '#'")
    values: Dict[str, Optional[str]] = {}
    for key, raw, _line in env.bindings:
        if raw is not None:
            # The file's earlier keys first (one without a value counts as empty), as in dotenv.
            lookup = ChainMap(values, environ)  # type: ignore[arg-type]
            raw = "".join(atom.resolve(lookup) for atom, _is_variable in _variables(raw))
        values[key] = raw
    return {key: value for key, value in values.items() if value is not None}


def _variables(value: str):
    from dotenv.variables import Variable, parse_variables

    return [(atom, isinstance(atom, Variable)) for atom in parse_variables(value)]


def variable_names(value: Optional[str]) -> List[str]:
    if not value or "${" not in value:
        return []
    return [atom.name for atom, is_variable in _variables(value) if is_variable]


def interpolate(value: str, lookup: Mapping[str, Optional[str]]) -> Tuple[str, List[str]]:
    """Resolve ``${VAR}``/``${VAR:-default}`` like python-dotenv; also return the names
    that were neither defined nor given a default. An undefined dotted name
    (``${trainer.ckpt_path}``) is left as written, for Hydra to resolve."""
    missing: List[str] = []
    parts = []
    for atom, is_variable in _variables(value):
        if is_variable and lookup.get(atom.name) is None:
            if "." in atom.name:
                default = "" if atom.default is None else f":-{atom.default}"
                parts.append("${" + atom.name + default + "}")
                continue
            if atom.default is None:
                missing.append(atom.name)
        parts.append(atom.resolve(lookup))
    return "".join(parts), missing
