"""The Hugging Face token: which keys hold it.

The token lives only in the secret env file (``SECRET_ENV_PATH``). The login node reads it
in-process for the pre-download (:func:`ot_hpc.stage.fetch.read_hf_token`), the runner
finds it in the job's
environment for the upload; either hands it to huggingface_hub as ``token=`` only (never
printed, never in argv, never written).
"""
from __future__ import annotations

from typing import Mapping, Optional


TOKEN_KEYS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def token_from(values: Mapping[str, str]) -> Optional[str]:
    """The first non-empty value of :data:`TOKEN_KEYS` in ``values``; None when there is none."""
    for key in TOKEN_KEYS:
        if values.get(key):
            return values[key]
    return None
