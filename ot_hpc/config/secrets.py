"""The secret-name policy: which names look like secrets, and how to say where they go.

A secret (``HF_TOKEN``, ``WANDB_API_KEY`` ...) reaches the job only through the secret env
file (``SECRET_ENV_PATH``), which the runner reads on the compute node: never through a job
config, a site env file, a ``-S`` override, the spec or a printed problem.
"""
from __future__ import annotations

import re

from .settings import SETTINGS_BY_KEY

# Whole ``_``-separated words only: HF_TOKEN, WANDB_API_KEY, GITHUB_TOKEN are secrets,
# TOKENIZERS_PARALLELISM is not. A name with a DISABLE/ENABLE word is a switch, not a
# secret (HF_HUB_DISABLE_IMPLICIT_TOKEN=1).
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:TOKEN|API_?KEY|SECRET|PASSW(?:OR)?D|PRIVATE_KEY)(?:_|$)", re.I)
_SWITCH_NAME = re.compile(r"(?:^|_)(?:DISABLE|ENABLE)(?:_|$)", re.I)
SECRET_HINT = ("secrets reach the job only through SECRET_ENV_PATH; the runner exports them "
               "on the compute node")


def is_secret_name(key: str) -> bool:
    """Looks like a secret (HF_TOKEN, WANDB_API_KEY ...): such values belong in the secret file."""
    return (key not in SETTINGS_BY_KEY and bool(_SECRET_NAME.search(key))
            and not _SWITCH_NAME.search(key))


def is_secret_cli_text(text: str) -> bool:
    """``-S`` text whose key part looks like a secret (``hf_token=...``, ``a.api_key=...``)."""
    key = text.partition("=")[0].strip().lstrip("+~")
    return bool(key) and any(is_secret_name(part) for part in re.split(r"[.\-]", key))


def is_secret_override_key(key: str) -> bool:
    """An override key one of whose dotted parts looks like a secret (``trainer.hf_token``,
    ``+generator.api_key``): its value must not be on the command line or in a spec."""
    return "." in key and any(is_secret_name(part)
                              for part in re.split(r"[.\-]", key.lstrip("+~")))
