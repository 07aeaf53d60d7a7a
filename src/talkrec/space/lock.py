"""The space's writer lock: one process writes a space (``LOCK``, ``flock``), and a build
or a reindex replaces a space only while no process has it open for writing."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .files import LOCK, WriteError

__all__ = ["WriterLock", "replacing"]


class WriterLock:
    """The space's ``LOCK`` file, held (``flock``, exclusive) by the one process whose Space
    writes; the kernel releases it when that process dies."""

    #: lock files held by this process (another Space object of it cannot take them either)
    held_here: set[str] = set()

    def __init__(self, path: Path) -> None:
        self.path = path / LOCK
        self._f: Any = None
        self.unusable: str | None = None       # why this process cannot open the file at all

    def holder(self) -> str:
        """Who holds the lock, in words (for an error message)."""
        return ("another Space object of this process (close() it first)" if str(self.path.resolve()) in self.held_here
                else "another process (stop it first, or send the writes to it)")

    @property
    def held(self) -> bool:
        return self._f is not None

    def acquire(self) -> bool:
        """Take the lock if no other process (or other Space of this one) holds it."""
        if self._f is not None:
            return True
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no inter-process lock
            self._f = True
            return True
        self.unusable = None
        try:
            f = open(self.path, "a+")  # noqa: SIM115 - held open while the lock is
        except OSError as e:            # a read-only file system, a folder this user may not write: reads only
            self.unusable = f"{self.path} cannot be opened for writing ({type(e).__name__}: {e.strerror or e})"
            return False
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._f = f
        self.held_here.add(str(self.path.resolve()))
        return True

    def release(self) -> None:
        if self._f is not None and self._f is not True:
            self._f.close()
            self.held_here.discard(str(self.path.resolve()))
        self._f = None


@contextmanager
def replacing(path: Path, *, create: bool = True) -> Iterator[None]:
    """Hold the writer lock of the space at ``path`` (when there is one) while the block
    replaces it: a :class:`WriteError` when another process has it open for writing (a server
    that has written would go on appending acknowledged writes to the log of the folder
    swapped out, and compact its old items into the new one). A process that loaded it without
    writing refuses its first write afterwards (its manifest changed). ``create=False``: a
    folder without a ``LOCK`` file (which no process can hold) is left as it is."""
    lock = WriterLock(path) if path.is_dir() and (create or (path / LOCK).exists()) else None
    if lock is not None and not lock.acquire():
        who = ("a Space object of this process (close() it first)" if str(lock.path.resolve()) in lock.held_here
               else "another process (a talkrec serve?): stop it first")
        raise WriteError(f"{path} is a space open for writing in {who}, or build into another folder; it was "
                         "not replaced")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
