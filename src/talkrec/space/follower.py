"""Following a space that another process writes: a read replica (``talkrec serve --follow``).

A server answers reads and writes in one process, so under continuous writes its reads share
the GIL, the event loop and the cores with the writes' HTTP handling, embedding and
compactions (docs/service.md). A follower is another process over the same space folder: it
loads the space read-only (``Space.load(path, follow=True)``: its writes raise
:class:`~.files.WriteError`, and it never takes the writer's ``LOCK``, cuts a log or deletes a
file) and :meth:`Follower.catch_up` applies what the writer made since, from the writer's files:

* the records appended to the manifest's logs since the last call
  (:func:`~talkrec.index.wal.read_records` from the byte where the last complete record
  ended, through the log kept open; a record still being appended is read on a later call). A record carries the fused vectors
  and the raw inputs, so nothing is embedded again;
* a new generation (a compaction), loaded from its folder. When this process had applied
  exactly the logs the compaction folded, the records it applied since are carried onto the
  new generation as the writer carries its own (:func:`~talkrec.index.compaction.rebase`),
  with the old generation's hit fields; otherwise the new generation's logs are applied from
  their start. Either way its int8 copies are those the compaction saved with it.

A follower serves a write once its record is in the log file, which may be just before the
writer's fsync returns and acknowledges it: after a power loss the writer can come back
without a write a follower served (a crash of the writer's process loses nothing: the record
is in the page cache, and the writer's restart replays it). A space whose vectors live in a
vector database (``index.backend``) is not followed here: the database serves its readers.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import numpy as np

from ..device import lower_thread_priority
from ..errors import InputError
from ..index import wal
from ..index.compaction import apply_record, rebase
from ..index.snapshot import Snapshot
from .files import Manifest, gen_number, log_number, read_generation, read_manifest

if TYPE_CHECKING:
    from .core import Space

log = logging.getLogger(__name__)

__all__ = ["Follower", "ReadsInFlight"]

T = TypeVar("T")


class _Shrunk(RuntimeError):
    """A log is shorter than what this process applied of it."""


class ReadsInFlight:
    """How many reads of a space are running in this process (a :class:`~.writer.SpaceStore`'s
    ``reads``): ``with reads:`` around one (the outermost ``Space`` read, an HTTP read request),
    true while any is. Safe from any thread (a list's append and pop are atomic)."""

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: list[None] = []

    def __enter__(self) -> "ReadsInFlight":
        self._tokens.append(None)
        return self

    def __exit__(self, *exc: object) -> None:
        self._tokens.pop()

    def __bool__(self) -> bool:
        return bool(self._tokens)


def _paced(fn: Callable[[], T], pace: float, reads: ReadsInFlight | None = None, wait: float = 0.01) -> T:
    """``fn()`` on this thread, making way for the process's reads at each Python or C function
    call (a profile hook on this thread only): while a read is in flight (``reads``) it sleeps,
    for at most ``wait`` seconds at a stretch, after which it runs ``pace`` seconds whatever
    runs (reads back to back never stop it); with none in flight it hands the GIL over for
    0.5 ms after every ``pace`` seconds of running (a read that starts needs the GIL to say so).
    A follower's load of a generation shares no lock with the reads, only the GIL: a read that
    released it for a moment (a numpy product, the query encoder) found the load holding it
    for up to ``pace`` each time, and the reads in a load's 0.3 s took 2-5x their time
    (docs/service.md). ``wait`` 0: only the hand-over every ``pace``; ``pace`` <= 0: no hook."""
    if pace <= 0:
        return fn()
    last, until = time.perf_counter(), 0.0

    def hook(frame: Any, event: str, arg: Any) -> None:
        nonlocal last, until
        if event != "call" and event != "c_call":
            return
        now = time.perf_counter()
        if now < until:
            return
        if wait > 0 and reads:
            start = now
            while reads and now - start < wait:
                time.sleep(0.0005)
                now = time.perf_counter()
            if reads:                      # waited long enough: run a while
                until = now + pace
            last = now
        elif now - last > pace:
            time.sleep(0.0005)
            last = time.perf_counter()
    sys.setprofile(hook)
    try:
        return fn()
    finally:
        sys.setprofile(None)


def _applied(snap: Snapshot, scan: wal.LogScan) -> tuple[Snapshot, int]:
    """``snap`` with the records of ``scan`` applied, and how many."""
    for payload in scan.payloads:
        snap = apply_record(snap, wal.decode(payload))
    return snap, len(scan.payloads)


class Follower:
    """Keep ``space`` (loaded with ``Space.load(path, follow=True)``) up to date with what the
    process that writes its folder writes: :meth:`catch_up` once, or :meth:`start` a thread
    that calls it every ``interval`` seconds (what a write takes to reach this process's reads
    is about that, plus the generation's load after a compaction: docs/service.md), at
    scheduling priority ``nice`` below the process's (reads first when the cores are busy),
    its loads of a generation waiting while this process's reads are in flight (at most
    ``read_wait`` seconds at a stretch, then running ``pace`` seconds) and handing the GIL
    over every ``pace`` seconds when none is (:func:`_paced`).
    ``freeze``: after each load, ``gc.freeze()`` what is alive in the process (what a server does
    with what it loaded at start, ``talkrec serve --follow``; off by default: it is the whole
    process's collector)."""

    def __init__(self, space: "Space", *, interval: float = 0.05, nice: int = 10, pace: float = 0.002,
                 read_wait: float = 0.01, freeze: bool = False) -> None:
        if not getattr(space.store, "follows", False):
            raise InputError("a Space followed here is loaded read-only: Space.load(path, follow=True)", field="follow")
        if space.store.backend is not None:
            raise InputError("this space keeps its vectors in a vector database (index.backend): read them there; "
                             "a follower reads the space's own files", field="index.backend")
        if not interval > 0:
            raise InputError(f"the follow interval must be a positive number of seconds, not {interval!r}",
                             field="interval")
        if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
            raise InputError(f"the follower's nice must be an integer in [0, 19], not {nice!r}", field="nice")
        for name, v in (("pace", pace), ("read_wait", read_wait)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise InputError(f"the follower's {name} must be a number of seconds >= 0, not {v!r}", field=name)
        self.space, self.interval, self.nice, self.pace = space, float(interval), nice, float(pace)
        self.read_wait, self.freeze = float(read_wait), bool(freeze)
        self.path = Path(space.path)
        self._ann = bool(space.config.get("index", {}).get("ann", False))
        self._sizes: dict[str, int] = dict(space.store.log_sizes)   # bytes of each log applied
        self._sealed: dict[str, Snapshot] = {}    # a complete log -> the snapshot once all of it was applied
        self._open: dict[str, BinaryIO] = {}      # the logs read, kept open
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records = 0                          # log records applied
        self.generations = 0                      # generations loaded
        self.caught_up_at = time.time()           # the end of the last successful catch_up
        self.error: str | None = None             # why the last one failed (the thread retries)
        self.last_switch = ""                     # how the last generation was taken on
        self.last_load_s = 0.0                    # and how long that took
        self.recent_loads: deque[tuple[float, float]] = deque(maxlen=16)   # (started, Unix time; seconds)

    # ------------------------------------------------------------------ catching up
    def catch_up(self) -> int:
        """Apply what the writer wrote since the last call and publish it to this process's
        reads; returns the log records applied (with a new generation, those on top of it)."""
        with self._lock:
            store = self.space.store
            m = read_manifest(self.path)
            if m is None and store.manifest is not None:
                raise RuntimeError(f"{self.path / 'MANIFEST.json'} is gone (the space was deleted or moved): this "
                                   "process serves what it applied last")
            if m is None:                 # a legacy space: its first write makes the manifest
                n = 0
            elif store.manifest is not None and m.space_id != store.manifest.space_id:
                raise RuntimeError(f"{self.path} was built again (another space_id in MANIFEST.json): this process "
                                   "serves the space it loaded; start it again to serve the new one")
            else:
                try:
                    n = self._advance(m)
                except _Shrunk as e:      # a log was cut back under what this process applied: start over
                    log.warning("%s; loading generation %s and its logs again", e, m.generation)
                    self._sizes, self._sealed = {}, {}
                    self._close_files()
                    n = self._switch(m, None)
            self.records += n
            self.caught_up_at = time.time()
            return n

    def _advance(self, m: Manifest) -> int:
        """:meth:`catch_up` to manifest ``m``: the records appended to its logs, or its new generation."""
        store = self.space.store
        if store.manifest is None or m.generation != store.manifest.generation:
            return self._switch(m, store.manifest)
        snap, n = self._tail(m, store.snapshot)
        if n or m != store.manifest:
            store.publish(snap, m, self._sizes)
        return n

    def _tail(self, m: Manifest, snap: Snapshot) -> tuple[Snapshot, int]:
        """``snap`` with the complete records of ``m``'s logs past the bytes applied so far.

        When one fails (a log that cannot be read, a record that does not decode), the whole
        records applied before it are published with ``m`` before the error is raised: a
        snapshot's appended rows are shared with those made from it, so an applied record that
        is not published would leave every later catch-up refusing to write on an old snapshot
        (or, counted as read, skipped for good)."""
        n, sizes, store = 0, dict(self._sizes), self.space.store
        try:
            for i, name in enumerate(m.logs):
                try:
                    scan = self._scan(name, sizes.get(name, 0))
                except FileNotFoundError:     # compacted and removed meanwhile: the next call loads the generation
                    break
                pos = sizes.get(name, 0)
                for payload in scan.payloads:
                    snap = apply_record(snap, wal.decode(payload))
                    n, pos = n + 1, pos + wal.HEADER_BYTES + len(payload)
                    sizes[name] = pos
                sizes[name] = scan.valid_bytes
                if i < len(m.logs) - 1 and scan.problem is None:   # a later log exists: this one is complete
                    self._sealed.setdefault(name, snap)
        except Exception:
            if snap is not store.snapshot:
                self._sizes = sizes
                store.publish(snap, m, sizes)
                self.records += n
            raise
        self._sizes = sizes
        return snap, n

    def _scan(self, name: str, start: int | None = None) -> wal.LogScan:
        """The records of log ``name`` past byte ``start`` (default: the bytes applied so far;
        ``_Shrunk``: it is shorter, or the file was replaced by another one of its name)."""
        f, start = self._file(name), self._sizes.get(name, 0) if start is None else start
        st = os.fstat(f.fileno())
        size = st.st_size
        try:
            now = os.stat(self.path / name)
        except FileNotFoundError:        # removed after a compaction: read what is left through the open file
            now = st
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
            raise _Shrunk(f"{self.path / name} was replaced by another file (repaired or restored?)")
        if size < start:
            raise _Shrunk(f"{self.path / name} is shorter ({size} bytes) than what this process read of it ({start})")
        return wal.read_records(f, start) if size > start else wal.LogScan([], start, size)

    def _switch(self, m: Manifest, cur: Manifest | None) -> int:
        """Serve ``m``'s generation: the compaction of what this process had, with the records
        applied since carried over, or loaded and its logs applied from their start.

        The cyclic garbage collector is paused meanwhile, and with ``freeze`` what is alive
        afterwards is frozen: the ~100k objects of a generation's metadata set off collections
        that walk every young object while this process's reads wait for the GIL (the Last.fm
        space: the load 0.33 -> 0.27 s, its longest hold of the GIL 42 -> 23 ms,
        docs/service.md). Objects of an old generation are still freed when the last read using
        them ends (reference counts). The load is paced (:func:`_paced`)."""
        paused, t0, started = gc.isenabled(), time.perf_counter(), time.time()
        gc.disable()
        try:
            n = _paced(lambda: self._load(m, cur), self.pace, self.space.store.reads, self.read_wait)
        finally:
            if self.freeze:
                gc.freeze()
            if paused:
                gc.enable()
        if n is None:                     # replaced again meanwhile: the next call reads the manifest again
            return 0
        self.last_load_s = round(time.perf_counter() - t0, 3)
        self.recent_loads.append((round(started, 3), self.last_load_s))
        log.info("%s: following generation %s (%s; %.2f s)", self.path, m.generation, self.last_switch, self.last_load_s)
        return n

    def _load(self, m: Manifest, cur: Manifest | None) -> int | None:
        """:meth:`_switch` without its pacing; ``None`` when ``m``'s generation is gone already."""
        store = self.space.store
        try:
            gen = read_generation(self.path / m.generation, ann=self._ann)
        except FileNotFoundError:
            return None
        old = store.snapshot
        gen.warmed_like(old.gen)
        folded = [x for x in (cur.logs if cur is not None else []) if x not in m.logs]
        # the compaction of exactly ``folded``: one generation on, and no log between them it never saw
        one_on = bool(folded and m.logs) and cur is not None and gen_number(m.generation) == \
            gen_number(cur.generation) + 1 and log_number(folded[-1]) + 1 == log_number(m.logs[0])
        sealed, n = self._sealed.get(folded[-1]) if one_on else None, 0
        if sealed is None and one_on and cur is not None and folded == list(cur.logs):
            sealed, n = self._finish(folded, old)        # it applied no later log: read the folded ones to their end
            old = sealed if sealed is not None else old
        if sealed is not None and not np.array_equal(gen.index.ids, sealed.ids):
            sealed = None                 # not the compaction of those logs as this process applied them
        for warm in store.warmers:
            warm(Snapshot.of(gen, store.backend), sealed)
        if sealed is not None:
            snap = rebase(gen, sealed, old)
            self._sizes = {x: s for x, s in self._sizes.items() if x in m.logs}
        else:
            snap, self._sizes = Snapshot.of(gen, store.backend), {}
        self._sealed = {x: s for x, s in self._sealed.items() if x in m.logs}
        self._close_files(keep=m.logs)
        snap, more = self._tail(m, snap)
        store.publish(snap, m, self._sizes)
        self.generations += 1
        self.last_switch = "the writes applied before carried over" if sealed is not None else "its logs applied"
        return n + more

    def _finish(self, names: list[str], snap: Snapshot) -> tuple[Snapshot | None, int]:
        """``snap`` with the rest of the (complete) logs ``names`` applied, or ``None`` where one
        is gone (the compaction removed it) or does not end with a whole record."""
        n = 0
        for name in names:
            try:
                scan = self._scan(name)
            except (FileNotFoundError, _Shrunk):   # removed before this process opened it, or cut
                return None, 0
            if scan.problem is not None:
                return None, 0
            snap, k = _applied(snap, scan)
            n += k
        return snap, n

    def _file(self, name: str) -> BinaryIO:
        """Log ``name``, opened once and kept open (read-only) while the manifest names it: a log
        the writer removes after compacting it is still read to its end through it."""
        f = self._open.get(name)
        if f is None:
            f = self._open[name] = open(self.path / name, "rb")  # noqa: SIM115 - closed by _close_files
        return f

    def _close_files(self, keep: Sequence[str] = ()) -> None:
        for name in [x for x in self._open if x not in keep]:
            self._open.pop(name).close()

    # ------------------------------------------------------------------ the thread
    def start(self) -> "Follower":
        """Catch up every ``interval`` seconds on a thread of its own until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="talkrec-follow", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while not self._stop.wait(self.interval):
            try:
                self.catch_up()
                self.error = None
            except Exception as e:  # noqa: BLE001 - logged once, retried on the next tick
                msg = f"{type(e).__name__}: {e}"
                if msg != self.error:
                    log.exception("following %s failed (retried every %.2f s)", self.path, self.interval)
                self.error = msg

    def stop(self) -> None:
        """Stop the thread (when started) and close the logs kept open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._close_files()

    def status(self) -> dict[str, Any]:
        """What the health endpoint reports: the generation served, the records and generations
        applied, the seconds the last generation took to load, when the last 16 loads started
        and what each took, the seconds since the last successful catch-up, and the last error."""
        m = self.space.store.manifest
        return {"generation": m.generation if m is not None else None, "records_applied": self.records,
                "generations_loaded": self.generations, "last_load_s": self.last_load_s,
                "recent_loads": [list(x) for x in list(self.recent_loads)],   # copied in one call: the thread appends
                "behind_s": round(time.time() - self.caught_up_at, 3),
                "error": self.error}
