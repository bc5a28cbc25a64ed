"""The batch runner: the payload of every job (``python -m ot_hpc.runner <spec.json>``).

Phases, each logged with a timestamp and its duration (see :mod:`.main`):
environment -> egress -> ray -> training -> shutdown. Modules have one job each:

- :mod:`.jobenv`     the allocation, from SLURM_* variables (pure)
- :mod:`.envload`    site env, secret env, activation; redaction of secret values
- :mod:`.joblog`     the timestamped, redacted job log and its phase timer
- :mod:`.egress`     TCP probe, SOCKS5 client, the SSH SOCKS tunnel and its watchdog
- :mod:`.ports`      the job-unique Ray port plan (pure) and its bind/lock check
- :mod:`.ray_cluster` head + workers (srun --overlap), readiness from the GCS
- :mod:`.raysecurity` the job's Ray token (per run, 0600, environment not argv), what
  listens where, ``RAY_AUTH`` for a Ray without token authentication
- :mod:`.private`    private directories and files (fresh, 0700/0600, never reused)
- :mod:`.node_agent` what runs on each node: waits for the head, runs ``ray start --block``,
  cleans up its node on exit
- :mod:`.raypoll`    the readiness poller (a child process that imports Ray)
- :mod:`.trainer`    the SkyRL entrypoint as an argv list, output into the log
- :mod:`.shutdown`   stopping process groups and every process carrying the job's marker
- :mod:`.requeue`    the restart decision and the requeue call
"""
