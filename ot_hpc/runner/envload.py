"""Phase 1's environment: site env, activation, the job's variables, secrets.

Values of the secret env file go into the process environment (so Ray workers and the
trainer inherit them) and into the :class:`~.joblog.Redactor`, never into argv, a file
or a log line. Env files are parsed by python-dotenv (quotes, ``export``, comments,
``${VAR}`` interpolation); a line without ``=`` is ignored, never a crash.
"""
from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

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


def read_env_file(path: str, environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Key -> value of an env file; keys without a value are dropped."""
    from dotenv import dotenv_values  # cheap, but only the runner needs it

    if not os.path.isfile(path):
        raise PhaseError(f"env file {path} does not exist", exit_code=2)
    if environ is None:
        values = dotenv_values(path, interpolate=True)
    else:
        # Interpolate ${VAR} against the job's environment, not the runner's import time.
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(environ)
            values = dotenv_values(path, interpolate=True)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return {k: v for k, v in values.items() if v is not None}


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
EXIT_NO_MODULE_SYSTEM = 14
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
        f'if [ "$(type -t module)" != function ]; then exit {EXIT_NO_MODULE_SYSTEM}; fi; '
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
        'if [ -n "$2" ]; then ' + _module_init_snippet() + "module load $2 || exit 11; fi; "
        'if [ -n "$1" ]; then . "$1" || exit 12; fi; '
        'if [ -n "$3" ]; then conda activate "$3" || exit 13; fi; '
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
        raise PhaseError(f"activating the environment failed: {exc}", exit_code=2) from None
    errors = done.stderr.decode("utf-8", "replace")
    if done.returncode == EXIT_NO_MODULE_SYSTEM:
        login = "-l" in argv[:2]
        raise NoModuleSystem(
            "module load failed: no module system: `module` is not a shell function and none of "
            + ", ".join(MODULE_INIT_SCRIPTS) + " exists"
            + (" (not even in a login shell)" if login else ""), exit_code=2)
    if done.returncode != 0:
        step = {11: "module load", 12: "sourcing ENV_ACTIVATE", 13: "conda activate"}.get(
            done.returncode, "activation"
        )
        last = errors.strip().splitlines()[-1:] or ["no message"]
        raise PhaseError(f"{step} failed (exit {done.returncode}): {last[0]}", exit_code=2)
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


def _modules_of(value) -> Tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(str(v) for v in value)


def load_environment(spec, base: Mapping[str, str], nccl_ifname: Optional[str] = None) -> LoadedEnvironment:
    """The job's environment, in order: the batch environment, the site env file,
    activation (modules, ENV_ACTIVATE, CONDA_ENV), the spec's variables, the secret file,
    EXTRA_PYTHONPATH, NCCL/Gloo interface, cache directories."""
    env: Dict[str, str] = dict(base)
    notes: List[str] = []
    site_file = getattr(spec, "site_env_file", None)
    if site_file:
        site = read_env_file(site_file, env)
        env.update(site)
        notes.append(f"site env {site_file}: {len(site)} variables")
    spec_env = {str(k): str(v) for k, v in dict(getattr(spec, "environment", {}) or {}).items()}
    env.update(spec_env)

    env_activate = getattr(spec, "env_activate", None) or env.get("ENV_ACTIVATE") or None
    conda_env = getattr(spec, "conda_env", None) or env.get("CONDA_ENV") or None
    modules = _modules_of(getattr(spec, "modules", None) or env.get("MODULES"))
    argv = activation_command(env_activate, conda_env, modules)
    if argv is not None:
        try:
            activated, _errors = run_activation(argv, env)
        except NoModuleSystem:
            # No init script where we look: the site's login profile may still define it.
            notes.append("no module init script found: loading modules in a login shell (bash -l)")
            activated, _errors = run_activation(
                activation_command(env_activate, conda_env, modules, login=True) or [], env)
        changed = sorted(k for k, v in activated.items() if env.get(k) != v)
        env = activated
        env.update(spec_env)  # the job's own settings win over what activation exported
        what = ", ".join(x for x in (
            f"modules {' '.join(modules)}" if modules else "",
            f"{env_activate}" if env_activate else "",
            f"conda env {conda_env}" if conda_env else "",
        ) if x)
        notes.append(f"activated {what}: {len(changed)} variables changed")

    redactor = Redactor()
    secret_keys: Tuple[str, ...] = ()
    secret_file = getattr(spec, "secret_env_file", None) or env.get("SECRET_ENV_PATH") or None
    if secret_file:
        warning = secret_file_warning(secret_file)
        if warning:
            notes.append("WARNING: " + warning)
        secrets = read_env_file(secret_file, env)
        for key, value in secrets.items():
            redactor.add(key, value)
        env.update(secrets)
        secret_keys = tuple(sorted(secrets))
        notes.append(f"secrets from {secret_file}: {', '.join(secret_keys) or 'none'} (values never logged)")

    extra = getattr(spec, "extra_pythonpath", None) or env.get("EXTRA_PYTHONPATH")
    if extra:
        env["PYTHONPATH"] = prepend_path(env.get("PYTHONPATH"), extra) or ""
        notes.append(f"PYTHONPATH += {extra}")
    if nccl_ifname:
        for key in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
            env.setdefault(key, nccl_ifname)
        notes.append(f"NCCL/Gloo interface {env['NCCL_SOCKET_IFNAME']}")
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
    return LoadedEnvironment(env=env, redactor=redactor, secret_keys=secret_keys, notes=notes)
