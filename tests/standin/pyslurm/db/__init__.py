# Stand-in for pyslurm 25.11.2 pyslurm/db/__init__.py: Connection (db/connection.pyx),
# Job, Jobs, JobFilter, JobSearchFilter (db/job.pyx). Steps, statistics, TRES, QoS and
# associations are not modelled.
from .connection import Connection  # noqa: F401
from .job import (  # noqa: F401
    Job,
    Jobs,
    JobFilter,
    JobSearchFilter,
)
