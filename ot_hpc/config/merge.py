"""Values with provenance, and the layering of every source into one :class:`MergedConfig`.

Layers, lowest first: built-in < cluster (:mod:`ot_hpc.clusters`) < site env file
(``envs/jsc.env`` ...) < job config (``--config gsm8k.env``) < command line.

In an env file (read by :mod:`ot_hpc.envfile`: quotes, ``export``, comments,
``${VAR}`` and ``${VAR:-default}``):

* a key from :data:`~ot_hpc.config.settings.SETTINGS` (``NUM_NODES``, ``TIME_LIMIT`` ...)
  sets a job setting;
* a key containing a dot, optionally prefixed ``+``/``++``/``~``, is a SkyRL/Hydra
  override, passed verbatim (``key=value``) in file order;
* any other key is an environment variable for the job: every such key of the site env
  file; in a job config the ones with a known prefix (``HF_``, ``WANDB_``, ``VLLM_`` ...),
  the ones the site env file also sets, or ``ENV_<NAME>`` (exported as ``<NAME>``).
  Anything else in a job config is an unknown key (reported with a did-you-mean).

Values stay strings here: nothing is coerced (a job named ``123`` stays ``"123"``);
:mod:`ot_hpc.validate` checks and converts them. ``${VAR}`` is resolved after all
layers are merged (:mod:`ot_hpc.config.interpolation`), against the merged settings, the
job environment and then the process environment, so
``trainer.placement.policy_num_nodes=${NUM_NODES}`` follows ``--num-nodes``. Command-line
values are never interpolated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..clusters import Cluster
from ..envfile import EnvFile
from .interpolation import resolve_interpolations
from .problems import Problem, secret_override_problem
from .secrets import is_secret_name, is_secret_override_key, not_secret_names
from .settings import ENV_PREFIX_EXPLICIT, ENV_PREFIXES, SETTINGS, SETTINGS_BY_KEY

_OVERRIDE_KEY = re.compile(r"^(\+\+|\+|~)?([A-Za-z_][\w-]*(?:\.[\w-]+)+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Entry:
    """One value and where it came from (``built-in``, ``cluster local``,
    ``envs/jsc.env:12``, ``--num-nodes`` ...). ``raw`` is the value before ``${}``."""

    key: str
    value: Optional[str]
    source: str
    raw: Optional[str] = None
    interpolate: bool = False  # file values are interpolated; CLI/built-in ones are not


@dataclass(frozen=True)
class Override:
    """A SkyRL/Hydra override ``<prefix><key>=<value>``; ``text`` is the argv element."""

    prefix: str  # "", "+", "++" or "~"
    key: str
    value: Optional[str]  # None only for "~key" deletions without a value
    source: str
    from_file: bool = False  # file values get ${VAR} interpolation; -S values do not

    @property
    def text(self) -> str:
        if self.value is None:
            return f"{self.prefix}{self.key}"
        return f"{self.prefix}{self.key}={self.value}"


@dataclass(frozen=True)
class MergedConfig:
    cluster: Cluster
    cluster_source: str
    settings: Mapping[str, Entry]  # every key of SETTINGS
    environment: Mapping[str, Entry]  # environment variables for the job
    overrides: Tuple[Override, ...]
    problems: Tuple[Problem, ...]  # found while reading (parse errors, unknown keys ...)
    site_env_path: Optional[str] = None
    job_config_path: Optional[str] = None
    config_name: Optional[str] = None  # the job config's stem, for generated job names

    def value(self, key: str) -> Optional[str]:
        entry = self.settings.get(key)
        return None if entry is None else entry.value

    def source(self, key: str) -> str:
        entry = self.settings.get(key)
        return "" if entry is None else entry.source


def short_path(path: str, cwd: Optional[str] = None) -> str:
    """A file path as shown in sources: relative to cwd when below it."""
    try:
        rel = os.path.relpath(path, cwd or os.getcwd())
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def cluster_value(cluster: Cluster, attribute: str) -> Optional[str]:
    """A cluster attribute as a setting string (tuples joined with ',', bools lower-case)."""
    value = getattr(cluster, attribute)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) or None
    return str(value)


def first_pass_value(env: Optional[EnvFile], key: str) -> Optional[str]:
    """A key's last raw value in a file, before interpolation (for CLUSTER/SITE_ENV)."""
    if env is None:
        return None
    found = None
    for name, value, _line in env.bindings:
        if name == key:
            found = value
    return found


