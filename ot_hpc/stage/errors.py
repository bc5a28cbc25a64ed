"""The one error of login-node staging (pre-download and Harbor extraction)."""
from __future__ import annotations

EXIT_NETWORK = 1  # the Hub could not be reached or failed: try again
EXIT_INPUT = 2  # the input (or the login node's Python) must change


class StageError(Exception):
    """Staging failed or cannot start; ``str()`` is one line naming the setting and the fix.

    ``exit_code``: :data:`EXIT_NETWORK` (1) when the Hub could not be reached or failed (try
    again), :data:`EXIT_INPUT` (2) when the input must change (unknown or gated repo, a bad
    Harbor parquet, huggingface_hub or pyarrow missing). ot-submit reports it as one line;
    nothing is written or submitted."""

    def __init__(self, message: str, exit_code: int = EXIT_NETWORK) -> None:
        super().__init__(message)
        self.exit_code = exit_code
