"""Login-node staging: what the compute nodes need on the shared filesystem before the job runs.

Some clusters' compute nodes have no internet (``PREDOWNLOAD``): Hugging Face models and
datasets named by id are downloaded on the login node into the site's HF cache, Harbor task
parquets in a downloaded dataset are extracted into task directories next to it, and SkyRL
is handed those local paths instead of the ids.

* :mod:`~ot_hpc.stage.plan` is pure: which values are Hugging Face ids, what would be
  downloaded where (:class:`~ot_hpc.stage.plan.Download`), and the overrides with the local
  paths. It never touches the network and writes nothing.
* :mod:`~ot_hpc.stage.fetch` downloads (huggingface_hub, imported lazily) and
  :mod:`~ot_hpc.stage.harbor` extracts task parquets (pyarrow, imported lazily): these touch
  the network and the disk. Only ``submission.schedule`` runs them, through
  :mod:`~ot_hpc.stage.run`, before anything is written or submitted.
* The dry run describes the plan (:func:`ot_hpc.stage.run.predownload_lines`) and downloads
  or extracts nothing.

Every failure is one :class:`~ot_hpc.stage.errors.StageError` line: exit 1 when the network
failed (try again), exit 2 when the input must change.
"""
