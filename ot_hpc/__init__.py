"""ot-hpc: launch and watch multi-node SkyRL-on-Ray training on Slurm clusters."""

__version__ = "0.1.0"
