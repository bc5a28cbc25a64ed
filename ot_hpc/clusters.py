"""The cluster registry on the login node: the built-in clusters plus the user's files.

One source of truth per default: ``ot-submit`` takes its built-in account, partition,
GPUs, ... from here (a site env file or job config may override them) and writes the
chosen :class:`~ot_hpc.cluster_facts.Cluster` into the job spec; the runner uses that
record (interconnect names, NCCL interface, login node to tunnel through) and never
reads the registry's files.

Add or override a cluster without editing Python: write ``<name>.env`` into
``$OT_HPC_CLUSTERS_DIR``, ``~/.config/ot-hpc/clusters/`` or ``envs/clusters/`` with
``CLUSTER_<FIELD>`` keys (``CLUSTER_BASE=jsc_jureca`` starts from an existing cluster;
a file named like a built-in cluster starts from it)::

    # ~/.config/ot-hpc/clusters/jsc_jureca_dcgpu.env
    CLUSTER_BASE=jsc_jureca
    CLUSTER_PARTITION=dc-gpu
    CLUSTER_MAX_NODES=64
    CLUSTER_EXCLUDE_NODES=jrc[0001-0004],jrc0100

Lists: ``CLUSTER_LOGIN_NODES``/``CLUSTER_EXCLUDE_NODES``/``CLUSTER_SLURM_CLUSTER_NAMES``
are comma-separated (brackets kept together), ``CLUSTER_LOGIN_PATTERNS``/
``CLUSTER_COMPUTE_PATTERNS`` are whitespace-separated regular expressions matched against
the whole hostname or FQDN (case-insensitive). Empty values mean None.
``CLUSTER_GPU_REQUEST`` is ``gres`` (``--gres=gpu:N``) or ``none`` (whole nodes, GPUs come
with them; Ray counts ``CLUSTER_GPU_DEVICES``, a glob, on the node).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from . import paths
from .cluster_facts import GPU_REQUESTS, SITES, TUPLE_FIELDS, Cluster, match_cluster
from .envfile import env_file_values
from .hostlist import split_hostlist_items

CLUSTER_ENV_VAR = "OT_HPC_CLUSTER"


class ClusterError(ValueError):
    """A cluster cannot be found, detected or defined. ``str()`` is one line with the fix."""


class ClusterNotFound(ClusterError):
    pass


class ClusterFileError(ClusterError):
    pass


def _domain(*labels: str) -> str:
    """``(?:\\.a\\.b)?``-style optional escaped domain tail."""
    return "(?:" + "".join(r"\." + re.escape(label) for label in labels) + ")"


_JURECA = "(?:" + _domain("jureca") + _domain("fz-juelich", "de") + "?)"
_JUWELS = "(?:" + _domain("juwels") + _domain("fz-juelich", "de") + "?)"
_JUPITER = _domain("jupiter", "internal")
_VISTA = _domain("vista", "tacc", "utexas", "edu")
_LS6 = _domain("ls6", "tacc", "utexas", "edu")
_LEONARDO = _domain("leonardo", "local")

# The built-in clusters. Numbers are the legacy launcher's (see the legacy-system notes),
# except where a comment says otherwise.
BUILTIN_CLUSTERS: Tuple[Cluster, ...] = (
    Cluster(
        name="jsc_jureca",
        site="jsc",
        account="westai0007",
        partition="dc-hwai",
        qos="normal",
        gpus_per_node=4,
        cpus_per_node=48,
        memory_per_node_gb=512,
        gpu_type="H100 94GB",
        cpu_arch="x86_64",
        max_nodes=16,
        max_time_minutes=24 * 60,
        compute_has_internet=False,
        login_nodes=("jrlogin05i",),
        interconnect_suffix="i",
        nccl_socket_ifname="ib0",
        env_file="jsc.env",
        login_patterns=(rf"jrlogin\d+i?{_JURECA}?", rf"jr[a-z0-9-]*{_JURECA}"),
        compute_patterns=(rf"jrc\d+i?{_JURECA}?",),
        slurm_cluster_names=("jureca", "jurecadc"),
        account_required=True,
        description="JSC JURECA-DC (H100 partition)",
    ),
    Cluster(
        name="jsc_jupiter",
        site="jsc",
        account="jureap1",
        partition="all",
        qos="normal",
        gpus_per_node=4,
        cpus_per_node=48,
        memory_per_node_gb=480,
        gpu_type="GH200 96GB",
        cpu_arch="aarch64",
        max_nodes=48,
        max_time_minutes=24 * 60,
        compute_has_internet=False,
        login_nodes=(),  # not known yet: set LOGIN_NODE in jsc.env (short name + "i")
        interconnect_suffix="i",
        nccl_socket_ifname="ib0",
        env_file="jsc.env",
        login_patterns=(rf"jpbl-s\d+-\d+i?{_JUPITER}?", rf"j[a-z0-9-]*{_JUPITER}"),
        compute_patterns=(rf"jpbo-\d+-\d+i?{_JUPITER}?",),
        slurm_cluster_names=("jupiter",),
        account_required=True,
        description="JSC JUPITER Booster (GH200, aarch64)",
    ),
    Cluster(
        name="jsc_juwels",
        site="jsc",
        account="laionize",
        partition="booster",
        qos="normal",
        gpus_per_node=4,
        cpus_per_node=48,
        memory_per_node_gb=512,
        gpu_type="A100 40GB",
        cpu_arch="x86_64",
        max_nodes=936,
        max_time_minutes=24 * 60,
        exclude_nodes=(
            "jwb[0059,0067,0069,0193,0198,0215,0266,0284,0287,0294,0359,0418,0637,0647,"
            "0829,0832,0838,0898,0907,0921,0971,1004,1023,1029,1213]",
        ),
        compute_has_internet=False,
        login_nodes=("jwlogin22i",),
        interconnect_suffix="i",
        nccl_socket_ifname="ib0",
        env_file="jsc.env",
        login_patterns=(rf"jwlogin\d+i?{_JUWELS}?", rf"jw[a-z0-9-]*{_JUWELS}"),
        compute_patterns=(rf"jwb\d+i?{_JUWELS}?", rf"jwc\d+n\d+i?{_JUWELS}?"),
        slurm_cluster_names=("juwels", "juwelsbooster"),
        account_required=True,
        description="JSC JUWELS Booster (A100)",
    ),
    Cluster(
        name="tacc_vista",
        site="tacc",
        account="CCR24067",
        partition="gh",
        qos=None,
        gpus_per_node=1,
        cpus_per_node=72,
        memory_per_node_gb=120,  # Grace LPDDR5X; the GPU's 96 GB HBM3 comes on top
        gpu_type="GH200 96GB",
        cpu_arch="aarch64",
        max_nodes=552,
        max_time_minutes=48 * 60,
        compute_has_internet=True,
        env_file="tacc.env",
        login_patterns=(rf"login\d+{_VISTA}", rf"[a-z0-9-]+{_VISTA}"),
        compute_patterns=(rf"c\d{{3}}-\d{{3}}{_VISTA}",),
        slurm_cluster_names=("vista",),
        # The users' own TACC scripts: whole nodes (-p gh --nodes N --ntasks-per-node 1
        # --cpus-per-task=72), never --gres, and these broken nodes excluded.
        gpu_request="none",
        exclude_nodes=("c610-021", "c611-011", "c640-041", "c611-041", "c611-122", "c637-082",
                       "c637-091", "c610-111"),
        description="TACC Vista (GH200, aarch64, 1 GPU per node)",
    ),
    Cluster(
        name="tacc_lonestar",
        site="tacc",
        account="CCR24067",
        partition="gpu-a100",
        qos=None,
        gpus_per_node=3,
        cpus_per_node=128,
        memory_per_node_gb=256,
        gpu_type="A100 40GB",
        cpu_arch="x86_64",
        max_nodes=73,
        max_time_minutes=48 * 60,
        compute_has_internet=True,
        env_file="tacc.env",
        login_patterns=(rf"login\d+{_LS6}", rf"[a-z0-9-]+{_LS6}"),
        compute_patterns=(rf"c\d{{3}}-\d{{3}}{_LS6}",),
        slurm_cluster_names=("ls6", "lonestar6"),
        gpu_request="none",  # whole nodes, as on Vista (TACC schedules nodes, not GPUs)
        description="TACC Lonestar6 (A100, 3 GPUs per node)",
    ),
    Cluster(
        name="leonardo",
        site="leonardo",
        account=None,  # every project has its own: set ACCOUNT in leonardo.env
        partition="boost_usr_prod",
        qos="normal",
        gpus_per_node=4,
        cpus_per_node=32,
        memory_per_node_gb=512,
        gpu_type="A100 64GB",  # the legacy notes say 80GB; CINECA documents 64 GB HBM2e
        cpu_arch="x86_64",
        max_nodes=64,  # QOS normal on boost_usr_prod
        max_time_minutes=24 * 60,
        compute_has_internet=False,
        login_nodes=(),  # set LOGIN_NODE in leonardo.env
        env_file="leonardo.env",
        login_patterns=(rf"login\d+(?:-ext)?{_LEONARDO}", rf"[a-z0-9-]+{_LEONARDO}"),
        compute_patterns=(rf"lrdn\d+{_LEONARDO}?",),
        slurm_cluster_names=("leonardo",),
        account_required=True,
        description="CINECA Leonardo Booster (A100)",
    ),
    Cluster(
        name="local",
        site="local",
        account=None,
        partition="debug",  # the local cluster also has a "gpu" partition (same nodes)
        qos=None,
        gpus_per_node=4,  # fake GPUs (gres File=/dev/null): jobs get CUDA_VISIBLE_DEVICES
        gpu_devices="/dev/ot-fake-nvidia[0-9]*",  # the fake GPUs' device files
        cpus_per_node=None,  # whatever the emulated node has (2 here)
        memory_per_node_gb=None,
        gpu_type="emulated",
        cpu_arch="x86_64",
        max_nodes=3,
        max_time_minutes=24 * 60,
        # As on JSC: the compute nodes' only way out is an SSH tunnel to the login node
        # (with separate hosts, tools/local-network.sh, they really have no route out).
        compute_has_internet=False,
        login_nodes=("ot-login",),  # the local sshd (tools/local-login-sshd.sh, see local.env)
        env_file="local.env",
        login_patterns=(),  # hostnames differ per machine: use --cluster local / CLUSTER=local
        compute_patterns=(),
        slurm_cluster_names=("local", "ot-hpc", "ot-hpc-local", "othpc"),
        description="the project's own Slurm cluster on this machine (tools/local-cluster.sh)",
    ),
)

_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Cluster))
_WHITESPACE_LIST_FIELDS = {"login_patterns", "compute_patterns"}
_INT_FIELDS = {"gpus_per_node", "max_nodes", "max_time_minutes"}
_OPTIONAL_INT_FIELDS = {"cpus_per_node", "memory_per_node_gb"}
_BOOL_FIELDS = {"compute_has_internet", "account_required"}
_OPTIONAL_STR_FIELDS = {"account", "partition", "qos", "nccl_socket_ifname", "env_file"}
_CHOICE_FIELDS = {"gpu_request": GPU_REQUESTS}
_REQUIRED_FOR_NEW = ("site", "partition", "gpus_per_node", "max_nodes", "max_time_minutes")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true/false")


def _convert(field_name: str, raw: Optional[str]):
    text = (raw or "").strip()
    if field_name in TUPLE_FIELDS:
        if field_name in _WHITESPACE_LIST_FIELDS:
            items = tuple(text.split())
            for pattern in items:
                re.compile(pattern)
            return items
        return tuple(split_hostlist_items(text))
    if field_name in _INT_FIELDS:
        return int(text)
    if field_name in _OPTIONAL_INT_FIELDS:
        return int(text) if text else None
    if field_name in _BOOL_FIELDS:
        return _parse_bool(text)
    if field_name in _OPTIONAL_STR_FIELDS:
        return text or None
    if field_name in _CHOICE_FIELDS and text.lower() not in _CHOICE_FIELDS[field_name]:
        raise ValueError(f"not one of {', '.join(_CHOICE_FIELDS[field_name])}")
    return text.lower() if field_name in _CHOICE_FIELDS else text


def cluster_from_env_values(
    name: str, values: Mapping[str, Optional[str]], base: Optional[Cluster], source: str
) -> Cluster:
    """Build a cluster from ``CLUSTER_<FIELD>`` values on top of ``base`` (may be None)."""
    updates: Dict[str, object] = {}
    for key, raw in values.items():
        if key == "CLUSTER_BASE":
            continue
        if not key.startswith("CLUSTER_"):
            raise ClusterFileError(
                f"{source}: key {key} is not a cluster field: use CLUSTER_<FIELD> keys "
                f"(fields: {', '.join(f.upper() for f in _FIELD_NAMES if f not in ('name', 'source'))})"
            )
        field_name = key[len("CLUSTER_"):].lower()
        if field_name not in _FIELD_NAMES or field_name in ("name", "source"):
            raise ClusterFileError(
                f"{source}: {key} is not a cluster field: use one of "
                + ", ".join("CLUSTER_" + f.upper() for f in _FIELD_NAMES if f not in ("name", "source"))
            )
        try:
            updates[field_name] = _convert(field_name, raw)
        except (ValueError, re.error) as exc:
            raise ClusterFileError(f"{source}: {key}={raw!r} is invalid ({exc}): fix the value") from None
    if base is not None:
        cluster = dataclasses.replace(base, name=name, source=source, **updates)
    else:
        missing = [f for f in _REQUIRED_FOR_NEW if f not in updates]
        if missing:
            raise ClusterFileError(
                f"{source}: a new cluster needs "
                + ", ".join("CLUSTER_" + f.upper() for f in missing)
                + " (or CLUSTER_BASE=<existing cluster> to start from one)"
            )
        defaults = dict(account=None, qos=None, cpus_per_node=None, memory_per_node_gb=None,
                        gpu_type="", cpu_arch="x86_64")
        defaults.update(updates)
        cluster = Cluster(name=name, source=source, **defaults)  # type: ignore[arg-type]
    if cluster.site not in SITES:
        raise ClusterFileError(
            f"{source}: CLUSTER_SITE={cluster.site!r} is unknown: use one of {', '.join(SITES)}"
        )
    return cluster


def _read_cluster_file(path: Path, environ: Mapping[str, str]) -> Dict[str, Optional[str]]:
    """A cluster file's values, read like every env file (:mod:`ot_hpc.envfile`)."""
    try:
        return dict(env_file_values(str(path), environ))
    except ValueError as exc:
        raise ClusterFileError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterFileError(f"{path}: cannot be read ({exc}); fix its permissions") from None


