"""Planning the login-node pre-download of Hugging Face models and datasets named by id (pure).

Compute nodes of some clusters (JSC, Leonardo) have no internet. With ``PREDOWNLOAD=auto``
(on exactly those clusters) or ``true``, ot-submit downloads every Hugging Face id named by
``MODEL_PATH``, ``TRAIN_DATA`` and ``VAL_DATA`` into the site's HF cache (``HF_HUB_CACHE``,
else ``$HF_HOME/hub`` of the site env file or job config; else, with a warning, where
huggingface_hub itself would cache) on the shared filesystem, and hands SkyRL the local
snapshot directories instead (``trainer.policy.model.path=<snapshot>``,
``data.train_data=['<snapshot>:train']``).

This module only plans: :func:`plan_downloads` says what would be downloaded (a tuple of
:class:`Download`; ``submission.build`` calls it and ``dryrun`` prints it) and
:func:`localized_overrides` what SkyRL gets instead. It never touches the network and
writes nothing; :mod:`ot_hpc.stage.fetch` downloads.

What is a Hugging Face id: ``org/name`` (datasets also ``org/name:split``, SkyRL's syntax)
that is neither an existing local path nor written as a path (``/``, ``~``, ``./``, ``../``)
nor a data file (``.parquet``, ``.json`` ...).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

from ..hydra import list_for, quote_for
from .errors import EXIT_INPUT, StageError

if TYPE_CHECKING:  # pragma: no cover
    from ..clusters import Cluster
    from ..config.merge import Override

MODES = ("auto", "true", "false")
DEFAULT_REVISION = "main"
# Mapped settings whose values may be Hugging Face ids, and the kind of repo each names.
KINDS: Mapping[str, str] = {"MODEL_PATH": "model", "TRAIN_DATA": "dataset", "VAL_DATA": "dataset"}
DATA_SUFFIXES = (".parquet", ".json", ".jsonl", ".csv", ".arrow")
PENDING_COMMIT = "<main>"  # stands for the commit a branch points to when downloaded

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SPLIT = re.compile(r"^[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


# --------------------------------------------------------------------------------------
# Classifying values
# --------------------------------------------------------------------------------------


def looks_like_path(text: str) -> bool:
    """Written as a path or a data file: never a Hugging Face id."""
    return text.startswith(("/", "~", "./", "../")) or text.lower().endswith(DATA_SUFFIXES)


def parse_hub_id(text: str, kind: str) -> Optional[Tuple[str, str]]:
    """``org/name`` -> (``org/name``, ""); for datasets ``org/name:split`` -> (id, split).
    None when ``text`` is not a Hugging Face id (a path, a data file, anything else)."""
    if looks_like_path(text):
        return None
    repo_id, split = text, ""
    if kind == "dataset" and ":" in text:
        repo_id, _, split = text.partition(":")
        if not _SPLIT.match(split):
            return None
    if not _HF_ID.match(repo_id):
        return None
    return repo_id, split


def classify_value(text: str, kind: str, cwd: str) -> str:
    """``path`` (written as a path, or an existing file/directory relative to ``cwd``),
    ``hub`` (a Hugging Face id) or ``invalid``."""
    if looks_like_path(text) or os.path.exists(os.path.join(cwd, os.path.expanduser(text))):
        return "path"
    return "hub" if parse_hub_id(text, kind) is not None else "invalid"


def predownload_enabled(mode: Optional[str], cluster: "Cluster") -> bool:
    """true: always; false: never; auto (the default): when the compute nodes have no internet."""
    mode = (mode or "auto").strip().lower()
    if mode == "true":
        return True
    if mode == "false":
        return False
    return not cluster.compute_has_internet


def hub_cache_dir(environment: Mapping[str, str]) -> Optional[str]:
    """The job's HF hub cache: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``; None when neither is set."""
    cache = (environment.get("HF_HUB_CACHE") or "").strip()
    if not cache and (environment.get("HF_HOME") or "").strip():
        cache = os.path.join(environment["HF_HOME"].strip(), "hub")
    return os.path.expanduser(cache) if cache else None


def default_hub_cache(environ: Mapping[str, str]) -> Tuple[str, str]:
    """Where huggingface_hub itself would cache on the login node, and why: the login
    shell's HF_HUB_CACHE or HF_HOME, else ``$XDG_CACHE_HOME`` or ``~/.cache``/huggingface/hub."""
    cache = hub_cache_dir(environ)
    if cache is not None:
        return cache, "the login shell's HF_HUB_CACHE/HF_HOME"
    home = (environ.get("HOME") or "").strip() or os.path.expanduser("~")
    base = (environ.get("XDG_CACHE_HOME") or "").strip() or os.path.join(home, ".cache")
    return os.path.join(base, "huggingface", "hub"), "huggingface_hub's default"


def hydra_value(setting_key: str, items: Sequence[str], line: str = "skyrl-train") -> str:
    """The override value of a mapped setting for SkyRL ``line``'s parser (Hydra for
    skyrl-train, OmegaConf's CLI grammar for skyrl): MODEL_PATH a single (quoted when
    needed) string, TRAIN_DATA/VAL_DATA a list of strings (``data.train_data=['a','b']``)."""
    if KINDS.get(setting_key) == "model":
        return quote_for(line, items[0])
    return list_for(line, list(items))


# --------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------


def repo_folder_name(repo_id: str, kind: str) -> str:
    """huggingface_hub's cache layout: ``models--org--name``, ``datasets--org--name``."""
    return "--".join([f"{kind}s"] + repo_id.split("/"))


