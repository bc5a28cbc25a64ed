# Stand-in for pyslurm 25.11.2 pyslurm/constants.py.
UNLIMITED = "UNLIMITED"
