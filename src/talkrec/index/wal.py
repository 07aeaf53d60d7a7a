"""The write-ahead log of a space: append-only binary records, one per write call.

A record is ``[u32 length][u32 crc32][payload]`` (little-endian; the CRC covers the payload).
The payload is ``[u32 header length][header JSON][array bytes]``: the header names the
operation (``upsert`` / ``delete``), the item ids, the metadata rows (upserts) and the
arrays (dtype, shape) whose bytes follow in order: the fused ``vectors`` and the raw
modality inputs ``input:<key>``. No pickles.

:class:`LogFile` appends a record with one ``write`` and makes it durable with ``fsync``;
:class:`GroupCommit` lets writers that arrive while an fsync runs share the next one (a
leader/follower queue), so throughput is not bounded by one fsync per write.
:func:`read_log` returns the valid records of a file and where a torn or corrupt tail
starts (a write that was never acknowledged: it is truncated with a warning on load). A bad
record that complete records follow is no torn tail but damage to acknowledged writes:
:class:`CorruptLog` is raised (nothing is cut); :func:`salvage` reads around it.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._atomic import fsync_dir
from ..errors import TalkrecError

__all__ = ["CorruptLog", "GroupCommit", "LogFile", "LogRecord", "decode", "encode_delete", "encode_upsert", "frame",
           "read_log", "read_records", "salvage"]

_HEAD = struct.Struct("<II")
#: the bytes before a record's payload (its length and checksum)
HEADER_BYTES = _HEAD.size
_U32 = struct.Struct("<I")
#: a length above this is corruption, not a record
MAX_RECORD_BYTES = 1 << 30
#: the shortest payload (its u32 header length and ``{}``): a shorter one (8 zero bytes, as a
#: file extended but never written reads after a power loss) is corruption, not a record
MIN_PAYLOAD_BYTES = 6
#: how every payload's header starts (``_pack``): where a record may start after a corrupt one
_MARK = b'{"op":"'


class CorruptLog(TalkrecError, ValueError):
    """A record of a log is corrupt and complete records follow it: writes that were
    acknowledged, not a torn tail. Nothing may be cut; ``talkrec doctor SPACE --repair``
    drops the corrupt bytes only (:func:`salvage`). ``at``: where the bad bytes start,
    ``resume``: where the next complete record starts."""

    def __init__(self, message: str, *, at: int, resume: int) -> None:
        super().__init__(message)
        self.at, self.resume = at, resume


@dataclass
class LogRecord:
    """One logged write: ``op`` ``"upsert"`` (ids, fused vectors, metadata rows, raw inputs
    per input key) or ``"delete"`` (ids only)."""

    op: str
    ids: list[str]
    vectors: np.ndarray | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


def _pack(header: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]]) -> bytes:
    header = {**header, "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays]}
    h = json.dumps(header, ensure_ascii=False, allow_nan=True, separators=(",", ":"), default=str).encode("utf-8")
    return b"".join([_U32.pack(len(h)), h] + [np.ascontiguousarray(a).tobytes() for _, a in arrays])


def encode_upsert(ids: Sequence[str], vectors: np.ndarray, meta: Sequence[Mapping[str, Any]],
                  inputs: Mapping[str, np.ndarray]) -> bytes:
    """The payload of an upsert (metadata values must be JSON-able: str, numbers, bools,
    None, lists of those)."""
    arrays = [("vectors", np.asarray(vectors, dtype=np.float32))]
    arrays += [(f"input:{k}", np.asarray(v, dtype=np.float32)) for k, v in inputs.items()]
    return _pack({"op": "upsert", "ids": list(ids), "meta": [dict(m) for m in meta]}, arrays)


def encode_delete(ids: Sequence[str]) -> bytes:
    return _pack({"op": "delete", "ids": list(ids)}, [])


def decode(payload: bytes) -> LogRecord:
    """A payload back into a :class:`LogRecord` (``ValueError`` when it is malformed)."""
    try:
        return _decode(payload)
    except (struct.error, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed log record ({type(e).__name__}: {e})") from None


def _decode(payload: bytes) -> LogRecord:
    (hlen,) = _U32.unpack_from(payload, 0)
    if 4 + hlen > len(payload):
        raise ValueError("record header runs past the payload")
    header = json.loads(payload[4:4 + hlen].decode("utf-8"))
    off = 4 + hlen
    arrays: dict[str, np.ndarray] = {}
    for spec in header.get("arrays", []):
        dt = np.dtype(spec["dtype"])
        shape = tuple(int(x) for x in spec["shape"])
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if off + n > len(payload):
            raise ValueError("record arrays run past the payload")
        arrays[spec["name"]] = np.frombuffer(payload, dtype=dt, count=n // dt.itemsize, offset=off).reshape(shape).copy()
        off += n
    if header.get("op") not in ("upsert", "delete"):
        raise ValueError(f"unknown log operation {header.get('op')!r}")
    inputs = {k[len("input:"):]: v for k, v in arrays.items() if k.startswith("input:")}
    return LogRecord(header["op"], [str(i) for i in header["ids"]], arrays.get("vectors"), header.get("meta", []), inputs)


def frame(payload: bytes) -> bytes:
    """``[length][crc32][payload]``."""
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass
class LogScan:
    """What :func:`read_log` found: the valid ``payloads`` in order, the byte offset where
    they end (``valid_bytes``), the file's size, and why the rest is invalid (``problem``)."""

    payloads: list[bytes]
    valid_bytes: int
    size: int
    problem: str | None = None


