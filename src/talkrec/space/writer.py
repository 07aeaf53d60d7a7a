"""The storage engine of a space: one writer at a time, readers on immutable snapshots.

Reads take :attr:`SpaceStore.snapshot` (one reference, no lock). A write, serialized by the
writer lock, builds its log record against the newest snapshot (the tip), appends it to the
write-ahead log (:mod:`talkrec.index.wal`) and makes the next snapshot; outside the lock it
waits for an fsync of the log (group commit: writers that arrive meanwhile share the next
one), and only then is the snapshot published and the write acknowledged. A crash loses
nothing acknowledged: loading replays the manifest's logs and drops a torn tail.

The first write takes the space's ``LOCK`` (one writing process) and migrates a legacy
space to format 2. :meth:`SpaceStore.compact` (also run in a background thread when the
delta passes a threshold) seals the log, writes the next generation off to the side, then
swaps it in, holding the writer lock only for the swap. With a vector database
(:mod:`talkrec.index.backend`) each write goes there once logged, under the writer lock
(in log order), before it is published; loading re-applies the logs to it (idempotent).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import clean_orphans, remove_paths
from ..errors import InputError, NotFoundError
from ..index import wal
from ..index.backend import VectorBackend, mirror, open_backend, reapply
from ..index.compaction import apply_record, compacted, graph_file_of, rebase
from ..index.analysis import bm25_params
from ..index.segments import Generation
from ..index.snapshot import Snapshot
from .files import (Manifest, ManifestChanged, SpaceFiles, WriteConflict, WriteError, gen_name, gen_number,
                    log_name, migrate_legacy, publish_generation, read_manifest, read_space, replay_logs,
                    storage_setting, unreferenced, write_manifest)
from .follower import ReadsInFlight
from .lock import WriterLock
from .hits import jsonable

log = logging.getLogger(__name__)

__all__ = ["SpaceStore", "Upsert"]

#: a write as ``_write`` takes it: the log payload, the next snapshot, the record to mirror
Built = tuple[bytes, Callable[[], Snapshot], wal.LogRecord]


@dataclass(frozen=True)
class Tip:
    """A snapshot, the sequence number of its last write, and the log that write went to."""

    seq: int
    snap: Snapshot
    log: wal.LogFile | None = None


@dataclass
class Upsert:
    """A validated, embedded batch of items ready to be written (see :mod:`.coldstart`)."""

    ids: list[str]
    vectors: np.ndarray
    meta: list[dict[str, Any]]
    inputs: dict[str, np.ndarray]


class SpaceStore:
    """The snapshots, write-ahead log, writer lock and compaction of the space at ``path``.

    ``compact_fraction``, ``compact_min_rows``, ``compact_max_rows``: compact in the
    background once the rows changed since the generation reach
    ``min(max(fraction * base rows, min_rows), max_rows)`` (``auto_compact=False``: only
    when :meth:`compact` is called). ``write_threads``, ``write_nice``: descriptions embedded at
    once (one thread each) and their encoder's lowered priority: reads run first (docs/service.md).
    ``follow``: this process never writes; it reads what another one writes (:mod:`.follower`)."""

    def __init__(self, path: Path, files: SpaceFiles, *, compact_fraction: float = 0.05, compact_min_rows: int = 256,
                 compact_max_rows: int = 10_000, auto_compact: bool = True, write_threads: int = 2,
                 write_nice: int = 10, follow: bool = False) -> None:
        self.write_threads = storage_setting("write_threads", write_threads, 1, 256)
        self.write_nice = storage_setting("write_nice", write_nice, 0, 19)
        self.path, self._manifest = path, files.manifest
        self.compact_fraction, self.compact_min_rows = compact_fraction, compact_min_rows
        self.compact_max_rows, self.auto_compact = compact_max_rows, auto_compact
        self.problems: list[str] = []
        self.follows = bool(follow)
        self.reads = ReadsInFlight()       # what a follower's loads make way for (:mod:`.follower`)
        self.warmers: list[Callable[[Snapshot, Snapshot], None]] = []   # a new generation's, and what it compacts
        self._plock = WriterLock(path)
        self._log_sizes: dict[str, int] = {}
        self._write_lock, self._publish_lock, self._compact_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._log: wal.LogFile | None = None
        self._broken: BaseException | None = None
        self._compactor: threading.Thread | None = None
        self._compact_failed: str | None = None
        self.backend: VectorBackend | None = open_backend(files.config.get("index", {}))
        self._bm25 = bm25_params(files.config.get("search"))
        owner = not self.follows and self._plock.acquire()    # a follower never cuts or deletes a file
        try:
            if owner:
                self._tidy()
            snap = self._replay(Snapshot.of(files.generation, self.backend), truncate=owner)
        except BaseException:
            if self.backend is not None:
                self.backend.close()
            raise
        finally:
            self._plock.release()
        self._tip = self._published = Tip(0, snap)
        self._group = wal.GroupCommit(lambda: self._tip, self._sync)

    @property
    def snapshot(self) -> Snapshot:
        """The newest durable snapshot (what reads use)."""
        return self._published.snap

    @property
    def manifest(self) -> Manifest | None:
        return self._manifest

    @property
    def health(self) -> list[str]:
        """What is wrong with this store now: log damage recovered at load, writes refused
        since a write could not be made durable, the last background compaction's failure."""
        broken = [f"writes are refused until the space is reloaded: {self._broken}"] if self._broken else []
        return self.problems + broken + ([self._compact_failed] if self._compact_failed else [])

    @property
    def log_sizes(self) -> dict[str, int]:
        """The bytes of each log that the snapshot holds (loading replayed them)."""
        return dict(self._log_sizes)

    # ------------------------------------------------------------------ loading
    def _replay(self, snap: Snapshot, *, truncate: bool) -> Snapshot:
        """Apply the manifest's logs (:func:`~.files.replay_logs`); when this process may
        write, a torn tail is cut off and the logs are applied to the backend again."""
        done = replay_logs(self.path, self._manifest.logs if self._manifest else [], snap, truncate=truncate)
        self._log_sizes.update(done.sizes)
        problem = reapply(self.backend, done.records) if truncate and self.backend is not None else None
        for msg in done.problems + ([problem] if problem else []):
            log.warning("%s: %s", self.path, msg)
            self.problems.append(msg)
        return done.snap

    def _tidy(self) -> None:
        """Delete what no manifest names (held lock: no other writer): a killed writer's temporary
        files, generations and logs a crash left unreferenced, a migrated space's legacy folders.
        Only by the manifest this process read being the current one: a writer that compacted
        meanwhile made files that the older one does not name."""
        if read_manifest(self.path) != self._manifest:
            raise ManifestChanged(f"{self.path}: MANIFEST.json changed while this process loaded the space")
        clean_orphans(self.path)
        clean_orphans(self.path / "inputs")
        if self._manifest is None:
            return
        stale = unreferenced(self.path, self._manifest)
        if stale:
            log.warning("%s: removing what the manifest does not name: %s", self.path, ", ".join(p.name for p in stale))
            remove_paths(stale)

    # ------------------------------------------------------------------ writes
    def upsert(self, batch: Upsert) -> None:
        """Insert or replace ``batch.ids`` (unique); metadata fields a record does not give
        keep the old row's values."""
        def build(tip: Snapshot) -> Built:
            meta = [_merged(tip, iid, row) for iid, row in zip(batch.ids, batch.meta)]
            record = wal.LogRecord("upsert", batch.ids, batch.vectors, meta, batch.inputs)
            payload = wal.encode_upsert(batch.ids, batch.vectors, meta, batch.inputs)
            return payload, lambda: apply_record(tip, record), record        # applied as a replay applies it
        self._write(build)

    def remove(self, ids: Sequence[str]) -> None:
        """Delete items; the whole batch is refused when an id is unknown or given twice."""
        def build(tip: Snapshot) -> Built:
            missing = [i for i in ids if tip.position(i) is None]
            if missing:
                raise NotFoundError(f"unknown item(s) {missing[:5]}; nothing was deleted")
            return wal.encode_delete(ids), lambda: tip.with_delete(ids), wal.LogRecord("delete", list(ids))
        if len(set(ids)) != len(ids):
            raise InputError("an item id is given twice; give each id once per call (nothing was deleted)",
                             field="item_id")
        self._write(build)

    def _write(self, build: Callable[[Snapshot], Built]) -> None:
        with self._write_lock:
            self._check_writable()
            tip = self._tip
            payload, apply, record = build(tip.snap)
            assert self._log is not None
            try:
                self._log.append(wal.frame(payload))
            except OSError as e:
                log.exception("appending to %s failed", self._log.path)
                raise WriteError(f"the write could not be persisted ({type(e).__name__}: {e}); "
                                 "nothing was changed") from e
            self._mirror(record)
            tip = Tip(tip.seq + 1, apply(), self._log)
            self._tip = tip
        self._durable(tip.seq)
        self._maybe_compact()

    def _mirror(self, record: wal.LogRecord) -> None:
        """The logged write in the backend too; a refusal breaks the writer (a reload applies it)."""
        if self.backend is None:
            return
        try:
            mirror(self.backend, record)
        except Exception as e:
            self._broken = e
            log.exception("the vector database of %s refused a logged write", self.path)
            raise WriteError(f"the write is in the space's log but the vector database refused it "
                             f"({type(e).__name__}: {e}); loading the space again applies it there, and this "
                             "space refuses writes until it is reloaded") from e

    def _durable(self, seq: int) -> None:
        """Wait for the group commit of write ``seq``; an fsync error breaks the writer."""
        try:
            self._group.wait(seq)
        except OSError as e:
            self._broken = e
            log.exception("fsync of the log of %s failed", self.path)
            raise WriteError(f"the write could not be made durable ({type(e).__name__}: {e}); it may or may not "
                             "be there after a reload, and this space refuses writes until it is reloaded") from e

    def _sync(self, tip: Tip) -> None:
        """Group-commit leader: fsync the log, then publish the snapshot it covers."""
        if tip.log is not None:
            tip.log.sync()
        with self._publish_lock:
            if tip.seq > self._published.seq:
                self._published = tip

    def _check_writable(self) -> None:
        """Become the space's writer (writer lock held): take ``LOCK``, check that no other
        process changed the space since it was loaded, migrate a legacy space, open the log."""
        if self.follows:
            raise WriteConflict(f"{self.path} is followed read-only here (it reads what another process writes): "
                             "write through the process that writes it")
        if self._broken is not None:
            raise WriteError(f"an earlier write could not be made durable ({self._broken}); reload the space")
        if self._log is not None:
            return
        if not self._plock.acquire():
            raise WriteConflict(f"{self.path} cannot be written here: {self._plock.unusable}" if self._plock.unusable
                                else f"{self.path} is being written to by {self._plock.holder()}: one writer at a time")
        if read_manifest(self.path) != self._manifest or any(
                (self.path / n).stat().st_size != s for n, s in self._log_sizes.items() if (self.path / n).exists()):
            self._plock.release()
            raise WriteConflict(f"{self.path} was changed by another process since it was loaded; load it again")
        if self._manifest is None:
            self._migrate()
        assert self._manifest is not None
        if not self._manifest.logs:
            m = self._manifest
            self._manifest = replace(m, logs=[log_name(m.next_log)], next_log=m.next_log + 1)
            wal.LogFile(self.path / self._manifest.logs[0]).close()
            write_manifest(self.path, self._manifest)
        self._log = wal.LogFile(self.path / self._manifest.logs[-1])
        self._tip = Tip(self._tip.seq, self._tip.snap, self._log)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Be the space's writer for a change outside the log (attaching a session model)."""
        with self._write_lock:
            self._check_writable()
            yield

    def _migrate(self) -> None:
        """Write a legacy space as format 2 (its index as generation 1, an empty log)."""
        self._manifest = migrate_legacy(self.path, self._tip.snap.gen)

    # ------------------------------------------------------------------ compaction
    def threshold(self, n0: int) -> int:
        return int(min(max(self.compact_fraction * n0, self.compact_min_rows), self.compact_max_rows))

    def _maybe_compact(self) -> None:
        snap = self._tip.snap
        if not self.auto_compact or snap.changes < self.threshold(snap.n0):
            return
        if self._compactor is not None and self._compactor.is_alive():
            return
        self._compactor = threading.Thread(target=self._compact_quietly, name="talkrec-compact", daemon=True)
        self._compactor.start()

    def _compact_quietly(self) -> None:
        try:
            self.compact()
        except Exception as e:  # noqa: BLE001 - a background compaction that fails is retried later
            log.exception("background compaction of %s failed", self.path)
            self._compact_failed = (f"background compaction failed at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                                    f"({type(e).__name__}: {e}); the writes are logged and served, and it is "
                                    "tried again after the next write")

    def compact(self) -> dict[str, Any]:
        """Fold the writes since the generation into a new generation (one at a time)."""
        with self._compact_lock:
            with self._write_lock:
                self._check_writable()
                self._durable(self._tip.seq)               # everything appended is durable
                sealed = self._tip.snap
                m0 = self._manifest
                assert m0 is not None
                if not sealed.changes:
                    return {"compacted": False, "generation": m0.generation, "items": len(sealed)}
                self._seal(m0)
            name = gen_name(gen_number(m0.generation) + 1)
            index, inputs, lexical = compacted(sealed, graph_file_of(sealed.gen, self.path), self._bm25)
            # its int8 copies (those the old one had) made here and saved with it: a follower reads them
            new_gen = Generation(name, index, inputs, lexical).warmed_like(sealed.gen)
            publish_generation(self.path, name, index, inputs, lexical, extra=new_gen.save_int8)
            for warm in self.warmers:
                warm(Snapshot.of(new_gen, self.backend), sealed)
            with self._write_lock:
                self._durable(self._tip.seq)
                snap = rebase(new_gen, sealed, self._tip.snap)
                assert self._manifest is not None
                manifest = replace(self._manifest, generation=name,
                                   logs=[n for n in self._manifest.logs if n not in m0.logs])
                write_manifest(self.path, manifest)
                self.publish(snap, manifest)
            remove_paths([self.path / m0.generation] + [self.path / n for n in m0.logs])
            self._compact_failed = None
            log.info("compacted %s into %s (%d items, %d changes folded)", self.path, name, len(sealed), sealed.changes)
            return {"compacted": True, "generation": name, "items": len(sealed), "changes": sealed.changes}

    def publish(self, snap: Snapshot, manifest: Manifest | None, log_sizes: Mapping[str, int] | None = None) -> None:
        """Make ``snap`` the tip and what reads see (a compaction, or what a follower read of
        another process's writes: ``manifest`` and the log bytes applied, ``log_sizes``)."""
        with self._write_lock if self.follows else nullcontext():
            self._manifest = manifest
            self._log_sizes.update(log_sizes or {})
            self._tip = Tip(self._tip.seq + self.follows, snap, self._log)
            with self._publish_lock:
                self._published = self._tip

    def _seal(self, m0: Manifest) -> None:
        """New writes go to a new log, named in the manifest before the first goes to it."""
        new = log_name(m0.next_log)
        new_log = wal.LogFile(self.path / new)
        manifest = replace(m0, logs=m0.logs + [new], next_log=m0.next_log + 1)
        write_manifest(self.path, manifest)
        old, self._manifest, self._log = self._log, manifest, new_log
        self._tip = Tip(self._tip.seq, self._tip.snap, new_log)
        if old is not None:                  # all durable (no group commit can still be using it)
            old.close()

    def close(self) -> None:
        """Wait for a running compaction, close the log and let other processes write."""
        if (c := self._compactor) is not None:
            c.join()
        with self._write_lock:
            if self._log is not None:
                self._log.close()
                self._log = None
                m = self._manifest                # what this store wrote: not "changed by another"
                self._log_sizes = {n: (self.path / n).stat().st_size for n in (m.logs if m else [])
                                   if (self.path / n).exists()}
            self._plock.release()
        if self.backend is not None:          # a Milvus Lite file: another process may open it now
            self.backend.close()


def _merged(tip: Snapshot, item_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """The new metadata row of ``item_id``: ``row``, plus the fields of its current row that
    ``row`` does not give (an update keeps what it does not mention)."""
    new = {k: jsonable(v) for k, v in row.items()}      # as the log stores it (JSON)
    p = tip.position(item_id)
    if p is None:
        return new
    old = tip.meta_rows([p]).iloc[0].to_dict()
    return {**{k: jsonable(v) for k, v in old.items()}, **new}


def open_store(path: Path, **storage: Any) -> tuple[SpaceFiles, SpaceStore]:
    """The files of the space at ``path`` and its store (``storage`` over ``space.json``'s
    block). A compaction in another process may remove a log after this one read the
    manifest that names it: the space is then read again."""
    for attempt in range(5):
        files = read_space(path)
        try:
            return files, SpaceStore(path, files, **{**files.config.get("storage", {}), **storage})
        except (FileNotFoundError, ManifestChanged):
            if attempt == 4 or read_manifest(path) == files.manifest:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