def split_override(text: str) -> Optional[Tuple[str, str, Optional[str]]]:
    """``+a.b=c`` -> ("+", "a.b", "c"); None when ``text`` is not an override."""
    key, sep, value = text.partition("=")
    match = _OVERRIDE_KEY.match(key.strip())
    if not match:
        return None
    prefix = match.group(1) or ""
    if not sep and prefix != "~":
        return None
    return prefix, match.group(2), value if sep else None


def _did_you_mean(key: str, candidates: Iterable[str]) -> Optional[str]:
    import difflib

    matches = difflib.get_close_matches(key.upper(), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class _Builder:
    """Accumulates layers; later layers win."""

    def __init__(self) -> None:
        self.settings: Dict[str, Entry] = {}
        self.environment: Dict[str, Entry] = {}
        self.overrides: List[Override] = []
        self.override_index: Dict[str, int] = {}
        self.override_layer: Dict[str, str] = {}
        self.problems: List[Problem] = []
        self.not_secret: FrozenSet[str] = frozenset()  # NOT_SECRET, from every layer

    def set_setting(self, entry: Entry) -> None:
        self.settings[entry.key] = entry

    def add_override(self, override: Override, layer: str) -> None:
        previous = self.override_index.get(override.key)
        if previous is None:
            self.override_index[override.key] = len(self.overrides)
            self.override_layer[override.key] = layer
            self.overrides.append(override)
            return
        if self.override_layer[override.key] == layer:
            earlier = self.overrides[previous]
            self.problems.append(Problem(
                override.key, override.value, f"given twice (also {earlier.source})",
                "keep one of them", override.source))
        self.overrides[previous] = override  # later layer wins, first position kept
        self.override_layer[override.key] = layer


def _apply_file(builder: _Builder, env: EnvFile, kind: str, cwd: Optional[str]) -> None:
    """kind: "site" or "job"."""
    shown = short_path(env.path, cwd)
    for line, text in env.errors:
        builder.problems.append(Problem(
            f"{shown}:{line}", None, f"cannot parse {text[:60]!r}",
            "write KEY=value (quote values with spaces or '#')", ""))
    site_env_keys = set(builder.environment)
    seen: Dict[str, int] = {}
    for key, raw, line in env.bindings:
        source = f"{shown}:{line}"
        if key in seen and "." not in key:
            builder.problems.append(Problem(
                key, raw, f"set twice in {shown} (lines {seen[key]} and {line})",
                "keep one of them", source))
        seen[key] = line
        if key in SETTINGS_BY_KEY:
            if raw is None:
                builder.problems.append(Problem(key, None, "has no '='", f"write {key}=<value>", source))
                continue
            builder.set_setting(Entry(key, raw, source, raw=raw, interpolate=True))
            continue
        parsed = split_override(f"{key}={raw}" if raw is not None else key)
        if "." in key:
            if parsed is None:
                builder.problems.append(Problem(
                    key, raw, "is not a valid Hydra override key",
                    "write section.key=value, +section.key=value or ++section.key=value",
                    source))
                continue
            prefix, okey, value = parsed
            if is_secret_override_key(okey, builder.not_secret):
                builder.problems.append(secret_override_problem(key, source))
                continue
            builder.add_override(Override(prefix, okey, value, source, from_file=True),
                                 layer=env.path)
            continue
        name = key
        if kind == "job" and key.startswith(ENV_PREFIX_EXPLICIT):
            name = key[len(ENV_PREFIX_EXPLICIT):]
        if not _ENV_NAME.match(name):
            builder.problems.append(Problem(
                key, raw, "is not a valid environment variable name",
                "use letters, digits and '_'", source))
            continue
        if is_secret_name(name, builder.not_secret):
            builder.problems.append(Problem(
                key, "<hidden>", f"looks like a secret and must not be in {shown}",
                "move it to the secret env file named by SECRET_ENV_PATH (the runner reads "
                "it on the compute node)", source))
            continue
        if raw is None:
            builder.problems.append(Problem(key, None, "has no '='", f"write {key}=<value>", source))
            continue
        known_env = (
            kind == "site"
            or key.startswith(ENV_PREFIX_EXPLICIT)
            or name.startswith(ENV_PREFIXES)
            or name in site_env_keys
        )
        if not known_env:
            guess = _did_you_mean(key, SETTINGS_BY_KEY)
            hint = f"did you mean {guess}? " if guess else ""
            builder.problems.append(Problem(
                key, raw, "is not a known setting",
                f"{hint}(an environment variable for the job: name it ENV_{key}; "
                "an override: section.key=value; `ot-submit --list-settings` lists settings)",
                source))
            continue
        builder.environment[name] = Entry(name, raw, source, raw=raw, interpolate=True)


def merge(
    cluster: Cluster,
    cluster_source: str,
    site_env: Optional[EnvFile],
    job_config: Optional[EnvFile],
    cli_settings: Mapping[str, str],
    cli_overrides: Sequence[str],
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    site_env_source: str = "",
) -> MergedConfig:
    """Merge every layer into one :class:`MergedConfig` (reading problems included)."""
    env = os.environ if environ is None else environ
    builder = _Builder()
    builder.not_secret = not_secret_names(" ".join(
        (first_pass_value(site_env, "NOT_SECRET") or "", first_pass_value(job_config, "NOT_SECRET") or "",
         cli_settings.get("NOT_SECRET") or "")))
    for setting in SETTINGS:
        if setting.cluster_field:
            builder.set_setting(Entry(setting.key, cluster_value(cluster, setting.cluster_field),
                                      f"cluster {cluster.name}"))
        else:
            builder.set_setting(Entry(setting.key, setting.default, "built-in",
                                      raw=setting.default,
                                      interpolate=setting.default is not None
                                      and "${" in setting.default))
    if site_env is not None:
        _apply_file(builder, site_env, "site", cwd)
    if job_config is not None:
        _apply_file(builder, job_config, "job", cwd)
    for key, value in cli_settings.items():
        setting = SETTINGS_BY_KEY[key]
        builder.set_setting(Entry(key, value, setting.flag, raw=value))
    # How the cluster and the site env file were chosen (the caller decided both).
    builder.set_setting(Entry("CLUSTER", cluster.name, cluster_source))
    builder.set_setting(Entry("SITE_ENV", site_env.path if site_env is not None else None,
                              site_env_source))
    for index, text in enumerate(cli_overrides, start=1):
        parsed = split_override(text)
        if parsed is None:
            builder.problems.append(Problem(
                "-S", text, "is not a Hydra override",
                "write -S section.key=value (or +section.key=value for a new key)", f"-S #{index}"))
            continue
        prefix, key, value = parsed
        if is_secret_override_key(key, builder.not_secret):
            builder.problems.append(secret_override_problem(
                f"{prefix}{key}", f"-S {text.split('=')[0]}"))
            continue
        builder.add_override(Override(prefix, key, value, f"-S {text.split('=')[0]}"), layer="cli")
    resolve_interpolations(builder, env, cwd)
    config_name = Path(job_config.path).stem if job_config is not None else None
    return MergedConfig(
        cluster=cluster,
        cluster_source=cluster_source,
        settings=dict(builder.settings),
        environment=dict(builder.environment),
        overrides=tuple(builder.overrides),
        problems=tuple(builder.problems),
        site_env_path=site_env.path if site_env is not None else None,
        job_config_path=job_config.path if job_config is not None else None,
        config_name=config_name,
    )


def format_config(config: MergedConfig) -> str:
    """``--show-config``: every value with the place it came from."""
    lines = [f"# cluster {config.cluster.name} ({config.cluster_source})"]
    if config.site_env_path:
        lines.append(f"# site env file: {config.site_env_path}")
    if config.job_config_path:
        lines.append(f"# job config:    {config.job_config_path}")
    width = max(len(s.key) for s in SETTINGS) + 1
    lines.append("")
    lines.append("# settings")
    for setting in SETTINGS:
        entry = config.settings[setting.key]
        shown = "" if entry.value is None else entry.value
        lines.append(f"{setting.key:<{width}}= {shown!s:<40}  # {entry.source}")
    lines.append("")
    lines.append("# environment for the job")
    for key in sorted(config.environment):
        entry = config.environment[key]
        lines.append(f"{key}={entry.value}  # {entry.source}")
    lines.append("")
    lines.append("# SkyRL overrides, in order")
    for override in config.overrides:
        lines.append(f"{override.text}  # {override.source}")
    return "\n".join(lines) + "\n"
