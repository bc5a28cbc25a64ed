"""The job's Ray, locked to the job: token authentication, private directories, binds.

**The token.** A fresh ``secrets.token_hex(32)`` per run (what ``ray get-auth-token
--generate`` makes), whenever the trainer's Ray has token authentication (>= 2.52, see
:mod:`ot_hpc.rayauth`; ``RAY_AUTH=required`` refuses an older Ray, ``auto`` runs without
after one warning line). It is written, 0600 with ``O_EXCL|O_NOFOLLOW``, into a fresh
0700 directory on each node (:mod:`.private`):

- the runner's, on the batch node (``<TMPDIR>/ot-XXXXXXXX/ray-token``): the readiness
  poller and the trainer (the driver) get ``RAY_AUTH_MODE=token`` and
  ``RAY_AUTH_TOKEN_PATH`` pointing at it;
- each node agent's own, on its node: the runner hands the token to every agent in its
  environment (:data:`TOKEN_VAR`; through ``srun`` to the other nodes), never in argv
  (``/proc/<pid>/cmdline`` is world-readable, ``/proc/<pid>/environ`` only by our uid),
  and the agent writes its node-local copy before ``ray start``, which gets the same two
  variables and never :data:`TOKEN_VAR`. Node-local, because ``/tmp`` is node-local on a
  real cluster, and no copy is left on the shared filesystem if the job is killed.

The token never reaches argv, the job log (the Redactor knows it), the run-state, the spec
or ``ot-status``. ``RAY_AUTH_TOKEN`` (which Ray prefers to the file) is removed from every
environment, and ``RAY_AUTH_MODE`` is set explicitly on every process (Ray 2.59+ would turn
authentication on by itself for a head that finds ``~/.ray/auth_token``, never for joins).

**What listens.** With the token, every gRPC server (GCS, raylet, object manager, workers,
dashboard agent, Ray Client) and HTTP server (dashboard, dashboard agent, runtime-env agent)
refuses a request without it. The dashboard binds 127.0.0.1; the Ray Client server starts
only with ``RAY_CLIENT_SERVER=true``. Ray's Prometheus endpoints take no token and bind
every address (the dashboard's and the autoscaler's even on fixed ports, 44227 and 44217):
they stay off (:data:`METRICS_OFF`) unless the job's environment sets those variables.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

from .. import rayauth
from .exit_codes import EXIT_ENV
from .joblog import JobLog, PhaseError
from .private import (check_private_dir, make_private_dir, make_private_subdir, private_root,
                      write_private_file)

TOKEN_VAR = "OT_HPC_RAY_AUTH_TOKEN"  # the token on its way to a node agent (environment only)
FAULT_RAY_VERSION_VAR = "OT_HPC_FAULT_RAY_VERSION"  # tests: take the trainer's Ray to be this
TOKEN_FILE = "ray-token"
RAY_TEMP_NAME = "r"  # Ray's --temp-dir inside a node's private directory (Ray makes it 0777)
STRIPPED = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", TOKEN_VAR)
METRICS_OFF = {
    "RAY_enable_metrics_collection": "0",  # the dashboard agent's metrics export port
    "DASHBOARD_METRIC_PORT": "-1",  # an invalid port: Ray logs the failure and serves nothing
    "AUTOSCALER_METRIC_PORT": "-1",
}
# Characters below a root: the runner's ot-XXXXXXXX, a nested agent's XXXXXXXX, then r.
RUNNER_EXTRA = len("/ot-XXXXXXXX/XXXXXXXX/") + len(RAY_TEMP_NAME)
AGENT_EXTRA = len("/ot-XXXXXXXX/") + len(RAY_TEMP_NAME)


def auth_environment(token_path: Optional[str], temp_dir: str) -> Dict[str, str]:
    """What a Ray process (or the driver) needs: the mode (always explicit) and token path,
    a private TMPDIR."""
    env = {"TMPDIR": temp_dir, "RAY_TMPDIR": temp_dir, "RAY_AUTH_MODE": "disabled"}
    if token_path:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=token_path)
    return env


def without_token(env: Mapping[str, str]) -> Dict[str, str]:
    return {k: v for k, v in env.items() if k not in STRIPPED}


@dataclass(frozen=True)
class RaySecurity:
    """What the runner decided for this run (the token itself is never logged)."""

    token: Optional[str]  # None: no authentication (Ray < 2.52 under RAY_AUTH=auto)
    private_dir: str  # the runner's, on the batch node (0700)
    client_server: bool
    note: Optional[str] = None  # why $TMPDIR was not used, for the log

    @property
    def token_path(self) -> Optional[str]:
        return os.path.join(self.private_dir, TOKEN_FILE) if self.token else None

    def driver_environment(self, env: Mapping[str, str]) -> Dict[str, str]:
        """The poller's and the trainer's: mode, token path, TMPDIR in the private dir."""
        out = without_token(env)
        out.update(auth_environment(self.token_path, self.private_dir))
        return out

    def agent_environment(self, env: Mapping[str, str]) -> Dict[str, str]:
        """Every node agent's (head and srun'd workers): the token to copy, metrics off;
        TMPDIR stays the job's (each agent makes its private directory under it)."""
        out = without_token(env)
        for key, value in METRICS_OFF.items():
            out.setdefault(key, value)
        if self.token:
            out[TOKEN_VAR] = self.token
        return out

    def describe(self) -> str:
        auth = ("token authentication on (a fresh token per run, 0600)" if self.token
                else "NO authentication")
        client = "Ray Client server on (ray://)" if self.client_server else "no Ray Client server"
        return (f"{auth}; dashboard on 127.0.0.1 only; {client}; Ray's unauthenticated metrics "
                f"endpoints off unless the job's environment turns them on; private directory "
                f"{self.private_dir} (0700)")