def read_log(path: str | os.PathLike[str]) -> LogScan:
    """Read the records of a log file up to the first torn or corrupt one."""
    with open(path, "rb") as f:
        return read_records(f)


def read_records(f: BinaryIO, start: int = 0) -> LogScan:
    """:func:`read_log` of an open log file from byte ``start`` (the end of a record read
    before; ``valid_bytes`` and ``size`` count from the file's start): a follower keeps its
    logs open, so one the writer removes after a compaction can still be read to its end.
    :class:`CorruptLog` when complete records follow a bad one (see :func:`salvage`)."""
    f.seek(start)
    data = f.read()
    out, off, problem = _frames(data, 0)
    if problem is not None:
        resume = _next_frame(data, off)
        if resume is not None:
            more, _, _ = _frames(data, resume)
            name = getattr(f, "name", "the log")
            raise CorruptLog(f"{name}: {problem % (start + off)}, but {len(more)} complete record(s) follow it from "
                             f"byte {start + resume}: writes that were acknowledged, not a torn tail, so nothing was "
                             "cut; `talkrec doctor SPACE --repair` drops only the corrupt bytes",
                             at=start + off, resume=start + resume)
        return LogScan(out, start + off, start + len(data), problem % (start + off))
    return LogScan(out, start + off, start + len(data))


def _frames(data: bytes, off: int) -> tuple[list[bytes], int, str | None]:
    """The complete records of ``data`` from ``off``: their payloads, where they end, and why
    the bytes there are no record (a ``%d`` for the byte offset; ``None`` at the end)."""
    out, end = [], len(data)
    while off < end:
        if end - off < _HEAD.size:
            return out, off, "torn record header at byte %d"
        n, crc = _HEAD.unpack_from(data, off)
        if n < MIN_PAYLOAD_BYTES or n > MAX_RECORD_BYTES or off + _HEAD.size + n > end:
            return out, off, f"torn or corrupt record at byte %d (length {n})"
        payload = data[off + _HEAD.size: off + _HEAD.size + n]
        if zlib.crc32(payload) != crc:
            return out, off, "checksum mismatch in the record at byte %d"
        out.append(payload)
        off += _HEAD.size + n
    return out, off, None


