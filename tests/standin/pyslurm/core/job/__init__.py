# Stand-in for pyslurm 25.11.2 pyslurm/core/job/__init__.py:
#   from .job import Job, Jobs; from .submission import JobSubmitDescription  # noqa: F401
# (JobStep/JobSteps from .step are not modelled.)
from .job import Job, Jobs  # noqa: F401
from .submission import JobSubmitDescription  # noqa: F401
