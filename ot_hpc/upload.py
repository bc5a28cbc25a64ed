"""Upload of the final policy to a Hugging Face repo (``UPLOAD_REPO``), after a successful run.

The runner does it on the compute node, in its own process, as the ``upload`` phase right
after the trainer exited 0 (never after a failure, a signal or on the login node), through
the job's tunnel when one is open (huggingface_hub's HTTP client honours ``HTTPS_PROXY`` /
``ALL_PROXY``; a ``socks5h://`` proxy needs the ``socksio`` package, i.e.
``pip install 'httpx2[socks]'``). The token is ``HF_TOKEN`` of the secret env file, handed to
huggingface_hub as ``token=`` only: never in argv, a file or the log.

What is uploaded: only Hugging Face format files (:func:`select_upload_files`) of the
latest SkyRL export. SkyRL writes them with ``trainer.hf_save_interval > 0`` to
``<trainer.export_path>/global_step_<N>/policy/`` (``save_pretrained`` + the tokenizer);
its resumable checkpoints (``<trainer.ckpt_path>/global_step_<N>/policy/*_rank_*.pt``,
optimizer state, ``huggingface/`` with configs but no weights) are never uploaded.

Exit code: a requested upload that fails makes the job exit :data:`EXIT_UPLOAD` (5), with
one line in the log saying why; the trained model stays on disk. No requeue for it.
"""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .hftoken import TOKEN_KEYS

EXIT_UPLOAD = 5
EXPORT_OVERRIDE = "trainer.export_path"
HF_SAVE_INTERVAL_OVERRIDE = "trainer.hf_save_interval"
SKYRL_DEFAULT_EXPORT = "${HOME}/exports"  # SkyRL's default: ${oc.env:HOME}/exports/
INSTALL_HINT = "pip install huggingface_hub into the runner's Python (PYTHON), or unset UPLOAD_REPO"
SOCKS_HINT = "a socks5h:// proxy (the job's tunnel) needs socksio: pip install 'httpx2[socks]'"
TOKEN_KEY = TOKEN_KEYS[0]  # HF_TOKEN: the upload needs it by this name (a write token)
# Environment variables the upload takes from the job's environment (never the token).
ENV_FOR_UPLOAD = ("ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "all_proxy", "https_proxy",
                  "http_proxy", "no_proxy", "HF_ENDPOINT", "HF_HUB_ETAG_TIMEOUT",
                  "HF_HUB_DOWNLOAD_TIMEOUT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

# Hugging Face format files, by name (top level of the export directory only).
HF_FILE_PATTERNS: Tuple[str, ...] = (
    "config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
    "tokenizer*.json", "tokenizer.model", "special_tokens_map.json", "vocab.json", "merges.txt",
    "chat_template*", "README.md",
)
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_STEP = re.compile(r"^global_step_(\d+)$")


class UploadError(Exception):
    """The upload cannot be done; ``str()`` is one line with the fix."""


# --------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------


def repo_id_problem(repo: str) -> Optional[str]:
    """None when ``repo`` is an ``org/name`` Hugging Face repo id, else why not."""
    if not _REPO_ID.match(repo or ""):
        return "is not a Hugging Face repo id org/name (letters, digits, - _ .)"
    if ".." in repo or "--" in repo or repo.endswith((".git", ".", "-")):
        return "is not a valid Hugging Face repo id (no '..', '--', trailing '.', '-' or '.git')"
    return None


def should_upload(repo: Optional[str], trainer_exit_code: Optional[int], stopped: bool = False) -> bool:
    """Upload only when asked (UPLOAD_REPO set) and the trainer succeeded (exit 0, no signal)."""
    return bool(repo) and trainer_exit_code == 0 and not stopped


def is_hf_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in HF_FILE_PATTERNS)


def select_upload_files(directory: str) -> List[str]:
    """The Hugging Face format files of an export directory, as sorted names (top level
    only: no FSDP shards ``*.pt``/``*_rank_*``, no optimizer state, no subdirectories)."""
    names = []
    for entry in os.scandir(directory):
        if not entry.is_file():  # follows symlinks: a linked safetensors file counts
            continue
        name = entry.name
        if name.startswith(".") or "_rank_" in name or name.endswith((".pt", ".pth", ".bin")):
            continue
        if is_hf_file(name):
            names.append(name)
    return sorted(names)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def default_upload_path(overrides: Sequence[str]) -> str:
    """What to search for the export when UPLOAD_PATH is not set: ``trainer.export_path``
    of the overrides (the last one wins), else SkyRL's default ``${HOME}/exports``."""
    found = SKYRL_DEFAULT_EXPORT
    for text in overrides:
        key, sep, value = text.partition("=")
        if sep and key.lstrip("+") == EXPORT_OVERRIDE:
            found = _unquote(value)
    return found.replace("${oc.env:HOME}", "${HOME}")


def hf_save_interval(overrides: Sequence[str]) -> Optional[str]:
    value = None
    for text in overrides:
        key, sep, val = text.partition("=")
        if sep and key.lstrip("+") == HF_SAVE_INTERVAL_OVERRIDE:
            value = _unquote(val)
    return value


def expand_path(path: str, env: Mapping[str, str]) -> str:
    """``${HOME}``/``$HOME``/``~`` against the job's environment."""
    text = path
    for name in re.findall(r"\$\{(\w+)\}|\$(\w+)", path):
        key = name[0] or name[1]
        if key in env:
            text = text.replace("${%s}" % key, env[key]).replace("$" + key, env[key])
    if text.startswith("~") and env.get("HOME"):
        text = env["HOME"] + text[1:]
    return text


