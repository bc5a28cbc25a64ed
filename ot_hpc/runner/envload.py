"""Phase 1's environment: the spec's variables, activation, secrets.

Everything but the secrets comes from the spec (ot-submit resolved the site env file and
the job config into ``spec.environment`` on the login node); the secret env file is the
only file read here, with the same reader ot-submit uses
(:func:`ot_hpc.envfile.env_file_values`). Its values go into the process
environment (so Ray workers and the trainer inherit them) and into the
:class:`~.joblog.Redactor`, never into argv, a file or a log line.
"""
from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..envfile import env_file_values
from ..spec import JobSpec
from .exit_codes import (ACTIVATION_CONDA, ACTIVATION_MODULE_LOAD, ACTIVATION_NO_MODULE_SYSTEM,
                         ACTIVATION_SOURCE, EXIT_ENV)
from .joblog import PhaseError, Redactor

# Cache directories the runner creates when the environment names them (so a first run on
# a fresh scratch directory does not fail deep inside vLLM or Triton).
CACHE_DIR_KEYS = (
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE", "VLLM_CACHE_ROOT",
    "VLLM_CONFIG_ROOT", "TRITON_CACHE_DIR", "TRITON_DUMP_DIR", "TRITON_OVERRIDE_DIR",
    "FLASHINFER_WORKSPACE_BASE", "UV_CACHE_DIR", "UV_TOOL_DIR", "TORCHINDUCTOR_CACHE_DIR",
    "XDG_CACHE_HOME",
)
ACTIVATION_TIMEOUT_SECONDS = 120