def _next_frame(data: bytes, off: int) -> int | None:
    """Where the first complete record after byte ``off`` of ``data`` starts (``None``: none
    does, the bad bytes are a torn tail). A payload's header starts with ``{"op":"`` 4 bytes
    in, so only those places are checked (a length or checksum that was hit is passed over)."""
    q = data.find(_MARK, off + _HEAD.size + _U32.size + 1)
    while q >= 0:
        p = q - _HEAD.size - _U32.size
        n, crc = _HEAD.unpack_from(data, p)
        body = data[p + _HEAD.size:p + _HEAD.size + n]
        if MIN_PAYLOAD_BYTES <= n == len(body) and zlib.crc32(body) == crc:
            return p
        q = data.find(_MARK, q + 1)
    return None


@dataclass
class Salvage:
    """What :func:`salvage` kept of a log: the complete records, in order, and the byte
    ranges ``[a, b)`` left out (corrupt bytes between records; a torn tail last)."""

    payloads: list[bytes]
    dropped: list[tuple[int, int]]
    size: int


def salvage(path: str | os.PathLike[str]) -> Salvage:
    """Every complete record of a log, reading on past corrupt bytes to the next complete
    record (what ``talkrec doctor --repair`` keeps of a log damaged in the middle)."""
    data = Path(path).read_bytes()
    kept: list[bytes] = []
    dropped: list[tuple[int, int]] = []
    off = 0
    while True:
        out, off, problem = _frames(data, off)
        kept += out
        if problem is None:
            return Salvage(kept, dropped, len(data))
        resume = _next_frame(data, off)
        dropped.append((off, len(data) if resume is None else resume))
        if resume is None:
            return Salvage(kept, dropped, len(data))
        off = resume


def truncate_log(path: str | os.PathLike[str], size: int) -> None:
    """Cut a log file to ``size`` bytes (its valid records) and make that durable."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


class LogFile:
    """An open log file records are appended to (``O_APPEND``; one ``write`` per record)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            os.fsync(self._fd)
            fsync_dir(self.path.parent)
        self.size = os.fstat(self._fd).st_size

    def append(self, record: bytes) -> int:
        """Write one framed record; returns the file size after it. On a failure the file is
        cut back to where it was (and the error raised)."""
        start = self.size
        try:
            view = memoryview(record)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except BaseException:
            os.ftruncate(self._fd, start)
            raise
        self.size = start + len(record)
        return self.size

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = size

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


class GroupCommit:
    """Durability for numbered writes, one fsync for many.

    Writers call :meth:`wait` with the sequence number of their appended write. The first
    one to find no fsync running becomes the leader: it takes ``pending()`` (the newest
    appended write: an object with a ``seq``), calls ``sync`` on it and wakes everyone it
    covered; writers that arrived meanwhile wait and share the leader's next fsync. When
    ``sync`` raises, every write it covered fails with that exception (an fsync error
    leaves the file in an unknown state: it is not retried)."""

    def __init__(self, pending: Callable[[], Any], sync: Callable[[Any], None]) -> None:
        self._pending, self._sync = pending, sync
        self._cond = threading.Condition()
        self._durable = 0
        self._running = False
        self._error: BaseException | None = None
        self._error_upto = 0

    @property
    def durable(self) -> int:
        return self._durable

    def wait(self, seq: int) -> None:
        """Return once write ``seq`` is durable; raise what the fsync covering it raised."""
        with self._cond:
            while True:
                if self._error is not None and seq <= self._error_upto:
                    raise self._error
                if seq <= self._durable:
                    return
                if not self._running:
                    self._running = True
                    break
                self._cond.wait()
        target = self._pending()
        error: BaseException | None = None
        try:
            self._sync(target)
        except BaseException as e:  # noqa: BLE001 - handed to every write it covered
            error = e
        with self._cond:
            self._running = False
            if error is None:
                self._durable = max(self._durable, int(target.seq))
            else:
                self._error, self._error_upto = error, max(self._error_upto, int(target.seq))
            self._cond.notify_all()
        if error is not None:
            raise error
