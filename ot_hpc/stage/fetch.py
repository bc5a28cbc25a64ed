"""Downloading the planned Hugging Face repos on the login node (network and disk).

:func:`fetch` downloads with ``huggingface_hub.snapshot_download``, imported lazily (an
optional dependency). Only ``submission.schedule`` calls it (through
:mod:`ot_hpc.stage.run`), before anything is written or submitted; any failure stops the
submission with one line (:class:`~ot_hpc.stage.errors.StageError`: exit 1 when the Hub
cannot be reached or fails, exit 2 when the input must change).

The HF token, if any, comes from the secret env file (:func:`read_hf_token`)
and is passed as ``token=``: never printed, never in argv, never written. Without it no
token is sent (not even the login shell's), so the login node sees the Hub exactly as the
job would.
"""
from __future__ import annotations

import sys
from contextlib import suppress
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from ..envfile import env_file_values
from ..hftoken import token_from
from .errors import EXIT_INPUT, EXIT_NETWORK, StageError
from .plan import Download, describe

INSTALL_HINT = "pip install huggingface_hub (on the login node), or PREDOWNLOAD=false"


def importable(module: str) -> bool:
    """Whether ``module`` would import, without importing it (for the dry run): one already
    imported does, one blocked with ``sys.modules[module] = None`` does not."""
    if module in sys.modules:
        return sys.modules[module] is not None
    from importlib.util import find_spec

    with suppress(ImportError, ValueError):
        return find_spec(module) is not None
    return False


def huggingface_hub_available() -> bool:
    """Whether huggingface_hub would import, without importing it (for the dry run)."""
    return importable("huggingface_hub")


def _one_line(text: object, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def explain(exc: BaseException, download: Download, endpoint: Optional[str]) -> StageError:
    """One line for a failed snapshot_download (classified by class name, so it works
    across huggingface_hub versions)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    what = f"{download.target_setting}={download.item}"
    where = endpoint or "the Hugging Face Hub"
    if "GatedRepoError" in names:
        return StageError(
            f"{what}: {download.kind} {download.repo_id} is gated; accept its terms on the Hub and "
            "put HF_TOKEN in the secret env file (SECRET_ENV_PATH)", EXIT_INPUT)
    if "RepositoryNotFoundError" in names:
        return StageError(
            f"{what}: no {download.kind} {download.repo_id} on {where} (or it is private); check "
            "the id, or put HF_TOKEN in the secret env file (SECRET_ENV_PATH)", EXIT_INPUT)
    if "RevisionNotFoundError" in names:
        return StageError(
            f"{what}: {download.kind} {download.repo_id} has no revision {download.revision!r}; "
            "check the revision", EXIT_INPUT)
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError",
                "TimeoutException", "ProxyError", "ConnectionError", "Timeout"}:
        cause = exc.__cause__ or exc.__context__
        reason = type(cause).__name__ if cause is not None else type(exc).__name__
        return StageError(
            f"{what}: cannot reach {where} ({reason}) and {download.kind} {download.repo_id} is not "
            f"complete in {download.cache_dir}; check the login node's network or proxy "
            "(HF_ENDPOINT, HTTPS_PROXY) and submit again", EXIT_NETWORK)
    if "HfHubHTTPError" in names:
        return StageError(
            f"{what}: {where} failed ({_one_line(exc)}); try again later", EXIT_NETWORK)
    if isinstance(exc, OSError):
        return StageError(
            f"{what}: cannot download into {download.cache_dir} ({type(exc).__name__}: "
            f"{_one_line(exc)}); check HF_HUB_CACHE (space, permissions)", EXIT_NETWORK)
    return StageError(
        f"{what}: download failed ({type(exc).__name__}: {_one_line(exc)})", EXIT_NETWORK)


def _snapshot_download() -> Callable[..., str]:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise StageError(
            f"PREDOWNLOAD: downloading Hugging Face ids on the login node needs the huggingface_hub "
            f"package, which does not import here; {INSTALL_HINT}", EXIT_INPUT) from None
    return snapshot_download


def fetch(
    plan: Sequence[Download],
    token: Optional[str] = None,
    endpoint: Optional[str] = None,
    report: Optional[Callable[[str], None]] = None,
) -> Dict[Download, str]:
    """Download every planned repo (each once) and return each Download's snapshot directory.

    Raises :class:`~ot_hpc.stage.errors.StageError` (one line) on the first failure.
    ``token``: the HF token or None (then no token is sent at all). ``endpoint``: the Hub
    URL (None: the library's default, i.e. ``$HF_ENDPOINT`` or huggingface.co)."""
    if not plan:
        return {}
    snapshot_download = _snapshot_download()
    done: Dict[Tuple[str, str, str, str], str] = {}
    result: Dict[Download, str] = {}
    for download in plan:
        if download.key not in done:
            if report is not None:
                report(f"pre-download: {download.kind} {download.repo_id} into {download.cache_dir}")
            try:
                path = snapshot_download(
                    download.repo_id,
                    repo_type=download.kind,
                    revision=download.revision,
                    cache_dir=download.cache_dir,
                    token=token if token else False,
                    endpoint=endpoint or None,
                    library_name="ot-hpc",
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # every failure becomes one line; nothing is submitted
                raise explain(exc, download, endpoint) from None
            done[download.key] = str(path)
        result[download] = done[download.key]
        if report is not None:
            report(f"pre-download: {describe(download, result[download], cached=False)}")
    return result


def read_hf_token(secret_env_path: Optional[str],
                  environment: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The HF token from the secret env file, read here and handed to huggingface_hub only
    (login side), parsed exactly as the runner parses it (:func:`ot_hpc.envfile.env_file_values`,
    ``${VAR}`` against ``environment``: the job's variables). Raises
    :class:`~ot_hpc.stage.errors.StageError` (exit 2) when the file cannot be read or parsed."""
    if not secret_env_path:
        return None
    try:
        values = env_file_values(secret_env_path, environment or {})
    except (OSError, UnicodeDecodeError) as exc:
        raise StageError(
            f"SECRET_ENV_PATH={secret_env_path}: cannot be read for HF_TOKEN ({type(exc).__name__}); "
            "fix its permissions", EXIT_INPUT) from None
    except ValueError as exc:
        raise StageError(f"SECRET_ENV_PATH: {exc}", EXIT_INPUT) from None
    return token_from(values)
