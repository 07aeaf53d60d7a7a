"""Durable atomic writes: everything goes to a temporary path in the same folder, is fsync'ed,
then renamed into place, and the folder is fsync'ed so the rename survives a power loss.

Temporary names are recognizable (:func:`is_temporary`): ``.NAME.XXXXXXXX.tmp[.suffix]`` for
files and folders being written, ``.NAME.old-PID`` for a folder moved aside by
:func:`atomic_dir`, ``gen-NNNNNN.tmp`` for a space generation being built. A process killed half-way
leaves them behind; :func:`recover_dir` and :func:`clean_orphans` put things right.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: names of temporary files and folders written here (see the module docstring), and of
#: those written by earlier versions (``.NAME.XXXXXXXX[.suffix]`` without ``.tmp``)
_TEMPORARY = re.compile(r"^(\..+\.[a-z0-9_]{8}(\.tmp)?(\.[A-Za-z0-9]+)?|\..+\.old-\d+|gen-\d+\.tmp)$")
#: when this process started (for :func:`orphans` ``older_than``)
PROCESS_START = time.time()


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (creations, renames, deletions) to the disk; a no-op where
    folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike[str]) -> None:
    """fsync every file below ``path``, then every folder, deepest first."""
    dirs = []
    for root, _, files in os.walk(path):
        for f in files:
            fsync_file(os.path.join(root, f))
        dirs.append(root)
    for d in reversed(dirs):
        fsync_dir(d)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file or folder of this module (or a generation being
    built): safe to delete when no writer is running."""
    return bool(_TEMPORARY.match(name))


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; on success fsync it, rename it onto
    ``path`` and fsync the folder.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats as ``None``, in mappings, lists and tuples at any
    depth: what ``json.dumps(..., allow_nan=False)`` accepts (strict JSON; ``NaN`` is not)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success fsync it and swap it into place.

    The old folder (if any) is moved aside to ``.NAME.old-PID`` first and deleted only after
    the new one is in place; a crash between the two renames leaves no ``path`` but the
    ``.old`` folder, which :func:`recover_dir` (called by every load) renames back.
    ``path`` is made absolute first (``.``, ``..`` and ``x/..`` name a folder by its real name);
    one without a name (``/``) is a :class:`ValueError`.
    """
    path = Path(os.path.abspath(path))
    if not path.name:
        raise ValueError(f"{path} has no name: it cannot be replaced by a folder written next to it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_with(path: str | os.PathLike[str], writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``writer(tmp_path)`` and atomically move the result onto ``path``."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)


def recover_dir(path: str | os.PathLike[str]) -> bool:
    """If folder ``path`` is missing but a ``.NAME.old-PID`` folder that :func:`atomic_dir`
    moved aside is there (a crash between its two renames), rename the newest one back.
    Returns whether something was recovered."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return False
    olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not olds:
        return False
    os.replace(olds[-1], path)
    fsync_dir(path.parent)
    log.warning("recovered %s from %s (a write was interrupted between its two renames)", path, olds[-1].name)
    return True


def orphans(folder: str | os.PathLike[str], *, older_than: float | None = None) -> list[Path]:
    """Temporary files and folders (:func:`is_temporary`) directly in ``folder``, optionally
    only those last modified before ``older_than`` (a UNIX time)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if not is_temporary(p.name):
            continue
        try:
            mtime = p.lstat().st_mtime
        except FileNotFoundError:
            continue
        if older_than is None or mtime < older_than:
            out.append(p)
    return out


def remove_paths(paths: list[Path]) -> int:
    """Delete files and folders, then fsync their folders; returns the bytes freed."""
    freed = 0
    parents = set()
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            freed += p.stat().st_size
            p.unlink(missing_ok=True)
        parents.add(p.parent)
    for d in parents:
        if d.is_dir():
            fsync_dir(d)
    return freed


def clean_orphans(folder: str | os.PathLike[str], *, older_than: float | None = None) -> list[Path]:
    """Delete :func:`orphans` of ``folder`` (call it only when no writer can be using them,
    e.g. holding the folder's writer lock); returns what was deleted."""
    found = orphans(folder, older_than=older_than)
    if found:
        freed = remove_paths(found)
        log.warning("removed %d orphaned temporary file(s)/folder(s) in %s (%.1f MB): %s", len(found), folder,
                    freed / 1e6, ", ".join(p.name for p in found))
    return found

