"""Running the staging plan: download, then extract Harbor task parquets; and describing it.

``submission.schedule`` calls :func:`fetch_and_extract` before anything is written or
submitted and rebuilds its request with the local paths it returns; ``submission.dryrun``
calls :func:`expected_paths` (what those paths would be, touching nothing) and prints
:func:`predownload_lines`. Everything here takes plain values: the planned downloads
(:func:`ot_hpc.stage.plan.plan_downloads`), the ``PREDOWNLOAD`` mode, the cluster's name.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import harbor
from .fetch import INSTALL_HINT, fetch, huggingface_hub_available, read_hf_token
from .plan import Download, describe

Report = Optional[Callable[[str], None]]
Snapshots = Dict[Download, str]  # per download, its snapshot directory
Replacements = Dict[Download, Tuple[str, ...]]  # per dataset, the extracted task directories
HarborPlan = Dict[Download, Tuple[Tuple[str, str], ...]]  # per dataset, (parquet, extraction dir)


# --------------------------------------------------------------------------------------
# Doing: only submission.schedule calls these
# --------------------------------------------------------------------------------------


def fetch_and_extract(downloads: Sequence[Download], secret_env_file: Optional[str],
                      endpoint: Optional[str] = None, report: Report = None,
                      environment: Optional[Mapping[str, str]] = None,
                      ) -> Tuple[Snapshots, Replacements]:
    """Fetch the planned downloads, then extract the Harbor task parquets of the datasets;
    return (snapshot per download, extracted directories per Harbor dataset).

    The token is the HF token of the secret env file (``secret_env_file``), read here and
    passed to huggingface_hub only (``${VAR}`` in it against ``environment``, the job's
    variables, as the runner reads it); ``endpoint`` is the job environment's HF_ENDPOINT (None:
    the library's default). Nothing planned: nothing read, nothing done. Raises
    :class:`~ot_hpc.stage.errors.StageError` (one line)."""
    if not downloads:
        return {}, {}
    snapshots = fetch(downloads, token=read_hf_token(secret_env_file, environment), endpoint=endpoint,
                      report=report)
    return snapshots, extract_harbor(downloads, snapshots, report)


def extract_harbor(downloads: Sequence[Download], snapshots: Mapping[Download, str],
                   report: Report = None) -> Replacements:
    """Extract the Harbor task parquets of every downloaded dataset (each snapshot once);
    per download, the extracted directories SkyRL gets instead of the snapshot.
    Raises :class:`~ot_hpc.stage.errors.StageError` (one line)."""
    done: Dict[str, Tuple[str, ...]] = {}
    result: Replacements = {}
    for download in downloads:
        if download.kind != "dataset":
            continue
        snapshot = snapshots[download]
        if snapshot not in done:
            done[snapshot] = harbor.extract_snapshot(
                snapshot, f"{download.target_setting}={download.item}", report)
        if done[snapshot]:
            result[download] = done[snapshot]
            if report is not None:
                dropped = f" (split {download.split!r} does not apply to task folders)" \
                    if download.split else ""
                report(f"harbor: {download.target_setting}: {download.item} -> "
                       f"{', '.join(done[snapshot])}{dropped}")
    return result


# --------------------------------------------------------------------------------------
# Describing the plan (reads only): the dry run
# --------------------------------------------------------------------------------------


def planned_harbor(downloads: Sequence[Download]) -> HarborPlan:
    """Datasets already in the cache whose snapshot holds Harbor task parquets: per
    download, (parquet, extraction directory) pairs. Reads only (the parquet footers)."""
    found: HarborPlan = {}
    for download in downloads:
        snapshot = download.cached_snapshot() if download.kind == "dataset" else None
        if snapshot is not None:
            pairs = tuple((p, harbor.extraction_dir(snapshot, p))
                          for p in harbor.harbor_parquets(snapshot))
            if pairs:
                found[download] = pairs
    return found


def harbor_replacements(found: Mapping[Download, Tuple[Tuple[str, str], ...]]) -> Replacements:
    """Per dataset of :func:`planned_harbor`, the directories SkyRL would get."""
    return {download: tuple(dest for _p, dest in pairs) for download, pairs in found.items()}


def expected_paths(downloads: Sequence[Download]) -> Tuple[Snapshots, Replacements]:
    """What :func:`fetch_and_extract` would return, as far as can be told now without
    touching anything: the expected snapshots (``.../snapshots/<main>`` when not cached
    yet) and the extraction directories of Harbor datasets already in the cache."""
    return ({d: d.expected_snapshot() for d in downloads},
            harbor_replacements(planned_harbor(downloads)))


def predownload_lines(downloads: Sequence[Download], predownload_mode: Optional[str],
                      cluster_name: str) -> List[str]:
    """Comment lines: what ``schedule`` would download first, and the paths SkyRL would get
    (``predownload_mode``: the PREDOWNLOAD setting; ``cluster_name``: the job's cluster)."""
    if not downloads:
        return []
    mode = (predownload_mode or "auto").strip().lower()
    why = (f"PREDOWNLOAD=auto: compute nodes of {cluster_name} have no internet"
           if mode == "auto" else f"PREDOWNLOAD={mode}")
    out = ["#", f"# Pre-download ({why}):",
           f"# on submission (not now) ot-submit downloads into {downloads[0].cache_dir}"
           " and gives SkyRL the local snapshots:"]
    pending = False
    for download in downloads:
        cached = download.cached_snapshot()
        pending = pending or cached is None
        out.append(f"#   {describe(download, download.expected_snapshot(), cached is not None)}")
    if pending:
        out.append("#   (<main>: the commit `main` points to when it is downloaded)")
    if not huggingface_hub_available():
        out.append(f"# Note: huggingface_hub does not import here, so the submission would stop: "
                   f"{INSTALL_HINT}")
    out.extend(harbor_lines(downloads))
    return out


def harbor_lines(downloads: Sequence[Download]) -> List[str]:
    """Comment lines: Harbor task parquets that ``schedule`` would extract (never now)."""
    datasets = [d for d in downloads if d.kind == "dataset"]
    if not datasets:
        return []
    found = planned_harbor(downloads)
    pending = any(d.cached_snapshot() is None for d in datasets)
    if not found and not pending:
        return []
    out = ["# Harbor task parquets (columns path, task_binary) in a downloaded dataset are "
           "extracted on submission (not now)",
           f"# to <repo folder>/{harbor.EXTRACT_DIR}/<commit>/<parquet name>/ and SkyRL gets those "
           "directories instead of the snapshot:"]
    for download, pairs in found.items():
        for parquet, dest in pairs:
            done = "  (already extracted)" if harbor.is_extracted(parquet, dest) else ""
            out.append(f"#   {download.target_setting}: {parquet} -> {dest}{done}")
    if pending:
        out.append("#   (datasets not in the cache yet are checked after their download)")
    if found and not harbor.pyarrow_available():
        out.append(f"# Note: pyarrow does not import here, so the submission would stop: "
                   f"{harbor.PYARROW_HINT}")
    return out
