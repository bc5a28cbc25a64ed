"""Validation: every problem of a merged config at once, before anything is written.

:func:`ot_hpc.validate.run.validate` turns a :class:`~ot_hpc.config.merge.MergedConfig`
(strings with provenance) into a :class:`~ot_hpc.validate.job.ValidatedJob` (typed
values) or a list of :class:`~ot_hpc.config.problems.Problem`, one line each naming the
field, the value and the fix. It reads the filesystem (paths that must exist on the
shared filesystem) and may run SkyRL's Hydra composition in a subprocess; it never
writes (but for its cache of each interpreter's Ray version, ``~/.cache/ot-hpc``),
downloads or submits anything.

The rooms:

* ``job``     -- the result types (``ValidatedJob``, ``ValidationResult``).
* ``fields``  -- reading one setting as a typed value, or a problem (``Fields``).
* ``slurm``   -- the Slurm request: partition limits, nodes, time, GPUs, CPUs, memory,
  account, excluded nodes, and the job's numeric knobs.
* ``paths``   -- interpreters, entrypoint, paths on the shared filesystem, the secret
  file's key names, the tunnel.
* ``overrides`` -- the job name and the SkyRL overrides (mapped settings, Hugging Face
  ids, what ``MAX_RESTARTS`` adds).
* ``skyrl``   -- SkyRL's rules that fail late, and the composition against its config.
* ``upload_check`` -- ``UPLOAD_*``.
* ``rayauth_check`` -- ``RAY_AUTH``/``RAY_CLIENT_SERVER`` against the trainer's Ray version.
* ``run``     -- ``validate()``: the section checkers in order, then the typed job.

Each section checker is ``check(context, found) -> Section``: it reads settings from
``context.config``, may use what earlier sections ``found``, and returns its typed values
with its own problems and warnings.
"""
