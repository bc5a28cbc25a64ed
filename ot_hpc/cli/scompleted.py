"""ot-scompleted (not yet implemented)."""
from __future__ import annotations

from typing import List, Optional

from .common import not_yet_implemented, run_main


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(not_yet_implemented("ot-scompleted"), argv)
