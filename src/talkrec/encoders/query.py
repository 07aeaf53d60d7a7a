"""Query encoding that is safe from many threads, cached and micro-batched.

:class:`QueryEncoder` wraps a text encoder (:class:`~talkrec.encoders.text.TextEncoder`):

* one ``encode`` runs at a time (Hugging Face fast tokenizers are not safe to call from
  several threads: "Already borrowed");
* an LRU cache of query vectors (results-as-you-type re-send the same prefixes);
* micro-batching: queries that arrive while an encode runs are encoded together in the
  next one (one forward pass for many concurrent searches); so are passages (the item
  descriptions of concurrent writes), unless ``workers > 1`` encodes them side by side;
  with ``lanes > 1`` (an encoder whose calls may run in parallel) that many batches are
  encoded at once, so a batch forms while another runs instead of waiting for it. A thread
  whose text a pass has encoded returns at once; only a thread whose text nobody has taken
  waits for a lane (every thread progresses, however many search in a loop).

Single query texts (``encode(text, kind="query")``) are cached and batched; passages
(``encode(text or [texts], kind="passage")``) are batched, not cached; anything else is
passed through, one lane each.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..device import lower_thread_priority
from ..errors import InputError
from ..estimator import Interval, check_param

__all__ = ["QueryEncoder"]


class _Pending:
    __slots__ = ("texts", "kind", "value", "error", "taken", "done")

    def __init__(self, texts: list[str], kind: str) -> None:
        self.texts, self.kind = texts, kind
        self.value: np.ndarray | None = None          # one row per text
        self.error: BaseException | None = None
        self.taken = False                            # in a pass (running or done)
        self.done = False                             # value or error is set


class QueryEncoder:
    """A thread-safe, caching, micro-batching front of a text encoder.

    Parameters
    ----------
    encoder:
        The wrapped encoder: ``encode(text | [texts], kind=...)`` as
        :class:`~talkrec.encoders.text.TextEncoder`.
    cache_size:
        Query vectors kept (least recently used dropped first); 0 keeps none.
    max_batch:
        At most this many waiting queries go into one forward pass.
    nice:
        ``> 0``: run the wrapped encoder on one thread of its own whose scheduling priority
        is lowered by this much (Linux ``setpriority`` on the thread), so that its forward
        passes yield the CPU to other threads - a space's write path encodes descriptions
        this way, and reads do not queue behind them for a core. ``0``: on the caller's thread.
    workers:
        ``> 1``: passages are not batched but encoded up to this many at a time, each in its
        own call (on as many low-priority threads when ``nice > 0``). For an encoder whose
        calls run in parallel (``parallel_safe``: ONNX Runtime, one thread per call) this is
        what serves concurrent single-item writes fastest: padding a batch of descriptions
        of different lengths costs more than it saves (docs/service.md).
    lanes:
        Forward passes of queued texts that may run at once (each takes what is queued when
        it starts). Only for an encoder whose calls run in parallel (``parallel_safe``); 1
        keeps one pass at a time. Two passes on a two-thread ONNX Runtime session serve
        concurrent queries ~20% faster than one (docs/service.md); a lone query runs as with 1.
    """

    def __init__(self, encoder: Any, *, cache_size: int = 1024, max_batch: int = 32, nice: int = 0,
                 workers: int = 1, lanes: int = 1) -> None:
        for name, value, low, high in (("cache_size", cache_size, 0, None), ("max_batch", max_batch, 1, None),
                                       ("nice", nice, 0, 19), ("workers", workers, 1, None), ("lanes", lanes, 1, None)):
            check_param(name, value, Interval(int, low, high))
        if lanes > 1 and not getattr(encoder, "parallel_safe", False):
            raise InputError(f"lanes={lanes} needs an encoder whose calls may run in parallel "
                             f"({type(encoder).__name__} is not parallel_safe)", field="lanes")
        self.encoder = encoder
        self.cache_size = cache_size
        self.max_batch = max_batch
        self.nice = nice
        self.workers = workers
        self.lanes = lanes
        self._slots = threading.Semaphore(workers)
        self._pool: Any = None
        # guards the queue, the cache and the count of passes running; notified when a pass ends
        self._cond = threading.Condition()
        self._running = 0
        self._queue: list[_Pending] = []
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def modality(self) -> str:
        return str(self.encoder.modality)

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def config(self) -> dict[str, Any]:
        return dict(self.encoder.config())

    def encode(self, inputs: Any, **kw: Any) -> np.ndarray:
        """Like the wrapped encoder's ``encode``: one text -> vector, a list -> matrix."""
        kind = kw.get("kind")
        passages = kind == "passage" and (isinstance(inputs, str) or (
            isinstance(inputs, list) and 0 < len(inputs) <= self.max_batch and all(isinstance(t, str) for t in inputs)))
        if not (set(kw) <= {"kind"} and (passages or (isinstance(inputs, str) and kind == "query"))):
            with self._cond:
                self._cond.wait_for(lambda: self._running < self.lanes)
                self._running += 1
            try:
                return self._run(inputs, **kw)
            finally:
                with self._cond:
                    self._free_lane()
        if passages and self.workers > 1:           # side by side, each its own call (nothing shared to copy)
            with self._slots:
                return self._run(inputs, **kw)
        with self._cond:
            if kind == "query":
                hit = self._cache.get(inputs)
                if hit is not None:
                    self._cache.move_to_end(inputs)
                    return hit.copy()
            mine = _Pending([inputs] if isinstance(inputs, str) else list(inputs), str(kind))
            self._queue.append(mine)
            # done (another pass took it), or a lane free while nobody has taken it: then this
            # thread encodes everything queued so far. A thread whose text is encoded returns
            # at once: it never waits for a lane (a semaphore here let the two threads that
            # freed the lanes take them again and again while six waited, each in a batch of one)
            self._cond.wait_for(lambda: mine.done or (not mine.taken and self._running < self.lanes))
            batch = None if mine.done else self._take(mine)
        if batch is not None:
            self._encode_batch(batch)
        if mine.error is not None:
            raise mine.error
        if mine.value is None:  # pragma: no cover - _encode_batch always sets one of the two
            raise RuntimeError("text was not encoded")
        return mine.value[0].copy() if isinstance(inputs, str) else mine.value.copy()

    def _take(self, mine: _Pending) -> list[_Pending]:
        """``mine`` and the queued texts of its kind (up to ``max_batch`` texts in all), out of
        the queue, for a pass this thread runs (``_cond`` held)."""
        batch, n = [mine], len(mine.texts)
        for p in self._queue:
            if p is not mine and p.kind == mine.kind and n + len(p.texts) <= self.max_batch:
                batch.append(p)
                n += len(p.texts)
        for p in batch:
            p.taken = True
        self._queue = [p for p in self._queue if not p.taken]
        self._running += 1
        return batch

    def _encode_batch(self, batch: list[_Pending]) -> None:
        """One call of the wrapped encoder on ``batch``'s texts; every waiter gets its rows or
        the error."""
        V: np.ndarray | None = None
        err: BaseException | None = None
        try:
            V = np.atleast_2d(self._run([t for p in batch for t in p.texts], kind=batch[0].kind))
        except BaseException as e:  # noqa: BLE001 - handed to every waiter
            err = e
        self._pass_ended(batch, V, err)

    def _pass_ended(self, batch: list[_Pending], V: np.ndarray | None, err: BaseException | None) -> None:
        """Hand a pass's rows (or its error) to its texts, cache the queries, free the lane."""
        with self._cond:
            at = 0
            for p in batch:
                if V is None:
                    p.error = err
                else:
                    p.value, at = V[at:at + len(p.texts)], at + len(p.texts)
                    if self.cache_size and p.kind == "query":
                        self._cache[p.texts[0]] = p.value[0]
                        self._cache.move_to_end(p.texts[0])
                p.done = True
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            self._free_lane()

    def _free_lane(self) -> None:
        """A pass has ended (``_cond`` held): its lane is free, and every waiter looks again."""
        self._running -= 1
        self._cond.notify_all()

    def _run(self, inputs: Any, **kw: Any) -> np.ndarray:
        """The wrapped encoder's ``encode`` - on the low-priority thread when ``nice > 0``."""
        if not self.nice:
            return self.encoder.encode(inputs, **kw)  # type: ignore[no-any-return]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="talkrec-write-encoder",
                                            initializer=lower_thread_priority, initargs=(self.nice,))
        return self._pool.submit(self.encoder.encode, inputs, **kw).result()  # type: ignore[no-any-return]
