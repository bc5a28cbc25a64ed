"""The secret-name policy: which names look like secrets, and how to say where they go.

A secret (``HF_TOKEN``, ``WANDB_API_KEY`` ...) reaches the job only through the secret env
file (``SECRET_ENV_PATH``), which the runner reads on the compute node: never through a job
config, a site env file, a ``-S`` override, the spec or a printed problem.
"""
from __future__ import annotations

import re
from typing import Collection, FrozenSet, Optional

from .settings import SETTINGS_BY_KEY

# Whole ``_``-separated words only: HF_TOKEN, WANDB_API_KEY, DAYTONA_KEY, GITHUB_PAT,
# CLIENT_SECRET, DB_PASSWORD are secrets; TOKENIZERS_PARALLELISM and DATA_PATH are not. A
# name with a DISABLE/ENABLE word is a switch, not a secret (HF_HUB_DISABLE_IMPLICIT_TOKEN=1).
# A name that only looks like a secret is named in the NOT_SECRET setting.
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:TOKEN|KEY|APIKEY|SECRET|PASSW(?:OR)?D|PASSPHRASE|PAT|CREDENTIALS?)(?:_|$)", re.I)
_SWITCH_NAME = re.compile(r"(?:^|_)(?:DISABLE|ENABLE)(?:_|$)", re.I)
SECRET_HINT = ("secrets reach the job only through SECRET_ENV_PATH; the runner exports them "
               "on the compute node")


def not_secret_names(text: Optional[str]) -> FrozenSet[str]:
    """The NOT_SECRET setting's names (comma- or space-separated)."""
    return frozenset(name for name in re.split(r"[\s,]+", text or "") if name)


def is_secret_name(key: str, not_secret: Collection[str] = ()) -> bool:
    """Looks like a secret (HF_TOKEN, WANDB_API_KEY ...): such values belong in the secret
    file. ``not_secret``: names the user declared harmless (the NOT_SECRET setting)."""
    return (key not in SETTINGS_BY_KEY and key not in not_secret
            and bool(_SECRET_NAME.search(key)) and not _SWITCH_NAME.search(key))


def is_secret_cli_text(text: str) -> bool:
    """``-S`` text whose key part looks like a secret (``hf_token=...``, ``a.api_key=...``)."""
    key = text.partition("=")[0].strip().lstrip("+~")
    return bool(key) and any(is_secret_name(part) for part in re.split(r"[.\-]", key))


def is_secret_override_key(key: str, not_secret: Collection[str] = ()) -> bool:
    """An override key one of whose dotted parts looks like a secret (``trainer.hf_token``,
    ``+generator.api_key``): its value must not be on the command line or in a spec.
    ``not_secret`` may name the whole key (``NOT_SECRET=trainer.cache_key``)."""
    bare = key.lstrip("+~")
    return "." in key and bare not in not_secret and any(
        is_secret_name(part) for part in re.split(r"[.\-]", bare))
