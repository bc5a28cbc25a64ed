# Stand-in for pyslurm 25.11.2 pyslurm/core/__init__.py (a package marker there too).
