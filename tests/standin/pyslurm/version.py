# Stand-in for pyslurm 25.11.2 pyslurm/version.py.
__version__ = "25.11.2"
