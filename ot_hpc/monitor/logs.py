"""Finding the log a job really wrote, and its last lines.

A job's log is the record's ``stdout_path`` when the scheduler knows it and the file
exists (active jobs). Accounting does not keep it (Slurm 22.05), so for finished jobs
the logs directories are searched for ``<name>_<jobid>.log`` (what ot-submit writes),
``<name>_<jobid>.out`` and Slurm's default ``slurm-<jobid>.out``, in that order of
preference; each directory is listed once, however many jobs are looked up.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

LOG_NAME = re.compile(r"^(?:(?P<name>.+)_|slurm-)(?P<id>\d+)\.(?P<ext>log|out)$")
_RANK = {"log": 0, "out": 1}  # .log before .out; slurm-<id>.out last
_CONTROL = r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]"  # compiled on first use
BLOCK = 8192
MAX_TAIL_BYTES = 1 << 20  # never read more than 1 MiB from the end of a log


def job_id_of_log(filename: str) -> Optional[int]:
    match = LOG_NAME.match(filename)
    return int(match.group("id")) if match else None


def _rank(filename: str) -> Tuple[int, int]:
    match = LOG_NAME.match(filename)
    if match is None:
        return (9, 9)
    return (1 if match.group("name") is None else 0, _RANK[match.group("ext")])


class LogIndex:
    """job id -> log path over some directories; listed lazily, once."""

    def __init__(self, directories: Sequence[str]) -> None:
        self._directories = list(directories)
        self._paths: Optional[Dict[int, str]] = None

    def _build(self) -> Dict[int, str]:
        paths: Dict[int, Tuple[Tuple[int, int, int], str]] = {}
        for order, directory in enumerate(self._directories):
            try:
                entries = os.scandir(directory)
            except OSError:
                continue
            with entries:
                for entry in entries:
                    match = LOG_NAME.match(entry.name)
                    if match is None:
                        continue
                    rank = (order, *_rank(entry.name))
                    job_id = int(match.group("id"))
                    if job_id not in paths or rank < paths[job_id][0]:
                        paths[job_id] = (rank, entry.path)
        return {job_id: path for job_id, (_, path) in paths.items()}

    def find(self, job_id: int) -> Optional[str]:
        if self._paths is None:
            self._paths = self._build()
        return self._paths.get(job_id)


def find_log(job_id: int, stdout_path: Optional[str], index: Optional[LogIndex]) -> Optional[str]:
    """The job's log file if it exists: the scheduler's path first, then the index."""
    if stdout_path and os.path.isfile(stdout_path):
        return stdout_path
    return index.find(job_id) if index is not None else None


def state_path_for(log_path: str, job_name: str, job_id: int) -> str:
    """``<logs>/<job_name>_<jobid>.state.json`` next to the log (see ot_hpc.runstate)."""
    from ..runstate import STATE_SUFFIX  # lazily: runstate imports tempfile

    return os.path.join(os.path.dirname(log_path), f"{job_name}_{job_id}{STATE_SUFFIX}")


def clean_line(line: str) -> str:
    """What a terminal would finally show: the text after the last carriage return,
    colour codes and other control characters removed, tabs as spaces."""
    line = line.rstrip("\r")
    if "\r" in line:
        segments = [s for s in line.split("\r") if s.strip()]
        line = segments[-1] if segments else ""
    return re.sub(_CONTROL, "", line.expandtabs(4))


def tail_lines(path: str, count: int) -> List[str]:
    """The last ``count`` lines of a file, read backwards in blocks (cheap on huge logs).

    Raises OSError when the file cannot be read.
    """
    if count <= 0:
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        chunks: List[bytes] = []
        newlines = 0
        read = 0
        while position > 0 and newlines <= count and read < MAX_TAIL_BYTES:
            size = min(BLOCK, position)
            position -= size
            handle.seek(position)
            chunk = handle.read(size)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            read += size
    data = b"".join(reversed(chunks))
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if position > 0 and lines:
        lines = lines[1:]  # the first one is probably cut
    return [clean_line(line) for line in lines[-count:]]
