"""Interpreters and entrypoint, paths on the shared filesystem (the secret file's key
names included, never its values), and the tunnel to the login node."""
from __future__ import annotations

import os
import re
from typing import Any, List, Mapping, Optional

from ..envfile import read_env_file
from .fields import Context, Fields, Section, group_or_other_readable, others_can_read, unwritable_ancestor

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_HOST_PORT = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")
DEFAULT_EGRESS_PROBE = "huggingface.co:443"


def check_interpreters(context: Context, found: Mapping[str, Any]) -> Section:
    """SKYRL_ENTRYPOINT is a module name; PYTHON (the runner's) and TRAINER_PYTHON
    (the entrypoint's, default PYTHON) are executable files."""
    fields = Fields(context.config, context.cwd)
    entrypoint = fields.value("SKYRL_ENTRYPOINT")
    if entrypoint is not None and not _MODULE.match(entrypoint):  # None: the installed SkyRL's
        fields.problem("SKYRL_ENTRYPOINT", "is not a Python module name",
                       "write a dotted module, e.g. skyrl.train.entrypoints.main_base")
        entrypoint = None
    runner_python = None
    if fields.value("PYTHON") is None:
        fields.required("PYTHON")
    else:
        runner_python = fields.path("PYTHON", "file", executable=True)
    trainer_python = runner_python
    if fields.value("TRAINER_PYTHON"):
        trainer_python = fields.path("TRAINER_PYTHON", "file", executable=True)
    return fields.section(dict(entrypoint=entrypoint, runner_python=runner_python,
                               trainer_python=trainer_python))


def _secret_keys(fields: Fields, secret_path: Optional[str]) -> Optional[List[str]]:
    """The secret file's key names (values are never read out), or None when unreadable."""
    if secret_path is None:
        return None
    if others_can_read(secret_path):  # anyone on the login node: refused
        fields.problem("SECRET_ENV_PATH", "is readable by every user of this machine",
                       f"chmod 600 {secret_path}")
        return None
    if group_or_other_readable(secret_path):
        fields.warnings.append(
            f"SECRET_ENV_PATH={secret_path} is readable by its group: chmod 600 {secret_path}")
    try:
        secret_file = read_env_file(secret_path)
    except (OSError, UnicodeDecodeError) as exc:
        fields.problem("SECRET_ENV_PATH", f"cannot be read ({exc})", "fix its permissions")
        return None
    if secret_file.errors:  # the runner would stop on it: say so now (never the line's text)
        line = secret_file.errors[0][0]
        fields.problem("SECRET_ENV_PATH", f"line {line} of {secret_path} cannot be parsed (not "
                       "shown: it may hold a secret)", "write KEY=value, quoting values with "
                       "spaces or '#'")
        return None
    return [key for key, _value, _line in secret_file.bindings]


def _experiments_dir(fields: Fields) -> Optional[str]:
    text = fields.value("EXPERIMENTS_DIR")
    if text is None:
        fields.required("EXPERIMENTS_DIR")
        return None
    path = fields.absolute(text)
    blocked = unwritable_ancestor(path)
    if blocked is not None:
        fields.problem("EXPERIMENTS_DIR", f"{blocked} is not a writable directory",
                       "choose a directory you can write on the shared filesystem")
        return None
    return path


def check_paths(context: Context, found: Mapping[str, Any]) -> Section:
    """Every path the job names exists on the shared filesystem, as this login node sees it."""
    fields = Fields(context.config, context.cwd)
    skyrl_home = fields.path("SKYRL_HOME", "dir")
    env_activate = fields.path("ENV_ACTIVATE", "file")
    secret_path = fields.path("SECRET_ENV_PATH", "file")
    secret_keys = _secret_keys(fields, secret_path)
    ssh_key = fields.path("SSH_KEY", "file")
    if ssh_key is not None and group_or_other_readable(ssh_key):
        fields.problem("SSH_KEY", "is readable by group or others: ssh will refuse it",
                       f"chmod 600 {ssh_key}")
    extra_pythonpath = fields.value("EXTRA_PYTHONPATH") or ""
    for item in [p for p in extra_pythonpath.split(":") if p]:
        if not os.path.exists(os.path.expanduser(item)):
            fields.problem("EXTRA_PYTHONPATH", f"{item} does not exist", "fix or remove that entry")
    return fields.section(dict(
        skyrl_home=skyrl_home, env_activate=env_activate, secret_env_file=secret_path,
        secret_keys=secret_keys, ssh_key=ssh_key, extra_pythonpath=extra_pythonpath,
        experiments_dir=_experiments_dir(fields), conda_env=fields.value("CONDA_ENV"),
        modules=fields.value("MODULES") or ""))


def check_tunnel(context: Context, found: Mapping[str, Any]) -> Section:
    """A login node to tunnel through when the compute nodes have no internet."""
    cluster = context.config.cluster
    fields = Fields(context.config, context.cwd)
    login_node = fields.value("LOGIN_NODE") or (cluster.login_nodes[0] if cluster.login_nodes else None)
    needs_tunnel = {"true": True, "false": False}.get(found.get("needs_tunnel_mode") or "auto")
    if login_node is None and (needs_tunnel is True or (needs_tunnel is None
                                                        and not cluster.compute_has_internet)):
        fields.problem("LOGIN_NODE", f"is needed for the tunnel ({cluster.name} compute nodes "
                       "have no internet)", "set LOGIN_NODE=<login node as compute nodes reach it> "
                       "in the site env file, or NEEDS_TUNNEL=false", value=None)
    egress_probe = fields.value("EGRESS_PROBE") or DEFAULT_EGRESS_PROBE
    if not _HOST_PORT.fullmatch(egress_probe):
        fields.problem("EGRESS_PROBE", "is not host:port", "write e.g. huggingface.co:443")
    return fields.section(dict(login_node=login_node, needs_tunnel=needs_tunnel,
                               egress_probe=egress_probe, ssh_user=fields.value("SSH_USER")))
