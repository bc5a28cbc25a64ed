"""Private directories and files on a node: made fresh by the job, never trusted when found.

Another user of a shared node can create files in ``/tmp`` and guess job ids, so nothing
the job keeps there has a predictable name or is taken over when it exists already:

- :func:`private_root`: the job's ``$TMPDIR`` (what Slurm or the site gives the job) when it
  is usable — absolute, a directory owned by us or root, sticky when others may write in
  it, short enough for Ray's Unix sockets — else ``/tmp``.
- :func:`make_private_dir`: :func:`tempfile.mkdtemp` (an unpredictable name, mode 0700,
  created by ``mkdir``, which fails rather than reuse a name that exists), then checked
  with ``lstat``: a real directory, ours, nobody else's permission bits.
- :func:`write_private_file`: ``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0600, checked by ``fstat``.

Ray's Unix sockets live in its temp dir (``<temp>/session_<stamp>_<pid>/sockets/dash_
MetricsHead``: 68 bytes after the temp dir, of the 107 a socket path may have), so every
Ray temp dir stays within :data:`RAY_TEMP_MAX` characters.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Mapping, Optional, Tuple

RAY_TEMP_MAX = 36  # 107 bytes of sun_path less Ray's 68, with a margin for longer names
FALLBACK_ROOT = "/tmp"
PRIVATE_PREFIX = "ot-"


class PrivatePathError(OSError):
    """A directory or file is not safely ours (one line, naming the path and why)."""


def root_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot hold the job's private directories (None: it can)."""
    if not path or not os.path.isabs(path):
        return f"{path!r} is not an absolute path"
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"{path} cannot be used ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to uid {info.st_uid}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        return f"{path} is writable by others and not sticky (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def private_root(environ: Mapping[str, str], extra: int = 0) -> Tuple[str, Optional[str]]:
    """(where to make private directories, a note when ``$TMPDIR`` was not used).

    ``extra``: characters the caller appends below the root for its Ray temp dir (the
    root is refused when the result would exceed :data:`RAY_TEMP_MAX`)."""
    wanted = (environ.get("TMPDIR") or "").rstrip("/") or None
    if wanted is None or wanted == FALLBACK_ROOT:
        return FALLBACK_ROOT, None
    problem = root_problem(wanted)
    if problem is None and len(wanted) + extra > RAY_TEMP_MAX:
        problem = (f"{wanted} is too long for Ray's Unix sockets ({len(wanted) + extra} of "
                   f"{RAY_TEMP_MAX} characters)")
    if problem is None:
        return wanted, None
    return FALLBACK_ROOT, f"TMPDIR not used: {problem}; private directories go to {FALLBACK_ROOT}"


def check_private_dir(path: str) -> None:
    """Raise :class:`PrivatePathError` unless ``path`` is a real directory of ours, 0700."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise PrivatePathError(f"{path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PrivatePathError(f"{path} is not a directory (a link or a file was put there)")
    if info.st_uid != os.getuid():
        raise PrivatePathError(f"{path} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        raise PrivatePathError(f"{path} has mode {stat.S_IMODE(info.st_mode):o}, not 700")


def make_private_dir(root: str, prefix: str = PRIVATE_PREFIX) -> str:
    """A new directory under ``root`` with an unpredictable name, mode 0700, checked."""
    path = tempfile.mkdtemp(prefix=prefix, dir=root)  # mkdir(0700): never an existing name
    check_private_dir(path)
    return path


def make_private_subdir(parent: str, name: str) -> str:
    """``parent/name`` made fresh (``mkdir`` fails when it exists), mode 0700, checked."""
    path = os.path.join(parent, name)
    os.mkdir(path, 0o700)
    check_private_dir(path)
    return path


def write_private_file(directory: str, name: str, text: str) -> str:
    """Create ``directory/name`` (never an existing file or a link), 0600; return its path."""
    path = os.path.join(directory, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PrivatePathError(f"{path} is not private (uid {info.st_uid}, "
                                   f"mode {stat.S_IMODE(info.st_mode):o})")
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    return path


def remove_private_dir(path: Optional[str]) -> None:
    """Remove a private directory of ours (never follows a link put in its place)."""
    if not path:
        return
    try:
        check_private_dir(path)
    except PrivatePathError:
        return
    shutil.rmtree(path, ignore_errors=True)
