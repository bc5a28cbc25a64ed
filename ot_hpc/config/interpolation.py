"""``${VAR}`` resolution of merged file values, and the secret names it must not expand.

:mod:`ot_hpc.config.merge` calls :func:`resolve_interpolations` once every layer is in:
file values (and built-in defaults containing ``${``) are resolved against the merged
settings, the job environment and the overrides, then the process environment. Values from
the command line are never interpolated. A secret (a name that looks like one, or a key of
the secret env file) is never expanded: the reference stays as written and is reported.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Protocol, Set, Tuple

from ..envfile import env_file_keys, interpolate, variable_names
from .problems import Problem
from .secrets import SECRET_HINT, is_secret_name


class _Layers(Protocol):
    """What :func:`resolve_interpolations` needs of merge's builder."""

    settings: Dict[str, Any]  # key -> Entry
    environment: Dict[str, Any]  # name -> Entry
    overrides: List[Any]  # Override, in order
    problems: List[Problem]
    not_secret: FrozenSet[str]  # NOT_SECRET: names that only look like secrets


class _Cycle(Exception):
    pass


def _secret_file_keys(path: Optional[str], cwd: Optional[str]) -> List[str]:
    """The key NAMES of the secret env file (never its values); [] when it cannot be read
    (validation reports that)."""
    if not path or not path.strip():
        return []
    full = os.path.join(cwd or os.getcwd(), os.path.expanduser(path.strip()))
    try:
        return env_file_keys(full)
    except (OSError, UnicodeDecodeError, ValueError):
        return []


class _Resolver:
    """Expands ``${VAR}`` in the raw values, caching each name's value and refusing
    secrets. ``raw``: name -> (value, whether it is interpolated)."""

    def __init__(self, raw: Mapping[str, Tuple[Optional[str], bool]],
                 environ: Mapping[str, str], problems: List[Problem],
                 not_secret: FrozenSet[str] = frozenset()) -> None:
        self.raw = raw
        self.not_secret = not_secret
        self.environ = environ
        self.problems = problems
        self.cache: Dict[str, Optional[str]] = {}
        self.secret_names: Set[str] = set()  # keys of the secret env file, once known
        self.refused: List[str] = []  # secret names referenced during the current expansion

    def add_secret_names(self, names: List[str]) -> None:
        self.secret_names.update(names)
        self.cache.clear()

    def is_secret(self, name: str) -> bool:
        return is_secret_name(name, self.not_secret) or name in self.secret_names

    def value_of(self, name: str, chain: Tuple[str, ...]) -> Optional[str]:
        if self.is_secret(name):
            self.refused.append(name)
            return None
        if name == chain[-1]:
            return self.environ.get(name)  # FOO=${FOO}:x extends the process env's FOO
        if name in chain:
            raise _Cycle(" -> ".join(chain + (name,)))
        if name not in self.raw:
            return self.environ.get(name)
        if name in self.cache:
            return self.cache[name]
        value, needs = self.raw[name]
        if value is not None and needs and "${" in value:
            value = self.expand(value, chain + (name,))[0]
        self.cache[name] = value
        return value

    def expand(self, value: str, chain: Tuple[str, ...]) -> Tuple[str, List[str]]:
        local = {name: self.value_of(name, chain) for name in variable_names(value)}
        return interpolate(value, {k: v for k, v in local.items() if v is not None})

    def finish(self, key: str, value: Optional[str], source: str,
               report: bool = True) -> Optional[str]:
        """``value`` of ``key`` resolved; problems are reported when ``report``."""
        if value is None or "${" not in value:
            return value
        del self.refused[:]
        try:
            text, missing = self.expand(value, (key,))
        except _Cycle as exc:
            if report:
                self.problems.append(Problem(
                    key, value, f"refers to itself through ${{}} ({exc})", "break the cycle",
                    source))
            return value
        if self.refused:
            # Leave the value as written (no secret in it), report each reference once.
            for name in dict.fromkeys(self.refused):
                if report:
                    self.problems.append(Problem(
                        key, None, f"uses ${{{name}}}, a secret, which is never interpolated",
                        SECRET_HINT, source))
            return value
        if not report:
            return text
        for name in missing:
            self.problems.append(Problem(
                key, value, f"uses ${{{name}}}, which is not defined",
                f"define {name} in the site env or job config, or write ${{{name}:-default}}",
                source))
        return text


def resolve_interpolations(builder: _Layers, environ: Mapping[str, str],
                           cwd: Optional[str] = None) -> None:
    """Resolve ``${VAR}`` in the builder's file values in place, against the merged view,
    then ``environ``; problems are appended to ``builder.problems``.

    ``FOO=${FOO}:x`` extends the process environment's FOO (as python-dotenv does).
    A secret (a name that looks like one, or a key of the secret env file) is never
    interpolated: the reference stays as written and is reported."""
    raw: Dict[str, Tuple[Optional[str], bool]] = {}
    for entries in (builder.environment, builder.settings):
        for key, entry in entries.items():
            raw[key] = (entry.value, entry.interpolate)
    for override in builder.overrides:
        raw[override.key] = (override.value, override.from_file)
    resolver = _Resolver(raw, environ, builder.problems, builder.not_secret)
    path_entry = builder.settings.get("SECRET_ENV_PATH")
    if path_entry is not None:
        path = resolver.finish("SECRET_ENV_PATH", path_entry.value, path_entry.source,
                               report=False) if path_entry.interpolate else path_entry.value
        resolver.add_secret_names(_secret_file_keys(path, cwd))
    for entries in (builder.settings, builder.environment):
        for key, entry in list(entries.items()):
            if entry.interpolate:
                entries[key] = dataclasses.replace(
                    entry, value=resolver.finish(key, entry.value, entry.source))
    builder.overrides = [
        dataclasses.replace(o, value=resolver.finish(o.key, o.value, o.source))
        if o.from_file else o
        for o in builder.overrides
    ]
