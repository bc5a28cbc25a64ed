"""Finding and reading the files of a job: the job config, the cluster, the site env file.

:func:`load_config` picks the job config (``--config``), the cluster and the site env file,
reads them (:mod:`ot_hpc.envfile`) and merges every layer
(:func:`ot_hpc.config.merge.merge`). :func:`list_configs` lists what ``--config`` finds.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from .. import clusters, paths
from ..envfile import EnvFile, read_env_file
from .merge import MergedConfig, first_pass_value, merge, short_path


class ConfigError(ValueError):
    """A file cannot be found or read; ``str()`` is one line with the fix."""


def list_configs(cwd: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The job configs ``--config NAME`` finds: ``*.env`` in the current directory, then in
    ``envs/`` (a name once, the first found wins), without the built-in clusters' site env
    files (``jsc.env`` ...). Sorted names, as ``--config`` takes them."""
    site_files = {c.env_file for c in clusters.BUILTIN_CLUSTERS if c.env_file}
    found: Dict[str, None] = {}
    directories = [Path(cwd or os.getcwd())] + list(paths.envs_dirs(environ))
    for directory in directories:
        try:
            entries = sorted(p for p in directory.iterdir()
                             if p.suffix == ".env" and p.is_file())
        except OSError:
            continue
        in_envs = directory != directories[0]
        for path in entries:
            if in_envs and path.name in site_files:
                continue
            found.setdefault(path.name, None)
    return sorted(found)


def load_config(
    config_name: Optional[str],
    cli_settings: Mapping[str, str],
    cli_overrides: Sequence[str] = (),
    hostname: str = "",
    fqdn: str = "",
    environ: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
) -> MergedConfig:
    """Read the job config and site env file and merge every layer.

    Cluster: ``--cluster`` > the job config's ``CLUSTER`` > ``$OT_HPC_CLUSTER`` >
    ``$SLURM_CLUSTER_NAME`` > hostname/FQDN. Site env file: ``--site-env`` > the job
    config's ``SITE_ENV`` > the cluster's ``env_file`` found in ``envs/`` (``none``: no file).
    Raises :class:`ConfigError` or :class:`ot_hpc.clusters.ClusterError`.
    """
    env = os.environ if environ is None else environ
    job_config: Optional[EnvFile] = None
    if config_name:
        found = paths.find_env_file(config_name, cwd, env)
        given = Path(cwd or os.getcwd()) / Path(config_name).expanduser()
        if found is None and given.is_dir():
            raise ConfigError(f"--config {config_name}: {given} is a directory; give the path "
                              "of a job config file (KEY=value lines)")
        if found is None:
            where = ", ".join(str(d) for d in paths.envs_dirs(env)) or "no envs/ directory found"
            names = list_configs(cwd, env)
            known = f"one of: {', '.join(names)}" if names else "no job config was found there"
            raise ConfigError(
                f"--config {config_name}: no such file in the current directory or envs/ "
                f"({where}); give a path, or {known}"
            )
        job_config = _read(str(found))
        if not job_config.bindings and not job_config.errors:
            raise ConfigError(f"--config {config_name}: {found} is empty; write the job's "
                              "settings as KEY=value lines (e.g. CLUSTER=..., NUM_NODES=...)")

    cli_cluster = (cli_settings.get("CLUSTER") or "").strip()
    file_cluster = (first_pass_value(job_config, "CLUSTER") or "").strip()
    if cli_cluster:
        cluster, cluster_source = clusters.get_cluster(cli_cluster, env), "--cluster"
    elif file_cluster:
        cluster = clusters.get_cluster(file_cluster, env)
        cluster_source = f"{short_path(job_config.path, cwd)} CLUSTER"  # type: ignore[union-attr]
    else:
        cluster = clusters.detect_cluster(hostname, fqdn, env)
        if (env.get(clusters.CLUSTER_ENV_VAR) or "").strip():
            cluster_source = f"${clusters.CLUSTER_ENV_VAR}"
        elif (env.get("SLURM_CLUSTER_NAME") or "").strip() and cluster.slurm_cluster_names:
            cluster_source = "$SLURM_CLUSTER_NAME"
        else:
            cluster_source = f"detected from host {fqdn or hostname}"

    site_choice = (cli_settings.get("SITE_ENV") or "").strip()
    site_source = "--site-env"
    if not site_choice:
        site_choice = (first_pass_value(job_config, "SITE_ENV") or "").strip()
        site_source = f"{short_path(job_config.path, cwd)} SITE_ENV" if job_config else ""
    if not site_choice:
        site_choice = cluster.env_file or ""
        site_source = f"cluster {cluster.name}"
        if site_choice and paths.find_env_file(site_choice, environ=env,
                                               search_cwd=False) is None:
            site_choice = ""  # the cluster's default file is optional
    site_env: Optional[EnvFile] = None
    if site_choice and site_choice.lower() != "none":
        if site_source == f"cluster {cluster.name}":
            found = paths.find_env_file(site_choice, environ=env, search_cwd=False)
        else:
            found = paths.find_env_file(site_choice, cwd, env)
        if found is None:
            raise ConfigError(
                f"SITE_ENV={site_choice} ({site_source}): no such file in the current directory "
                "or envs/; give an existing path or 'none'"
            )
        site_env = _read(str(found))
    return merge(cluster, cluster_source, site_env, job_config, cli_settings, cli_overrides,
                 environ=env, cwd=cwd, site_env_source=site_source)


def _read(path: str) -> EnvFile:
    try:
        return read_env_file(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not a text file (byte {exc.start + 1} is not UTF-8); write "
                          "KEY=value lines in UTF-8 text") from None
    except PermissionError:
        raise ConfigError(f"cannot read {path}: permission denied; make it readable "
                          f"(chmod u+r {path})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; check the path and its "
                          "permissions") from None