def resolve_upload_dir(path: str) -> str:
    """The directory to upload: ``path`` itself when it holds ``config.json``, else the
    latest ``global_step_<N>/policy`` below it (SkyRL's export layout)."""
    if not os.path.isdir(path):
        raise UploadError(f"{path} does not exist: SkyRL exports the model only with "
                          f"{HF_SAVE_INTERVAL_OVERRIDE}>0 (to {EXPORT_OVERRIDE}); or set UPLOAD_PATH")
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    steps = []
    for entry in os.scandir(path):
        match = _STEP.match(entry.name)
        policy = os.path.join(entry.path, "policy")
        if match and os.path.isfile(os.path.join(policy, "config.json")):
            steps.append((int(match.group(1)), policy))
    if not steps:
        raise UploadError(f"no Hugging Face export in {path} (neither config.json nor "
                          f"global_step_<N>/policy/config.json): set {HF_SAVE_INTERVAL_OVERRIDE}>0, "
                          "or point UPLOAD_PATH at the model directory")
    return max(steps)[1]


def describe_plan(repo: str, private: bool, path: str) -> str:
    """One line for --dry-run and the log."""
    return (f"after a successful run (trainer exit 0 only) the runner uploads the Hugging Face "
            f"files of the latest {path}/global_step_<N>/policy (or {path} itself when it holds "
            f"config.json) to {'private' if private else 'public'} model repo {repo} with HF_TOKEN "
            f"from the secret env file; a failed upload exits {EXIT_UPLOAD}")


# --------------------------------------------------------------------------------------
# Doing (the runner only)
# --------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def explain(exc: BaseException, repo: str, env: Mapping[str, str]) -> str:
    """One line for a failed upload (classified by class name, across versions)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    proxy = env.get("HTTPS_PROXY") or env.get("ALL_PROXY") or ""
    scheme, sep, rest = proxy.partition("://")
    proxy = f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else proxy  # never the proxy's password
    text = _one_line(exc)
    if isinstance(exc, ImportError) and "socks" in text.lower():
        return f"cannot upload to {repo} through the tunnel: {SOCKS_HINT}"
    if names & {"HfHubHTTPError", "HTTPStatusError"}:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return (f"the Hub refused HF_TOKEN for {repo} (HTTP {status}): give the token write "
                    "access to that namespace (secret env file, HF_TOKEN)")
        return f"the Hub refused the upload to {repo}: {text}"
    if names & {"ConnectError", "TimeoutException", "ProxyError", "ConnectionError", "Timeout",
                "ReadTimeout", "ConnectTimeout", "RemoteProtocolError", "NetworkError"}:
        via = f" through the proxy {proxy}" if proxy else ""
        return f"cannot reach the Hub{via} ({type(exc).__name__}: {text}); check the tunnel/egress"
    return f"upload to {repo} failed ({type(exc).__name__}: {text})"


def upload(directory: str, repo: str, private: bool, token: Optional[str],
           endpoint: Optional[str] = None, files: Optional[Sequence[str]] = None,
           commit_message: str = "Upload final policy (ot-hpc)") -> Tuple[List[str], str]:
    """Create the repo (if needed) and commit the selected files in one commit. Returns
    (uploaded names, commit URL). Raises :class:`UploadError` (one line)."""
    try:
        from huggingface_hub import CommitOperationAdd, HfApi
    except ImportError as exc:
        raise UploadError(f"huggingface_hub does not import in the runner's Python ({exc}); "
                          f"{INSTALL_HINT}") from None
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover - older versions
        pass
    try:  # a fresh HTTP client, so it takes the proxy variables of this moment
        from huggingface_hub.utils import close_session

        close_session()
    except ImportError:  # pragma: no cover - older versions (requests sessions read env per call)
        pass
    names = list(files) if files is not None else select_upload_files(directory)
    if "config.json" not in names or not any(n.endswith(".safetensors") for n in names):
        raise UploadError(f"{directory} has no config.json and *.safetensors: not a Hugging Face "
                          "model export")
    api = HfApi(endpoint=endpoint or None)
    api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True, token=token)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(directory, name))
                  for name in names]
    info = api.create_commit(repo_id=repo, repo_type="model", operations=operations,
                             commit_message=commit_message, token=token)
    return names, str(getattr(info, "commit_url", "") or "")


def run_upload(directory: str, repo: str, private: bool, env: Mapping[str, str],
               log: Callable[[str], None]) -> Tuple[List[str], str]:
    """The runner's step: the job environment's proxy/endpoint variables applied to this
    process for the duration (restored after), HF_TOKEN from ``env`` passed as ``token=``."""
    token = env.get(TOKEN_KEY) or None
    if not token:
        raise UploadError("HF_TOKEN is not in the secret env file (SECRET_ENV_PATH): add it")
    names = select_upload_files(directory)
    total = sum(os.path.getsize(os.path.join(directory, n)) for n in names)
    log(f"uploading {len(names)} file(s), {total / 1e6:.1f} MB from {directory} to {repo} "
        f"({'private' if private else 'public'}): {', '.join(names)}")
    saved: Dict[str, Optional[str]] = {}
    overlay = {k: env[k] for k in ENV_FOR_UPLOAD if env.get(k)}
    overlay["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    overlay["HF_HUB_DISABLE_TELEMETRY"] = "1"
    for key in set(ENV_FOR_UPLOAD) | set(overlay) | set(TOKEN_KEYS):
        saved[key] = os.environ.pop(key, None)
    os.environ.update(overlay)
    try:
        return upload(directory, repo, private, token, endpoint=env.get("HF_ENDPOINT"), files=names)
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any library error becomes one line
        raise UploadError(explain(exc, repo, env)) from None
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