@dataclass(frozen=True)
class Download:
    """One repo to download: ``kind`` model|dataset, into ``cache_dir``, for ``target_setting``."""

    kind: str
    repo_id: str
    revision: str
    target_setting: str  # MODEL_PATH | TRAIN_DATA | VAL_DATA
    cache_dir: str
    split: str = ""  # datasets: the split SkyRL reads (org/name:split)

    @property
    def key(self) -> Tuple[str, str, str, str]:
        """What is downloaded: two settings naming the same repo share one download."""
        return (self.kind, self.repo_id, self.revision, self.cache_dir)

    @property
    def storage_folder(self) -> str:
        return os.path.join(self.cache_dir, repo_folder_name(self.repo_id, self.kind))

    @property
    def item(self) -> str:
        """The value as written in the setting."""
        return f"{self.repo_id}:{self.split}" if self.split else self.repo_id

    def cached_snapshot(self) -> Optional[str]:
        """The snapshot directory when the cache already has this revision (reads only)."""
        commit = self.revision if _COMMIT.match(self.revision) else None
        if commit is None:
            try:
                with open(os.path.join(self.storage_folder, "refs", self.revision),
                          encoding="utf-8") as handle:
                    commit = handle.read().strip()
            except OSError:
                return None
        path = os.path.join(self.storage_folder, "snapshots", commit)
        return path if commit and os.path.isdir(path) else None

    def expected_snapshot(self) -> str:
        """Where the snapshot is or will be (``.../snapshots/<main>`` when not cached yet)."""
        commit = self.revision if _COMMIT.match(self.revision) else PENDING_COMMIT
        return self.cached_snapshot() or os.path.join(self.storage_folder, "snapshots", commit)


def plan_downloads(mapped_values: Mapping[str, Sequence[str]], hub_cache: Optional[str],
                   environment: Mapping[str, str], predownload_mode: Optional[str],
                   cluster: "Cluster") -> Tuple[Download, ...]:
    """Which values of MODEL_PATH/TRAIN_DATA/VAL_DATA (``mapped_values``: setting -> items)
    are Hugging Face ids to download on the login node; local values (made absolute by
    validation) are not. Empty when PREDOWNLOAD (``predownload_mode``) is off for
    ``cluster``. A Hydra list given verbatim (``TRAIN_DATA=['a','b']``) is passed to SkyRL
    as written and never planned. The cache is ``hub_cache`` (validation's choice), else
    that of the job's ``environment`` (:func:`hub_cache_dir`)."""
    if not predownload_enabled(predownload_mode, cluster):
        return ()
    cache = hub_cache or hub_cache_dir(environment)
    planned: List[Download] = []
    for setting_key, kind in KINDS.items():
        for item in mapped_values.get(setting_key, ()):
            parsed = parse_hub_id(item, kind)
            if parsed is None:
                continue
            if cache is None:  # validation chooses one; kept for direct callers
                raise StageError(
                    f"{setting_key}={item}: downloading it needs HF_HUB_CACHE (or HF_HOME); set "
                    "HF_HUB_CACHE=<directory on the shared filesystem> in the site env file, or "
                    "PREDOWNLOAD=false", EXIT_INPUT)
            repo_id, split = parsed
            planned.append(Download(kind, repo_id, DEFAULT_REVISION, setting_key,
                                    os.path.abspath(cache), split))
    return tuple(planned)


def localized_overrides(overrides: Sequence["Override"], mapped_values: Mapping[str, Sequence[str]],
                        downloads: Sequence[Download], snapshots: Mapping[Download, str],
                        replacements: Optional[Mapping[Download, Sequence[str]]] = None,
                        line: str = "skyrl-train") -> Tuple["Override", ...]:
    """``overrides`` with every downloaded id of a mapped setting (``mapped_values``:
    setting -> items) replaced by its local snapshot directory (``:split`` kept);
    everything else unchanged and in order.

    ``replacements``: datasets whose snapshot is not what SkyRL reads (Harbor task parquets,
    :mod:`ot_hpc.stage.harbor`): the id becomes these directories instead (no ``:split``)."""
    from ..config.settings import SETTINGS_BY_KEY

    replacements = replacements or {}
    by_item: Dict[Tuple[str, str], Tuple[str, ...]] = {}
    for download in downloads:
        if replacements.get(download):
            by_item[(download.target_setting, download.item)] = tuple(replacements[download])
        else:
            local = snapshots[download]
            split = download.split
            by_item[(download.target_setting, download.item)] = (
                f"{local}:{split}" if split else local,)
    new_values: Dict[str, str] = {}
    for setting_key in sorted({d.target_setting for d in downloads}):
        items: List[str] = []
        for item in mapped_values.get(setting_key, ()):
            parsed = parse_hub_id(item, KINDS[setting_key])
            local = by_item.get((setting_key, item))
            if parsed is not None and local is not None:
                items.extend(local)
            else:
                items.append(item)
        hydra_key = SETTINGS_BY_KEY[setting_key].hydra_key or ""
        new_values[hydra_key] = hydra_value(setting_key, items, line)
    return tuple(
        replace(o, value=new_values[o.key]) if o.key in new_values and o.prefix == "" else o
        for o in overrides
    )


def describe(download: Download, snapshot: str, cached: bool) -> str:
    """``TRAIN_DATA: dataset org/name:train -> <snapshot>:train``: what SkyRL gets instead."""
    what = f"{download.kind} {download.item}"
    if download.revision != DEFAULT_REVISION:
        what += f" (revision {download.revision})"
    local = f"{snapshot}:{download.split}" if download.split else snapshot
    note = "  (already in the cache)" if cached else ""
    return f"{download.target_setting}: {what} -> {local}{note}"
