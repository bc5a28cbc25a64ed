"""Shared parts of the monitoring commands (ot-status, ot-sfail, ot-scompleted,
ot-scancelled, ot-scancelall, ot-rmlogs).

Small modules, mostly pure: ``pending`` (reason codes in plain words), ``table``
(rendering to a fixed width), ``window`` (time windows), ``history`` (finished-job
listings), ``logs`` (finding and tailing job logs), ``rmlogs`` (what to delete),
``dirs`` (the experiments directories), ``wait`` (following one job to its end, for
``ot-submit --wait``). The command lines are in :mod:`ot_hpc.cli`. Nothing here imports anything heavy: these
commands start in well under 150 ms.
"""
