"""``UPLOAD_*``: where the runner uploads the final policy after a successful run."""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence

from .. import upload
from .fields import Context, Fields, Section, int_of
from .skyrl import is_skyrl_entrypoint


def python_imports(python: Optional[str], modules: Sequence[str]) -> Optional[Dict[str, bool]]:
    """Which of ``modules`` import with ``python`` (None when that cannot be told)."""
    import importlib.util
    import subprocess
    import sys

    if not python:
        return None
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        found = {}
        for name in modules:
            try:
                found[name] = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found[name] = False
        return found
    code = ("import importlib.util as u, sys\n"
            "for m in sys.argv[1:]: print(m, u.find_spec(m) is not None)")
    try:
        done = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    found = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        found[name] = value.strip() == "True"
    return found if set(found) == set(modules) else None


def _token_problem(fields: Fields, repo: str, found: Mapping[str, Any]) -> None:
    secret_path, secret_keys = found.get("secret_env_file"), found.get("secret_keys")
    if secret_path is None and fields.value("SECRET_ENV_PATH") is None:
        fields.problem("UPLOAD_REPO", "needs HF_TOKEN but no secret env file is set",
                       "set SECRET_ENV_PATH to a file holding HF_TOKEN (with write access to "
                       f"{repo.split('/')[0]}), or unset UPLOAD_REPO")
    elif secret_keys is not None and upload.TOKEN_KEY not in secret_keys:
        fields.problem("UPLOAD_REPO", f"needs HF_TOKEN but {secret_path} has no HF_TOKEN",
                       "add HF_TOKEN=... (a write token) to that file, or unset UPLOAD_REPO")


def _upload_path(fields: Fields, repo: str, path: Optional[str], is_skyrl: bool,
                 overrides_text: Sequence[str]) -> str:
    """UPLOAD_PATH as given (absolute), else SkyRL's export path (which must be written)."""
    if path is not None:
        if not (os.path.isabs(path) or path.startswith(("~", "$"))):
            fields.problem("UPLOAD_PATH", "is not an absolute path",
                           "give the export (or model) directory as an absolute path")
        return path
    if is_skyrl:
        interval = upload.hf_save_interval(overrides_text)
        number = int_of(interval) if interval is not None else None
        if number is None or number <= 0:
            fields.problem("UPLOAD_REPO", "uploads SkyRL's HF export, but SkyRL writes none "
                           f"(trainer.hf_save_interval={interval or '-1 (SkyRL default)'})",
                           "add trainer.hf_save_interval=<steps> (the final model is exported at "
                           "the end too), or set UPLOAD_PATH to a model directory", value=repo)
    return upload.default_upload_path(overrides_text)


def check_upload(context: Context, found: Mapping[str, Any]) -> Section:
    """UPLOAD_REPO/UPLOAD_PRIVATE/UPLOAD_PATH -> repo, private, path to search on the node."""
    cluster = context.config.cluster
    fields = Fields(context.config, context.cwd)
    private = fields.boolean("UPLOAD_PRIVATE")
    private = True if private is None else private
    repo = fields.value("UPLOAD_REPO")
    if repo is None:
        return fields.section(dict(upload_repo=None, upload_private=private, upload_path=None))
    why = upload.repo_id_problem(repo)
    if why:
        fields.problem("UPLOAD_REPO", why, "write org/name, e.g. my-org/qwen-gsm8k-grpo")
    _token_problem(fields, repo, found)
    path = _upload_path(fields, repo, fields.value("UPLOAD_PATH"),
                        is_skyrl_entrypoint(found.get("entrypoint")),
                        [o.text for o in found.get("overrides", ())])
    python = found.get("runner_python")
    imports = python_imports(python, ("huggingface_hub", "socksio"))
    if imports is not None and not imports.get("huggingface_hub"):
        fields.problem("UPLOAD_REPO", f"the runner's Python {python} cannot import huggingface_hub",
                       upload.INSTALL_HINT, value=repo)
    elif imports is not None and not imports.get("socksio") and not cluster.compute_has_internet:
        fields.warnings.append(
            f"UPLOAD_REPO={repo}: {cluster.name} compute nodes reach the Hub through the SOCKS "
            f"tunnel, and {python} cannot import socksio; {upload.SOCKS_HINT}")
    return fields.section(dict(upload_repo=repo, upload_private=private, upload_path=path))
