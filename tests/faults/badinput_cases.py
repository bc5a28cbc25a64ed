"""The bad-input cases of issue 13, as data: what is broken, which field the one line must
name, and a word of the fix it must give. Run by ``test_bad_input.py`` through the real
``bin/`` entry points."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

Content = Union[str, bytes, None]


@dataclass(frozen=True)
class Case:
    id: str
    field: str  # must appear in the line (the field, key, flag or file named)
    fix: str  # a regular expression the line must match (the fix), case-insensitive
    config: Dict[str, str] = field(default_factory=dict)  # job config keys set/replaced
    raw_config: Content = None  # the whole job config file instead (bytes: binary)
    extra: Content = None  # appended to the (good) job config as it is
    args: Tuple[str, ...] = ()
    site: Dict[str, str] = field(default_factory=dict)  # site env keys set/replaced
    raw_site: Content = None
    prepare: Optional[Callable[[Path], None]] = None  # more set-up in the case's directory
    command: str = "ot-submit"  # or "runner", "ot-rmlogs"
    without_root_reads: bool = False  # root reads every file: drop that for "unreadable"


def _write(path: Path, content: Content, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content or "")
    path.chmod(mode)


def _secret_mode(mode: int) -> Callable[[Path], None]:
    return lambda tmp: (tmp / "secret.env").chmod(mode)


def _remove(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).unlink()


def _config_dir(tmp: Path) -> None:
    (tmp / "job.env").unlink()
    (tmp / "job.env").mkdir()


def _unreadable_config(tmp: Path) -> None:
    (tmp / "job.env").chmod(0o000)


def _cluster_file(text: str) -> Callable[[Path], None]:
    return lambda tmp: _write(tmp / "clusters" / "local.env", text)


def _spec(content: Content) -> Callable[[Path], None]:
    return lambda tmp: _write(tmp / "spec.json", content, 0o600)


def _good_spec_dict() -> dict:
    from ot_hpc.spec import JobSpec

    return JobSpec(job_name="x", cluster="local", num_nodes=1, experiments_dir="/tmp/x",
                   trainer_python="/usr/bin/python3", entrypoint_module="ot_hpc.demo_trainer").to_dict()


def _logs_link_to_root(tmp: Path) -> None:
    (tmp / "rmexp").mkdir()
    (tmp / "rmexp" / "logs").symlink_to("/")
    (tmp / "rmexp" / "specs").mkdir()


def _secret_dir(tmp: Path) -> None:
    (tmp / "secret.env").unlink()
    (tmp / "secret.env").mkdir(mode=0o700)


CASES = (
    # -- malformed env files -----------------------------------------------------------
    Case("config-line-without-equals", "job.env", r"KEY=value", extra="NUM_NODES 2\n"),
    Case("config-unterminated-quote", "job.env", r"quote|KEY=value", extra='ENV_GREETING="open\n'),
    Case("config-binary-junk", "job.env", r"text|KEY=value", extra=b"\x00\xff\xfe\x89PNG\r\n\x1a\n\x00\x00"),
    Case("config-empty", "job.env", r"KEY=value", raw_config=""),
    Case("config-is-a-directory", "job.env", r"file|path", prepare=_config_dir),
    Case("config-missing", "nope.env", r"give a path", args=("--config", "nope.env")),
    Case("config-unreadable", "job.env", r"permission", prepare=_unreadable_config, without_root_reads=True),
    Case("site-env-line-without-equals", "local.env", r"=<value>|KEY=value", raw_site="EXPERIMENTS_DIR\n"),
    Case("site-env-binary-junk", "local.env", r"text|KEY=value", raw_site=b"\xff\xfe\x00junk"),
    Case("secret-file-bad-line", "SECRET_ENV_PATH", r"KEY=value",
         prepare=lambda tmp: _write(tmp / "secret.env", "HF_TOKEN abc\n", 0o600)),
    Case("cluster-file-bad-value", "CLUSTER_GPU_REQUEST", r"gres, none",
         prepare=_cluster_file("CLUSTER_GPU_REQUEST=gpus\n")),
    Case("cluster-file-unknown-key", "CLUSTER_NODES", r"use one of", prepare=_cluster_file("CLUSTER_NODES=3\n")),
    # -- unknown and misspelled keys ---------------------------------------------------
    Case("unknown-key", "FROBNICATE", r"remove|did you mean|known", config={"FROBNICATE": "1"}),
    Case("misspelled-key", "NUM_NODE", r"NUM_NODES", config={"NUM_NODE": "1"}),
    Case("misspelled-flag", "--num-nodez", r"--num-nodes", args=("--num-nodez", "1")),
    Case("key-given-twice", "NUM_NODES", r"keep one", extra="NUM_NODES=2\n"),
    Case("secret-in-config", "HF_TOKEN", r"SECRET_ENV_PATH|secret", config={"HF_TOKEN": "hf_abcdef"}),
    # -- wrong types -------------------------------------------------------------------
    Case("nodes-not-a-number", "NUM_NODES", r"whole number|integer|number", config={"NUM_NODES": "two"}),
    Case("gpus-fraction", "GPUS_PER_NODE", r"whole number|integer|number", config={"GPUS_PER_NODE": "1.5"}),
    Case("bool-not-a-bool", "HOLD", r"true|false", config={"HOLD": "maybe"}),
    Case("choice-not-a-choice", "NEEDS_TUNNEL", r"auto|true|false", config={"NEEDS_TUNNEL": "sometimes"}),
    Case("port-out-of-range", "SSH_PORT", r"65535|port", config={"SSH_PORT": "70000"}),
    Case("max-restarts-negative", "MAX_RESTARTS", r"digits|0 or more|at least", config={"MAX_RESTARTS": "-1"}),
    Case("ray-join-timeout-negative", "RAY_JOIN_TIMEOUT", r"digits|0 or more|at least", config={"RAY_JOIN_TIMEOUT": "-5"}),
    Case("ray-resources-bad-json", "RAY_RESOURCES", r"JSON|\{", config={"RAY_RESOURCES": "{bad"}),
    # -- node counts ---------------------------------------------------------------------
    Case("nodes-negative", "NUM_NODES", r"digits|1 or more", config={"NUM_NODES": "-1"}),
    Case("nodes-zero", "NUM_NODES", r"1 or more", config={"NUM_NODES": "0"}),
    Case("nodes-huge", "NUM_NODES", r"1\.\.3", config={"NUM_NODES": "100000"}),
    Case("nodes-overflow", "NUM_NODES", r"1\.\.3", config={"NUM_NODES": "9" * 30}),
    # -- time limits ---------------------------------------------------------------------
    Case("time-zero", "TIME_LIMIT", r"HH:MM:SS|at least|minute", config={"TIME_LIMIT": "00:00:00"}),
    Case("time-negative", "TIME_LIMIT", r"HH:MM:SS|at least|minute", config={"TIME_LIMIT": "-1"}),
    Case("time-garbage", "TIME_LIMIT", r"HH:MM:SS", config={"TIME_LIMIT": "soon"}),
    Case("time-over-partition", "TIME_LIMIT", r"at most 1440 minutes", config={"TIME_LIMIT": "30-00:00:00"}),
    Case("time-impossible-minutes", "TIME_LIMIT", r"HH:MM:SS|59", config={"TIME_LIMIT": "01:75:00"}),
    # -- GPUs ------------------------------------------------------------------------------
    Case("gpus-over-node", "GPUS_PER_NODE", r"0\.\.4", config={"GPUS_PER_NODE": "5"}),
    Case("gpus-negative", "GPUS_PER_NODE", r"digits|0 or more|at least", config={"GPUS_PER_NODE": "-1"}),
    # -- paths that do not exist ---------------------------------------------------------
    Case("python-missing", "PYTHON", r"path|install|fix", config={"PYTHON": "/nonexistent/bin/python"}),
    Case("trainer-python-missing", "TRAINER_PYTHON", r"path|install|fix",
         config={"TRAINER_PYTHON": "/nonexistent/bin/python"}),
    Case("env-activate-missing", "ENV_ACTIVATE", r"path|fix", config={"ENV_ACTIVATE": "/nonexistent/activate"}),
    Case("ssh-key-missing", "SSH_KEY", r"path|fix", config={"SSH_KEY": "/nonexistent/id_ed25519"}),
    Case("skyrl-home-missing", "SKYRL_HOME", r"path|fix", config={"SKYRL_HOME": "/nonexistent/skyrl"}),
    Case("experiments-dir-under-a-file", "EXPERIMENTS_DIR", r"directory", config={"EXPERIMENTS_DIR": "/etc/passwd/exp"}),
    Case("extra-pythonpath-missing", "EXTRA_PYTHONPATH", r"fix|remove", config={"EXTRA_PYTHONPATH": "/nonexistent/lib"}),
    # -- clusters ----------------------------------------------------------------------------
    Case("cluster-unknown", "cluster 'nosuch'", r"use one of", args=("--cluster", "nosuch")),
    Case("cluster-misspelled", "cluster 'local_'", r"use one of|did you mean", config={"CLUSTER": "local_"}),
    # -- the secret file -------------------------------------------------------------------
    Case("secret-world-readable", "SECRET_ENV_PATH", r"chmod 600", prepare=_secret_mode(0o644)),
    Case("secret-missing", "SECRET_ENV_PATH", r"path|fix|create", prepare=_remove("secret.env")),
    Case("secret-is-a-directory", "SECRET_ENV_PATH", r"file|path|fix", prepare=_secret_dir),
    # -- the runner's spec -------------------------------------------------------------------
    Case("spec-truncated", "spec.json", r"submit the job again",
         prepare=_spec(json.dumps(_good_spec_dict())[:40]), command="runner"),
    Case("spec-newer-schema", "version 99", r"install the ot-hpc",
         prepare=_spec(json.dumps({**_good_spec_dict(), "version": 99})), command="runner"),
    Case("spec-not-an-object", "spec.json", r"submit the job again", prepare=_spec("[1, 2]"), command="runner"),
    Case("spec-missing", "spec.json", r"submit the job again|path", command="runner"),
    Case("spec-binary", "spec.json", r"submit the job again", prepare=_spec(b"\xff\xfe\x00\x01"), command="runner"),
    # -- ot-rmlogs ----------------------------------------------------------------------------
    Case("rmlogs-logs-link-to-root", "logs", r"symbolic link", prepare=_logs_link_to_root,
         command="ot-rmlogs", args=("--days", "1", "--experiments-dir", "{tmp}/rmexp")),
    Case("rmlogs-days-zero", "--days", r"positive|> 0", command="ot-rmlogs", args=("--days", "0")),
    Case("rmlogs-days-garbage", "--days", r"number", command="ot-rmlogs", args=("--days", "soon")),
    Case("rmlogs-dir-missing", "--experiments-dir", r"directory", command="ot-rmlogs",
         args=("--days", "1", "--experiments-dir", "{tmp}/nonexistent")),
)
