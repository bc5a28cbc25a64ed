"""Harbor task parquets: detect them in a downloaded dataset and extract the task folders.

Terminal-bench RL datasets on Hugging Face ship their tasks as a parquet file with one row
per task: ``path`` (str, the task directory relative to a base) and ``task_binary`` (bytes,
a tar archive of that directory's contents, gzip-compressed by default). SkyRL's
terminal-bench entrypoint wants directories of task folders
(``data.train_data=['<dir>']``), so after the login-node pre-download
(:mod:`ot_hpc.stage.fetch`) ``submission.schedule`` extracts every Harbor parquet of a
dataset snapshot and hands SkyRL the extracted directories instead of the snapshot.
Datasets that are already task directories (``instruction.md`` files) have no such parquet
and are left as they are.

Where: next to the snapshot in the HF cache, never inside it (a snapshot directory is a
symlink farm owned by huggingface_hub)::

    <cache>/datasets--org--name/snapshots/<commit>/tasks_new.parquet           (downloaded)
    <cache>/datasets--org--name/ot-hpc-tasks/<commit>/tasks_new/<path>/...     (extracted)

Idempotent: a finished extraction holds ``.ot-hpc-extracted.json`` (the parquet's resolved
path, size and mtime); a second submission finds it and extracts nothing. Atomic: rows are
extracted into a temporary sibling directory (``.tmp-*``), the marker is written last, and
only then is the directory renamed into place, so a crash never leaves a directory that
looks complete. Safe: a row's ``path`` and every archive member must be relative without
``..``; only regular files, directories, symlinks and hardlinks that stay inside the task
directory are accepted (no devices, FIFOs, absolute or escaping links, nothing written
through a symlink); set-id bits are dropped. A bad row stops everything with one line naming
the parquet and the row's ``path`` (:class:`~ot_hpc.stage.errors.StageError`, exit 2).

Reading parquet needs ``pyarrow``, imported lazily (an optional dependency). Spotting a
Harbor parquet does not: the column names are read from the parquet footer, so a missing
pyarrow is reported as one line (``pip install pyarrow``) exactly when it is needed.
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import stat
import struct
import tarfile
import tempfile
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from .errors import EXIT_INPUT, StageError
from .fetch import importable

COLUMNS = ("path", "task_binary")
EXTRACT_DIR = "ot-hpc-tasks"  # sibling of snapshots/ in the repo's cache folder
MARKER = ".ot-hpc-extracted.json"
MARKER_FORMAT = 1
PYARROW_HINT = ("pip install pyarrow (on the login node), or set TRAIN_DATA/VAL_DATA to "
                "directories of extracted task folders yourself")
_MAX_FOOTER = 64 * 1024 * 1024
_SKIP_DIRS = {".git", ".cache", ".huggingface"}


def harbor_error(message: str) -> StageError:
    """Extraction failed or cannot start: a :class:`StageError` of one line (the lines of
    ``message`` joined), exit 2: the input (or the login node's Python) must change."""
    return StageError(" ".join(message.splitlines()), EXIT_INPUT)


class UnsafeEntry(ValueError):
    """One row's path or archive member is not acceptable; ``str()`` says why."""


# --------------------------------------------------------------------------------------
# Safety checks (pure)
# --------------------------------------------------------------------------------------


def _parts(name: str, what: str) -> List[str]:
    if not isinstance(name, str) or name == "":
        raise UnsafeEntry(f"{what} is empty")
    if "\x00" in name:
        raise UnsafeEntry(f"{what} {name!r} contains a NUL byte")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeEntry(f"{what} {name!r} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeEntry(f"{what} {name!r} has a '..' component")
    return parts


def check_task_path(path: object) -> str:
    """A row's ``path``, normalized (``a/b``); relative, no ``..``, not the base itself."""
    if not isinstance(path, str):
        raise UnsafeEntry(f"path is {type(path).__name__}, not a string")
    parts = _parts(path, "path")
    if not parts:
        raise UnsafeEntry(f"path {path!r} names the base directory itself")
    return "/".join(parts)


def member_name(name: str) -> str:
    """An archive member's name, normalized (``./a//b`` -> ``a/b``; the root -> "")."""
    return "/".join(_parts(name, "member"))


def check_members(members: Sequence[tarfile.TarInfo]) -> List[Tuple[str, tarfile.TarInfo]]:
    """The members to extract, as (normalized name, member), root entry dropped.

    Raises :class:`UnsafeEntry` for an absolute name or a ``..`` component, a device, FIFO
    or other special file, a symlink that is absolute or points outside the task
    directory, a hardlink to anything but an earlier regular file, a member below a
    symlink (it would be written through it), or a name that appears twice."""
    accepted: List[Tuple[str, tarfile.TarInfo]] = []
    seen: Set[str] = set()
    symlinks: Set[str] = set()
    files: Set[str] = set()
    for member in members:
        name = member_name(member.name)
        if not name:
            if member.isdir():
                continue
            raise UnsafeEntry(f"member {member.name!r} is the task directory but not a directory")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeEntry(f"member {name!r} is a device, FIFO or other special file")
        if name in seen:
            raise UnsafeEntry(f"member {name!r} appears twice")
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in symlinks:
                raise UnsafeEntry(f"member {name!r} is below the symlink {'/'.join(parts[:depth])!r}")
        if member.issym():
            target = member.linkname
            if not target or target.startswith("/") or "\x00" in target:
                raise UnsafeEntry(f"symlink {name!r} -> {target!r} is empty or absolute")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if resolved == ".." or resolved.startswith("../"):
                raise UnsafeEntry(f"symlink {name!r} -> {target!r} points outside the task directory")
            symlinks.add(name)
        elif member.islnk():
            try:
                target = member_name(member.linkname)
            except UnsafeEntry:
                raise UnsafeEntry(f"hardlink {name!r} -> {member.linkname!r} points outside the "
                                  "task directory") from None
            if target not in files:
                raise UnsafeEntry(f"hardlink {name!r} -> {member.linkname!r} is not to an earlier "
                                  "regular file of the task")
            files.add(name)
        elif member.isreg():
            files.add(name)
        seen.add(name)
        accepted.append((name, member))
    return accepted


def inside(root: str, path: str) -> bool:
    """Whether ``path`` (already resolved) is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------------------
# Detection (reads only; no pyarrow needed)
# --------------------------------------------------------------------------------------


def footer_columns_look_harbor(path: str) -> bool:
    """Whether the parquet footer mentions both ``path`` and ``task_binary`` (a cheap,
    pyarrow-free sniff: column names are stored as plain strings in the footer)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size < 12:
                return False
            handle.seek(size - 8)
            tail = handle.read(8)
            if tail[4:] != b"PAR1":
                return False
            length = struct.unpack("<I", tail[:4])[0]
            if length <= 0 or length > min(size - 12, _MAX_FOOTER):
                return False
            handle.seek(size - 8 - length)
            footer = handle.read(length)
    except OSError:
        return False
    return all(name.encode() in footer for name in COLUMNS)


def find_parquets(root: str) -> List[str]:
    """Every ``*.parquet`` below ``root`` (following file symlinks, not directory ones), sorted."""
    found: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for filename in filenames:
            if filename.lower().endswith(".parquet"):
                found.append(os.path.join(dirpath, filename))
    return sorted(found)


def harbor_parquets(snapshot: str) -> List[str]:
    """The parquets of a dataset snapshot that look like Harbor task parquets (footer sniff)."""
    if os.path.isfile(snapshot):
        return [snapshot] if footer_columns_look_harbor(snapshot) else []
    if not os.path.isdir(snapshot):
        return []
    return [p for p in find_parquets(snapshot) if footer_columns_look_harbor(p)]


def extraction_root(snapshot: str) -> str:
    """Where a snapshot's parquets are extracted: ``<repo>/ot-hpc-tasks/<commit>`` for an HF
    cache snapshot ``<repo>/snapshots/<commit>``; else ``<snapshot>.ot-hpc-tasks``."""
    snapshot = os.path.abspath(snapshot).rstrip(os.sep)
    parent = os.path.dirname(snapshot)
    if os.path.basename(parent) == "snapshots":
        return os.path.join(os.path.dirname(parent), EXTRACT_DIR, os.path.basename(snapshot))
    return snapshot + "." + EXTRACT_DIR


def extraction_dir(snapshot: str, parquet: str) -> str:
    """The directory a parquet's task folders go to (its path in the snapshot, sans suffix)."""
    if os.path.isfile(snapshot):
        base = os.path.basename(parquet)
        return os.path.join(extraction_root(os.path.dirname(snapshot)), base[: -len(".parquet")])
    relative = os.path.relpath(parquet, snapshot)
    return os.path.join(extraction_root(snapshot), relative[: -len(".parquet")])


def _stat_key(parquet: str) -> Dict[str, object]:
    real = os.path.realpath(parquet)
    info = os.stat(real)
    return {"format": MARKER_FORMAT, "parquet": real, "size": info.st_size,
            "mtime_ns": info.st_mtime_ns}


def is_extracted(parquet: str, dest: str) -> bool:
    """Whether ``dest`` holds a finished extraction of this very parquet (marker matches)."""
    try:
        with open(os.path.join(dest, MARKER), encoding="utf-8") as handle:
            marker = json.load(handle)
        key = _stat_key(parquet)
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and all(marker.get(k) == v for k, v in key.items())


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------


def pyarrow_available() -> bool:
    """Whether pyarrow would import, without importing it (for the dry run)."""
    return importable("pyarrow")


def _parquet_module(what: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise harbor_error(f"{what}: is a Harbor task parquet and extracting it needs pyarrow, "
                          f"which does not import here; {PYARROW_HINT}") from None
    return pq


def read_rows(parquet: str, what: str, batch_size: int = 64) -> Iterator[Tuple[object, object]]:
    """(path, task_binary) per row, a batch at a time (bounded memory)."""
    pq = _parquet_module(what)
    try:
        handle = pq.ParquetFile(parquet)
        names = set(handle.schema_arrow.names)
        if not set(COLUMNS) <= names:
            raise harbor_error(f"{what}: has no columns {' and '.join(COLUMNS)} "
                              f"(it has {', '.join(sorted(names))})")
        for batch in handle.iter_batches(batch_size=batch_size, columns=list(COLUMNS)):
            data = batch.to_pydict()
            yield from zip(data["path"], data["task_binary"])
    except StageError:
        raise
    except Exception as exc:  # pyarrow's errors: one line
        raise harbor_error(f"{what}: cannot be read as parquet ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None


def extract_archive(data: bytes, task_dir: str) -> int:
    """Extract one task's tar bytes (any compression tarfile knows) into ``task_dir``,
    which must not exist yet. Returns the number of members written. Raises UnsafeEntry."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafeEntry(f"task_binary is {type(data).__name__}, not bytes")
    try:
        archive = tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:*")
    except tarfile.TarError:
        raise UnsafeEntry("task_binary is not a tar archive (plain, gzip, bzip2 or xz)") from None
    with archive:
        try:
            members = check_members(archive.getmembers())
        except tarfile.TarError as exc:
            raise UnsafeEntry(f"task_binary is a damaged tar archive ({exc})") from None
        os.makedirs(task_dir)
        root = os.path.realpath(task_dir)
        for name, member in members:
            target = os.path.join(root, *name.split("/"))
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            if not inside(root, os.path.realpath(parent)):  # belt and braces: never via a link
                raise UnsafeEntry(f"member {name!r} would be written outside the task directory")
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                os.chmod(target, 0o755)
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                source = os.path.join(root, *member_name(member.linkname).split("/"))
                shutil.copyfile(source, target, follow_symlinks=False)
                os.chmod(target, stat.S_IMODE(os.lstat(source).st_mode))
            else:
                extracted = archive.extractfile(member)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(target, flags, 0o600)
                with os.fdopen(fd, "wb") as out:
                    if extracted is not None:
                        shutil.copyfileobj(extracted, out, 1024 * 1024)
                os.chmod(target, (member.mode & 0o755) | 0o644)
        for name, member in members:  # chains of symlinks must resolve inside too
            if member.issym():
                resolved = os.path.realpath(os.path.join(root, *name.split("/")))
                if not inside(root, resolved):
                    raise UnsafeEntry(f"symlink {name!r} -> {member.linkname!r} resolves outside "
                                      "the task directory")
    return len(members)


def extract_parquet(parquet: str, dest: str, what: str = "",
                    rows: Optional[Iterable[Tuple[object, object]]] = None) -> Tuple[bool, int]:
    """Extract every row of a Harbor parquet into ``dest/<path>``; atomic and idempotent.

    Returns (extracted now, number of tasks); (False, n) when ``dest`` already holds a
    finished extraction of this parquet. ``what`` prefixes error lines (the setting).
    Raises :class:`StageError` (one line naming the row's path, exit 2)."""
    what = f"{what}: {parquet}" if what else parquet
    if is_extracted(parquet, dest):
        return False, _marker_tasks(dest)
    key = _stat_key(parquet)
    parent = os.path.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(dest)}-", dir=parent)
    except OSError as exc:
        raise harbor_error(f"{what}: cannot create {parent} ({type(exc).__name__}: {exc}); check "
                          "HF_HUB_CACHE (space, permissions)") from None
    try:
        count = 0
        seen: Set[str] = set()
        for index, (path, data) in enumerate(rows if rows is not None else read_rows(parquet, what)):
            label = f"row {index} (path {path!r})"
            try:
                task = check_task_path(path)
                if task in seen:
                    raise UnsafeEntry("the same path appears in an earlier row")
                for other in seen:
                    if task.startswith(other + "/") or other.startswith(task + "/"):
                        raise UnsafeEntry(f"it nests with the task {other!r}")
                seen.add(task)
                extract_archive(data, os.path.join(tmp, *task.split("/")))
            except UnsafeEntry as exc:
                raise harbor_error(f"{what}: {label}: {exc}; nothing was extracted") from None
            except OSError as exc:
                raise harbor_error(f"{what}: {label}: cannot extract ({type(exc).__name__}: "
                                  f"{exc})") from None
            count += 1
        if count == 0:
            raise harbor_error(f"{what}: has no rows (no tasks)")
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as handle:
            json.dump({**key, "tasks": count}, handle)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o755)
        _replace_dir(tmp, dest)
        if not is_extracted(parquet, dest):  # lost a race to another, different extraction
            raise harbor_error(f"{what}: {dest} changed while extracting; submit again")
        return True, count
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _marker_tasks(dest: str) -> int:
    try:
        with open(os.path.join(dest, MARKER), encoding="utf-8") as handle:
            return int(json.load(handle).get("tasks", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def _replace_dir(tmp: str, dest: str) -> None:
    """Rename ``tmp`` to ``dest``; a stale ``dest`` (no or another marker) is moved aside
    and removed; a concurrent finished one is kept (``tmp`` is dropped by the caller)."""
    try:
        os.rename(tmp, dest)
        return
    except OSError:
        if not os.path.lexists(dest):
            raise
    with open(os.path.join(tmp, MARKER), encoding="utf-8") as handle:
        ours = json.load(handle)
    if _marker_tasks(dest) and _read_marker(dest) == ours:
        return  # someone else finished the same extraction first
    stale = tempfile.mkdtemp(prefix=f".stale-{os.path.basename(dest)}-", dir=os.path.dirname(dest))
    os.rename(dest, os.path.join(stale, "old"))
    os.rename(tmp, dest)
    shutil.rmtree(stale, ignore_errors=True)


def _read_marker(dest: str) -> object:
    try:
        with open(os.path.join(dest, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def extract_snapshot(snapshot: str, what: str = "",
                     report: Optional[Callable[[str], None]] = None) -> Tuple[str, ...]:
    """Extract every Harbor parquet of a dataset snapshot (or a parquet file); return the
    extracted directories, one per parquet, or () when there is none (leave it as it is)."""
    dirs: List[str] = []
    for parquet in harbor_parquets(snapshot):
        dest = extraction_dir(snapshot, parquet)
        now, count = extract_parquet(parquet, dest, what)
        if report is not None:
            state = "extracted" if now else "already extracted"
            report(f"harbor: {state} {count} task(s) of {parquet} into {dest}")
        dirs.append(dest)
    return tuple(dirs)