def decide_auth(mode: str, version: Optional[str], python: str) -> Tuple[bool, Optional[str]]:
    """(token authentication on?, a warning line). Raises PhaseError under required."""
    if version and rayauth.supports_token_auth(version):
        return True, None
    risk = (rayauth.no_auth_risk(version, python) if version
            else f"the Ray version of {python} is unknown, so token authentication cannot be relied on")
    if mode == "required":
        raise PhaseError(f"RAY_AUTH=required but {risk}: install ray>={rayauth.minimum()} there, "
                         "or RAY_AUTH=auto", EXIT_ENV)
    if not version:
        return True, f"WARNING: {risk}; trying token authentication anyway"
    return False, f"WARNING: {risk}; running without it (RAY_AUTH=required refuses this)"


def prepare(mode: str, client_server: bool, version: Optional[str], python: str,
            env: Mapping[str, str], say: Callable[[str], None]) -> RaySecurity:
    """Decide, make the runner's private directory and (when on) the token file."""
    enabled, warning = decide_auth(mode, version, python)
    if warning:
        say(warning)
    root, note = private_root(env, RUNNER_EXTRA)
    try:
        directory = make_private_dir(root)
        token = secrets.token_hex(32) if enabled else None
        if token:
            write_private_file(directory, TOKEN_FILE, token)
    except OSError as exc:
        raise PhaseError(f"cannot make the job's private directory under {root}: {exc}", EXIT_ENV)
    return RaySecurity(token=token, private_dir=directory, client_server=client_server, note=note)


def setup(spec, ray_version: Optional[str], env: Mapping[str, str], log: JobLog) -> RaySecurity:
    """:func:`prepare` for the runner's spec, with its log lines; the Redactor learns the token."""
    ray_version = env.get(FAULT_RAY_VERSION_VAR) or ray_version
    security = prepare(spec.ray_auth, spec.ray_client_server, ray_version, spec.trainer_python,
                       env, lambda message: log.line("environment", message))
    log.redactor.add("RAY_AUTH_TOKEN", security.token)
    if security.note:
        log.line("environment", security.note)
    log.line("environment", f"Ray {ray_version or '(version unknown)'}: {security.describe()}")
    return security


@dataclass(frozen=True)
class NodePrivate:
    """A node agent's private directory, Ray's temp dir in it, and Ray's environment."""

    directory: str
    temp_dir: str
    env: Dict[str, str]
    note: Optional[str]
    authenticated: bool


def prepare_node(env: Mapping[str, str], parent: Optional[str]) -> NodePrivate:
    """For a node agent: a fresh private directory (inside ``parent``, the runner's, when
    the agent shares its host; else under this node's $TMPDIR or /tmp), the token's
    node-local copy, Ray's temp dir; and the environment for ``ray start``."""
    note = None
    if parent:
        check_private_dir(parent)
        directory = make_private_dir(parent, prefix="")
    else:
        root, note = private_root(env, AGENT_EXTRA)
        directory = make_private_dir(root)
    temp_dir = make_private_subdir(directory, RAY_TEMP_NAME)
    token = env.get(TOKEN_VAR)
    token_path = write_private_file(directory, TOKEN_FILE, token) if token else None
    out = without_token(env)
    out.update(auth_environment(token_path, temp_dir))
    return NodePrivate(directory, temp_dir, out, note, bool(token))
