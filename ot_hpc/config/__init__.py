"""Job settings: what ``ot-submit`` reads, from which files, and where each value came from.

Modules, in the order data flows through them:

* :mod:`~ot_hpc.config.settings` -- the table of every setting (key, flag, kind, default,
  help) and the env-variable prefixes a job config may set;
* :mod:`~ot_hpc.config.secrets` -- which names look like secrets (never in a job config,
  an override, a spec or a printed problem);
* :mod:`~ot_hpc.config.problems` -- :class:`~ot_hpc.config.problems.Problem`, one thing
  wrong with the input, printed without secret values;
* :mod:`ot_hpc.envfile` (outside this room: the cluster registry and the runner use it
  too) -- the one env-file reader (python-dotenv syntax), for the login node (bindings
  with line numbers) and the job (values, ``${VAR}`` resolved);
* :mod:`~ot_hpc.config.merge` -- env files and the command line layered into one
  :class:`~ot_hpc.config.merge.MergedConfig` of strings with provenance, ``${VAR}``
  resolved by :mod:`~ot_hpc.config.interpolation`;
* :mod:`~ot_hpc.config.discovery` -- picks the files (job config, cluster, site env file)
  and calls the merge: :func:`~ot_hpc.config.discovery.load_config`.

So: discovery picks the files -> envfile reads them -> merge layers them with provenance
-> MergedConfig, which :mod:`ot_hpc.validate` checks and converts.

Nothing is imported here: import each name from the module that defines it.
"""
