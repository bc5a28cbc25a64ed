"""The job name and the SkyRL overrides: MODEL_PATH/TRAIN_DATA/VAL_DATA mapped to their
Hydra keys (local paths made absolute, Hugging Face ids kept for the login-node stage),
the user's overrides in order, and what ``MAX_RESTARTS`` adds."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .. import naming
from ..cluster_facts import Cluster
from ..config.merge import Override
from ..config.problems import Problem
from ..config.settings import SETTINGS_BY_KEY
from ..hydra import quote_for
from ..skyrl_lines import SKYRL
from ..stage.plan import (KINDS, classify_value, default_hub_cache, hub_cache_dir, hydra_value,
                          parse_hub_id, predownload_enabled)
from .fields import Context, Fields, Section, unwritable_ancestor

RESUME_OVERRIDE = "trainer.resume_mode"
CKPT_OVERRIDE = "trainer.ckpt_path"


def check_job_name(context: Context, found: Mapping[str, Any]) -> Section:
    """JOB_NAME sanitised for Slurm, or generated from the config, model size and nodes."""
    fields = Fields(context.config, context.cwd)
    text = fields.value("JOB_NAME")
    if text is None:
        return fields.section(dict(job_name=naming.generate_job_name(
            context.config.config_name, fields.value("MODEL_PATH"), found.get("num_nodes") or 0,
            context.now)))
    job_name = naming.sanitize_job_name(text)
    if not job_name:
        fields.problem("JOB_NAME", "has no usable character", "use letters, digits, . _ -")
    elif job_name != text:
        fields.warnings.append(f"JOB_NAME={text!r} is submitted as {job_name!r}")
    return fields.section(dict(job_name=job_name))


def _data_items(text: str) -> Optional[List[str]]:
    """``a.parquet,b.parquet`` -> items; None when the value is a Hydra list already."""
    if text.lstrip().startswith("["):
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


def _check_data(fields: Fields, key: str) -> Union[None, str, Tuple[str, ...]]:
    """TRAIN_DATA/VAL_DATA -> its items (absolute paths or Hugging Face ids, ``org/name`` or
    ``org/name:split``), or the text itself when it is a Hydra list (passed verbatim)."""
    text = fields.value(key)
    if text is None:
        return None
    items = _data_items(text)
    if items is None:
        return text
    resolved = []
    for item in items:
        kind = classify_value(item, "dataset", fields.cwd)
        if kind == "path":
            path = fields.absolute(item)
            if not os.path.isfile(path) and not os.path.isdir(path):
                fields.problem(key, f"data file {path} does not exist",
                               "make the data first (e.g. SkyRL's examples/gsm8k/gsm8k_dataset.py)"
                               " or fix the path")
            resolved.append(path)
        elif kind == "hub":
            resolved.append(item)
        else:
            fields.problem(key, f"{item!r} is neither an existing path nor a Hugging Face id",
                           "give an absolute path (…/train.parquet), org/name or org/name:split")
    return tuple(resolved)


def _check_model(fields: Fields) -> Optional[Tuple[str, ...]]:
    """MODEL_PATH -> (absolute directory,) or (Hugging Face id,)."""
    text = fields.value("MODEL_PATH")
    if text is None:
        return None
    kind = classify_value(text, "model", fields.cwd)
    if kind == "path":
        path = fields.absolute(text)
        if not os.path.isdir(path):
            fields.problem("MODEL_PATH", f"{path} is not a directory",
                           "give a model directory or a Hugging Face id (org/name)")
            return None
        return (path,)
    if kind != "hub":
        fields.problem("MODEL_PATH", "is neither an existing directory nor a Hugging Face id",
                       "give a model directory or org/name")
        return None
    return (text,)


def _mapped_overrides(fields: Fields, user: Mapping[str, Override], line: str
                      ) -> Tuple[List[Override], Dict[str, Tuple[str, ...]]]:
    """MODEL_PATH/TRAIN_DATA/VAL_DATA as overrides, and their items (for the stage)."""
    config = fields.config
    mapped: List[Override] = []
    items_of: Dict[str, Tuple[str, ...]] = {}
    for key, read in (("MODEL_PATH", lambda: _check_model(fields)),
                      ("TRAIN_DATA", lambda: _check_data(fields, "TRAIN_DATA")),
                      ("VAL_DATA", lambda: _check_data(fields, "VAL_DATA"))):
        hydra_key = SETTINGS_BY_KEY[key].hydra_key or ""
        if fields.value(key) is None:
            continue
        if hydra_key in user:
            fields.problem(key, f"is given twice: also as {hydra_key} ({user[hydra_key].source})",
                           f"keep either {key} or {hydra_key}")
            continue
        items = read()
        if items is None:
            continue
        if isinstance(items, str):
            mapped.append(Override("", hydra_key, items, config.source(key)))
            continue
        items_of[key] = items
        mapped.append(Override("", hydra_key, hydra_value(key, items, line), config.source(key)))
    return mapped, items_of


def _hub_cache(fields: Fields, cluster: Cluster, mapped_values: Mapping[str, Sequence[str]],
               predownload: bool, environment: Mapping[str, str],
               environ: Mapping[str, str]) -> Optional[str]:
    """Hugging Face ids on a cluster without internet: downloaded on the login node (into
    the cache returned here, which must be writable), or a warning that the job reaches the
    Hub only through the tunnel."""
    hub_items = [(key, item) for key, items in mapped_values.items() for item in items
                 if parse_hub_id(item, KINDS[key]) is not None]
    if not hub_items:
        return None
    if not predownload:
        if not cluster.compute_has_internet:
            for key, item in hub_items:
                fields.warnings.append(
                    f"{key}={item}: a Hugging Face id and PREDOWNLOAD=false; compute nodes of "
                    f"{cluster.name} reach the Hub only through the tunnel (PREDOWNLOAD=auto "
                    "downloads it on the login node and gives SkyRL the local snapshot)")
        return None
    first = f"{hub_items[0][0]}={hub_items[0][1]}"
    cache = hub_cache_dir(environment)
    if cache is None:
        cache, why = default_hub_cache(environ)
        fields.warnings.append(
            f"PREDOWNLOAD: neither HF_HUB_CACHE nor HF_HOME is set in the site env file or job "
            f"config, so {first} is downloaded into {cache} ({why}); compute nodes must see that "
            "directory (set HF_HUB_CACHE in the site env file to choose)")
    if not os.path.isabs(cache):
        fields.problem("PREDOWNLOAD", f"the HF cache {cache} (HF_HUB_CACHE/HF_HOME) is not an "
                       "absolute path", "set HF_HUB_CACHE=<absolute directory on the shared "
                       "filesystem>, or PREDOWNLOAD=false")
        return None
    blocked = unwritable_ancestor(cache)
    if blocked is not None:
        fields.problem("PREDOWNLOAD", f"{first} is downloaded into {cache}, but {blocked} is not "
                       "a writable directory", "set HF_HUB_CACHE to a directory you can write "
                       "on the shared filesystem, or PREDOWNLOAD=false")
        return None
    return cache


def _restart_overrides(fields: Fields, user: Mapping[str, Override], max_restarts: Optional[int],
                       experiments_dir: Optional[str], job_name: Optional[str],
                       line: str) -> List[Override]:
    """``MAX_RESTARTS`` resumes from the latest checkpoint in a stable directory."""
    if not max_restarts:
        return []
    added: List[Override] = []
    resume = user.get(RESUME_OVERRIDE)
    if resume is not None and (resume.value or "").strip().lower() in ("null", "none", "~", ""):
        fields.problems.append(Problem(
            RESUME_OVERRIDE, resume.value, "disables resuming, so every restart starts from scratch",
            "remove it (MAX_RESTARTS adds trainer.resume_mode=latest) or set it to latest",
            resume.source))
    if resume is None:
        added.append(Override("", RESUME_OVERRIDE, "latest", "MAX_RESTARTS"))
    if CKPT_OVERRIDE not in user and experiments_dir is not None:
        ckpt = os.path.join(experiments_dir, "checkpoints", job_name or "job")
        added.append(Override("", CKPT_OVERRIDE, quote_for(line, ckpt), "MAX_RESTARTS"))
    return added


def check_overrides(context: Context, found: Mapping[str, Any]) -> Section:
    """The final override list (mapped, the user's, MAX_RESTARTS'), the items the stage
    plans from, and the HF cache a pre-download would use."""
    config = context.config
    fields = Fields(config, context.cwd)
    environment = {k: (e.value or "") for k, e in config.environment.items()}
    user = {o.key: o for o in config.overrides}
    line = found.get("skyrl_line") or SKYRL
    mapped, mapped_values = _mapped_overrides(fields, user, line)
    hub_cache = _hub_cache(fields, config.cluster, mapped_values,
                           predownload_enabled(found.get("predownload_mode"), config.cluster),
                           environment, context.environ)
    added = _restart_overrides(fields, user, found.get("max_restarts"),
                               found.get("experiments_dir"), found.get("job_name"), line)
    return fields.section(dict(
        overrides=tuple(mapped) + tuple(config.overrides) + tuple(added),
        mapped_values=mapped_values, hub_cache=hub_cache, environment=environment))
