"""Which SkyRL the job runs: detected in the trainer's interpreter (ot_hpc.skyrl_detect),
the default SKYRL_ENTRYPOINT that follows it, the entrypoint module checked to exist
there, and the Ray that will run every node (the trainer's)."""
from __future__ import annotations

import os
from typing import Any, List, Mapping, Optional

from .. import skyrl_detect
from ..skyrl_lines import DEFAULT_LINE, LINES, line_for, line_of_entrypoint
from .fields import Context, Fields, Section


def _not_detected(python: Optional[str], reason: str) -> skyrl_detect.Installed:
    return skyrl_detect.Installed(python or "", False, reason)


def describe(installed: skyrl_detect.Installed, runner: Optional[skyrl_detect.Installed],
             entrypoint: str, line: str) -> List[str]:
    """Lines for --show-config and the dry run (pure)."""
    out = [f"SkyRL: {installed.summary()}",
           f"SkyRL line for the overrides' check and quoting: {line}; entrypoint {entrypoint}"]
    if installed.ok and installed.ray:
        out.append(f"Ray: {installed.ray} from the trainer's Python runs the head, every worker "
                   "and the driver")
        if runner is not None and runner.ok and runner.ray and runner.ray != installed.ray:
            out.append(f"Ray: the runner's own Python ({runner.python}) has Ray {runner.ray}; "
                       "the runner never imports it")
    return out


def detect_for(context: Context, found: Mapping[str, Any], entrypoint: Optional[str]
               ) -> skyrl_detect.Installed:
    python = found.get("trainer_python")
    if not python:
        return _not_detected(python, "no TRAINER_PYTHON/PYTHON")
    if not context.run_skyrl_check:
        return _not_detected(python, "not asked (SkyRL checks are off)")
    modules = [entrypoint] if entrypoint else [line.entrypoint for line in LINES.values()]
    return skyrl_detect.detect(python, modules, cwd=found.get("skyrl_home"),
                               pythonpath=found.get("extra_pythonpath") or "",
                               environ=context.environ)


def check_skyrl_install(context: Context, found: Mapping[str, Any]) -> Section:
    """The detected SkyRL, the (default) entrypoint and that it exists in TRAINER_PYTHON."""
    fields = Fields(context.config, context.cwd)
    entrypoint = found.get("entrypoint")
    given = bool(entrypoint) or fields.value("SKYRL_ENTRYPOINT") is not None
    installed = detect_for(context, found, entrypoint)
    python = found.get("trainer_python") or ""
    if not entrypoint and not given:
        line = installed.line or DEFAULT_LINE
        entrypoint = LINES[line].entrypoint
        if not installed.ok:
            fields.warnings.append(
                f"SKYRL_ENTRYPOINT is not set and SkyRL in {python or 'TRAINER_PYTHON'} is "
                f"{installed.summary()}: using {entrypoint} (the current SkyRL)")
        elif installed.line is None:
            fields.problem("SKYRL_ENTRYPOINT", f"is not set and {python} has no SkyRL "
                           f"({installed.summary()})", "set TRAINER_PYTHON to SkyRL's interpreter "
                           "(pip install skyrl), or set SKYRL_ENTRYPOINT", value=None)
    if entrypoint and installed.has_module(entrypoint) is False:
        fields.problem("SKYRL_ENTRYPOINT", f"module {entrypoint} does not exist in {python} "
                       f"({installed.summary()})", _entrypoint_fix(installed, found),
                       value=entrypoint)
    if installed.ok and not installed.ray:
        fields.problem("TRAINER_PYTHON", f"{python} has no Ray, and its Ray starts the job's Ray "
                       "cluster", "install it there (pip install 'skyrl[ray]', or ray)",
                       value=python)
    runner = None
    runner_python = found.get("runner_python")
    if installed.ok and runner_python and os.path.realpath(runner_python) != os.path.realpath(python):
        runner = skyrl_detect.detect(runner_python, environ=context.environ)
    line = line_for(entrypoint, installed.line)
    return fields.section(dict(entrypoint=entrypoint, skyrl_line=line,
                               trainer_ray=installed.ray if installed.ok else None,
                               skyrl_own_entrypoint=line_of_entrypoint(entrypoint) is not None,
                               skyrl_summary=tuple(describe(installed, runner, entrypoint or "", line))))


def _entrypoint_fix(installed: skyrl_detect.Installed, found: Mapping[str, Any]) -> str:
    line = installed.line
    if line is not None:
        return (f"use SKYRL_ENTRYPOINT={LINES[line].entrypoint} (the installed {line} "
                f"{installed.version_of(line)}), or point TRAINER_PYTHON at the interpreter that has it")
    where = " or SKYRL_HOME/EXTRA_PYTHONPATH" if not found.get("skyrl_home") else ""
    return f"point TRAINER_PYTHON{where} at the environment that has it (pip install skyrl)"


def describe_config(config, environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The SkyRL and Ray lines for ``--show-config`` (the merged config, before validation)."""
    python = config.value("TRAINER_PYTHON") or config.value("PYTHON")
    entrypoint = config.value("SKYRL_ENTRYPOINT")
    if not python:
        return ["SkyRL: not known (no TRAINER_PYTHON/PYTHON)"]
    modules = [entrypoint] if entrypoint else [line.entrypoint for line in LINES.values()]
    installed = skyrl_detect.detect(python, modules, environ=environ)
    line = line_for(entrypoint, installed.line)
    if not entrypoint:
        entrypoint = f"{LINES[installed.line or DEFAULT_LINE].entrypoint} (default: follows the installed SkyRL)"
    return describe(installed, None, entrypoint, line)