def load_clusters(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Cluster]:
    """Built-in clusters plus the user's cluster files (first directory wins per name)."""
    registry: Dict[str, Cluster] = {c.name: c for c in BUILTIN_CLUSTERS}
    files: Dict[str, Path] = {}
    for directory in paths.cluster_dirs(environ):
        for path in sorted(directory.glob("*.env")):
            files.setdefault(path.stem, path)
    # Overrides of existing clusters first, so CLUSTER_BASE sees the overridden version.
    ordered = sorted(files.items(), key=lambda item: (item[0] not in registry, item[0]))
    for name, path in ordered:
        if not _NAME_RE.fullmatch(name):
            raise ClusterFileError(f"{path}: cluster file names may hold letters, digits, '_', '.', '-'")
        values = _read_cluster_file(path, os.environ if environ is None else environ)
        base_name = (values.get("CLUSTER_BASE") or "").strip() or None
        if base_name is not None and base_name not in registry:
            raise ClusterFileError(
                f"{path}: CLUSTER_BASE={base_name} is not a known cluster: use one of "
                + ", ".join(sorted(registry))
            )
        base = registry.get(base_name or name)
        registry[name] = cluster_from_env_values(name, values, base, str(path))
    return registry


def known_clusters(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    return list(load_clusters(environ))


def get_cluster(name: str, environ: Optional[Mapping[str, str]] = None) -> Cluster:
    registry = load_clusters(environ)
    key = (name or "").strip()
    if key in registry:
        return registry[key]
    lowered = {k.lower(): v for k, v in registry.items()}
    if key.lower() in lowered:
        return lowered[key.lower()]
    import difflib

    close = difflib.get_close_matches(key, list(registry), n=1)
    raise ClusterNotFound(
        f"cluster {name!r} is unknown: " + (f"did you mean {close[0]}? " if close else "")
        + f"use one of {', '.join(registry)}"
        " (or add one in ~/.config/ot-hpc/clusters/<name>.env)"
    )


def detect_cluster(
    hostname: str,
    fqdn: str,
    environ: Mapping[str, str],
    explicit: Optional[str] = None,
) -> Cluster:
    """Which cluster we are on.

    Order: ``explicit`` (``--cluster``), ``$OT_HPC_CLUSTER``, ``$SLURM_CLUSTER_NAME``
    (inside a job), then the hostname and the FQDN against every cluster's login and
    compute patterns. Raises :class:`ClusterNotFound` with one line naming the fix.
    """
    chosen = (explicit or "").strip() or (environ.get(CLUSTER_ENV_VAR) or "").strip()
    if chosen:
        return get_cluster(chosen, environ)
    registry = load_clusters(environ)
    found = match_cluster(registry.values(), hostname, fqdn, environ.get("SLURM_CLUSTER_NAME") or "")
    if found is not None:
        return found
    shown = hostname if not fqdn or fqdn == hostname else f"{hostname} ({fqdn})"
    raise ClusterNotFound(
        f"cannot tell which cluster host {shown} belongs to: pass --cluster NAME "
        f"(or set {CLUSTER_ENV_VAR}) with one of {', '.join(registry)}"
    )


def detect_current_cluster(
    explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None
) -> Cluster:
    """:func:`detect_cluster` for this process (socket hostname/FQDN, os.environ)."""
    import socket

    env = os.environ if environ is None else environ
    hostname = socket.gethostname()
    try:
        fqdn = socket.getfqdn()
    except OSError:
        fqdn = hostname
    return detect_cluster(hostname, fqdn, env, explicit)