def secret_file_warning(path: str) -> Optional[str]:
    """One line when the secret file is readable by group or others, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
        return f"secret file {path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it"
    return None


# Where the module system (Lmod, Environment Modules) keeps its bash init script. A
# non-interactive, non-login ``bash -c`` has no ``module`` function: it is defined by
# these files, which a login shell sources through /etc/profile.d.
MODULE_INIT_SCRIPTS = (
    "$LMOD_PKG/init/bash",
    "/etc/profile.d/lmod.sh",
    "/etc/profile.d/z00_lmod.sh",
    "/etc/profile.d/modules.sh",
    "/usr/share/lmod/lmod/init/bash",
    "/usr/share/modules/init/bash",
)
ENV_MARKER = "OT_HPC_ACTIVATED_ENV_FOLLOWS"


def _module_init_snippet() -> str:
    """bash that defines ``module`` when it is not a function yet: the first init script
    that exists is sourced; exit 14 when there is none (the caller retries in ``bash -l``)."""
    candidates = " ".join(
        ('"$LMOD_PKG/init/bash"' if path.startswith("$LMOD_PKG") else f"'{path}'")
        for path in MODULE_INIT_SCRIPTS
    )
    return (
        'if [ "$(type -t module)" != function ]; then '
        f"for __ot_init in {candidates}; do "
        'case "$__ot_init" in /init/bash) continue;; esac; '  # LMOD_PKG unset
        'if [ -f "$__ot_init" ]; then . "$__ot_init"; break; fi; '
        "done; unset __ot_init; "
        "fi; "
        f'if [ "$(type -t module)" != function ]; then exit {ACTIVATION_NO_MODULE_SYSTEM}; fi; '
    )


def activation_command(
    env_activate: Optional[str], conda_env: Optional[str], modules: Sequence[str],
    login: bool = False,
) -> Optional[List[str]]:
    """bash argv that loads modules, sources the activation script, activates conda, and
    prints the resulting environment NUL-separated (after a marker, so anything a login
    profile prints on stdout is ignored). Values travel as positional parameters (never
    pasted into the script). Before ``module load`` the module system is initialised
    (see :data:`MODULE_INIT_SCRIPTS`); ``login=True`` runs ``bash -l`` instead, for
    sites where only the login profile defines ``module``. None when there is nothing
    to activate."""
    if not (env_activate or conda_env or modules):
        return None
    script = (
        "{ "
        'if [ -n "$2" ]; then ' + _module_init_snippet() + f"module load $2 || exit {ACTIVATION_MODULE_LOAD}; fi; "
        f'if [ -n "$1" ]; then . "$1" || exit {ACTIVATION_SOURCE}; fi; '
        f'if [ -n "$3" ]; then conda activate "$3" || exit {ACTIVATION_CONDA}; fi; '
        "} 1>&2; "
        f"printf '\\0{ENV_MARKER}\\0'; exec env -0"
    )
    shell = ["bash", "-l", "-c"] if login else ["bash", "-c"]
    return [*shell, script, "ot-hpc-activate", env_activate or "", " ".join(modules), conda_env or ""]


def parse_env0(blob: bytes) -> Dict[str, str]:
    marker = b"\0" + ENV_MARKER.encode() + b"\0"
    if marker in blob:
        blob = blob.split(marker, 1)[1]
    env: Dict[str, str] = {}
    for item in blob.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


class NoModuleSystem(PhaseError):
    """MODULES is set but ``module`` could not be defined (exit 14 of the activation)."""


def run_activation(argv: List[str], env: Mapping[str, str]) -> Tuple[Dict[str, str], str]:
    """Run the activation; return (new environment, its stderr text)."""
    try:
        done = subprocess.run(
            argv, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True,
            timeout=ACTIVATION_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PhaseError(f"activating the environment failed: {exc}", exit_code=EXIT_ENV) from None
    errors = done.stderr.decode("utf-8", "replace")
    if done.returncode == ACTIVATION_NO_MODULE_SYSTEM:
        login = "-l" in argv[:2]
        raise NoModuleSystem(
            "module load failed: no module system: `module` is not a shell function and none of "
            + ", ".join(MODULE_INIT_SCRIPTS) + " exists"
            + (" (not even in a login shell)" if login else ""), exit_code=EXIT_ENV)
    if done.returncode != 0:
        step = {ACTIVATION_MODULE_LOAD: "module load", ACTIVATION_SOURCE: "sourcing ENV_ACTIVATE",
                ACTIVATION_CONDA: "conda activate"}.get(
            done.returncode, "activation"
        )
        last = errors.strip().splitlines()[-1:] or ["no message"]
        raise PhaseError(f"{step} failed (exit {done.returncode}): {last[0]}", exit_code=EXIT_ENV)
    return parse_env0(done.stdout), errors


def prepend_path(current: Optional[str], extra: Optional[str]) -> Optional[str]:
    parts = [p for p in (extra or "").split(":") if p]
    parts += [p for p in (current or "").split(":") if p and p not in parts]
    return ":".join(parts) if parts else current


@dataclass
class LoadedEnvironment:
    env: Dict[str, str]
    redactor: Redactor
    secret_keys: Tuple[str, ...] = ()
    notes: List[str] = field(default_factory=list)  # lines for the log (already safe)


def _activate(spec: JobSpec, env: Dict[str, str], notes: List[str]) -> Dict[str, str]:
    """Modules, ENV_ACTIVATE, CONDA_ENV (as the spec names them); the spec's variables win
    over what the activation exported."""
    modules = tuple(spec.modules.split())
    argv = activation_command(spec.env_activate, spec.conda_env, modules)
    if argv is None:
        return env
    try:
        activated, _errors = run_activation(argv, env)
    except NoModuleSystem:
        # No init script where we look: the site's login profile may still define it.
        notes.append("no module init script found: loading modules in a login shell (bash -l)")
        activated, _errors = run_activation(
            activation_command(spec.env_activate, spec.conda_env, modules, login=True) or [], env)
    changed = sorted(k for k, v in activated.items() if env.get(k) != v)
    activated.update({str(k): str(v) for k, v in spec.environment.items()})
    what = ", ".join(x for x in (
        f"modules {' '.join(modules)}" if modules else "",
        spec.env_activate or "",
        f"conda env {spec.conda_env}" if spec.conda_env else "",
    ) if x)
    notes.append(f"activated {what}: {len(changed)} variables changed")
    return activated


def read_secrets(path: str, env: Mapping[str, str]) -> Dict[str, str]:
    """The secret env file's values (``${VAR}`` against the job's environment)."""
    try:
        return env_file_values(path, env)
    except FileNotFoundError:
        raise PhaseError(f"secret env file {path} does not exist: fix SECRET_ENV_PATH and "
                         "submit again", exit_code=EXIT_ENV) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PhaseError(f"cannot read the secret env file: {exc}", exit_code=EXIT_ENV) from None


def _create_cache_dirs(env: Mapping[str, str], notes: List[str]) -> None:
    created = []
    for key in CACHE_DIR_KEYS:
        path = env.get(key)
        if path and not os.path.isdir(path):
            try:
                os.makedirs(path, exist_ok=True)
                created.append(key)
            except OSError as exc:
                notes.append(f"WARNING: cannot create {key}={path}: {exc.strerror}")
    if created:
        notes.append("created cache directories " + ", ".join(created))


def load_environment(spec: JobSpec, base: Mapping[str, str],
                     nccl_ifname: Optional[str] = None) -> LoadedEnvironment:
    """The job's environment, in order: the batch environment, the spec's variables,
    activation (modules, ENV_ACTIVATE, CONDA_ENV), the secret file, EXTRA_PYTHONPATH,
    NCCL/Gloo interface, cache directories."""
    env: Dict[str, str] = dict(base)
    notes: List[str] = []
    env.update({str(k): str(v) for k, v in spec.environment.items()})
    env = _activate(spec, env, notes)
    redactor = Redactor()
    secret_keys: Tuple[str, ...] = ()
    if spec.secret_env_file:
        warning = secret_file_warning(spec.secret_env_file)
        if warning:
            notes.append("WARNING: " + warning)
        secrets = read_secrets(spec.secret_env_file, env)
        for key, value in secrets.items():
            redactor.add(key, value)
        env.update(secrets)
        secret_keys = tuple(sorted(secrets))
        notes.append(f"secrets from {spec.secret_env_file}: {', '.join(secret_keys) or 'none'} "
                     "(values never logged)")
    if spec.extra_pythonpath:
        env["PYTHONPATH"] = prepend_path(env.get("PYTHONPATH"), spec.extra_pythonpath) or ""
        notes.append(f"PYTHONPATH += {spec.extra_pythonpath}")
    if nccl_ifname:
        for key in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
            env.setdefault(key, nccl_ifname)
        notes.append(f"NCCL/Gloo interface {env['NCCL_SOCKET_IFNAME']}")
    _create_cache_dirs(env, notes)
    return LoadedEnvironment(env=env, redactor=redactor, secret_keys=secret_keys, notes=notes)
