"""ot-scompleted: see `ot-scompleted --help` (the shared body is ot_hpc.cli.history)."""
from __future__ import annotations

import sys
from typing import List, Optional

from ..monitor.history import SCOMPLETED
from .common import run_main
from .history import run


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(lambda args: run(SCOMPLETED, args), argv)


if __name__ == "__main__":
    sys.exit(main())
