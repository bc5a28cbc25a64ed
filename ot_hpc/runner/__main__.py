"""``python -m ot_hpc.runner <spec.json>``: the batch script's only command."""
import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
