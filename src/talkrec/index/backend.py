"""Where a space's fused kNN runs: the embedded index (the default) or a vector database.

The ``index`` block of a build config (copied into ``space.json``) chooses::

    index: {ann: false}                           # embedded: exact (or HNSW with ann: true)
    index: {backend: milvus, uri: items.db}       # Milvus Lite, a local folder
    index: {backend: milvus, uri: "http://host:19530", collection: talkrec_music}

A :class:`VectorBackend` mirrors the live items of a space (fused vector + filterable
metadata) and answers its kNN; the space keeps its own files (vectors, descriptions, raw
inputs, BM25, the write-ahead log) as the record of truth, so a backend can always be
filled again from them. :class:`~talkrec.index.snapshot.Snapshot` sends its searches to the
backend and applies there what the backend cannot (liveness in the snapshot, exclusions,
filter clauses it cannot express); :class:`~talkrec.space.writer.SpaceStore` mirrors every
logged write to it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import InputError
from .filters import Where
from .wal import LogRecord

__all__ = ["BACKENDS", "VectorBackend", "backend_name", "embedded_params", "mirror", "open_backend", "reapply"]

BACKENDS = ("embedded", "milvus")
#: settings of the embedded index (:class:`~talkrec.index.store.VectorIndex`)
EMBEDDED_KEYS = ("ann", "M", "ef_construction", "ef_search")


class VectorBackend(Protocol):
    """A vector store that holds a space's live items."""

    #: the most results one :meth:`knn` call may ask for
    max_fetch: int
    #: a filter that leaves at most this many live items is sent as a list of ids
    #: (:meth:`ids_filter`), which a store answers from its key index
    max_id_filter: int
    #: whether :meth:`knn` is exact (an approximate index may return fewer than asked
    #: although more items pass the filter)
    exact: bool

    def filter_expr(self, where: Where, columns: Sequence[str]) -> tuple[str, bool]:
        """The store's filter for ``where`` over a space with metadata ``columns``, and
        whether it is the whole filter (``False``: some clauses must be applied by the caller)."""

    def ids_filter(self, ids: Sequence[str]) -> str | None:
        """The store's filter that passes exactly ``ids`` (``None``: it cannot say so)."""

    def knn(self, q: np.ndarray, limit: int, expr: str) -> list[tuple[str, float]]:
        """Up to ``limit`` ``(item_id, cosine)`` pairs nearest the unit vector ``q`` among
        the items that pass ``expr``, best first."""

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, meta: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace items (whole rows: ``meta`` holds every field of each)."""

    def delete(self, ids: Sequence[str]) -> None:
        """Remove items (unknown ids are skipped)."""

    def count(self) -> int:
        """How many items the store holds."""

    def close(self) -> None:
        """Release connections (the next call opens them again)."""


def backend_name(index: Mapping[str, Any]) -> str:
    """The backend an ``index`` block names (``embedded`` when it names none)."""
    name = str(index.get("backend") or "embedded").lower()
    if name not in BACKENDS:
        raise InputError(f"unknown index backend {index.get('backend')!r}; expected one of {', '.join(BACKENDS)}",
                         field="index.backend")
    return name


def embedded_params(index: Mapping[str, Any]) -> dict[str, Any]:
    """The embedded index's settings of an ``index`` block (whatever its backend: the space
    keeps its own index files either way)."""
    return {k: v for k, v in index.items() if k in EMBEDDED_KEYS}


def open_backend(index: Mapping[str, Any]) -> VectorBackend | None:
    """The backend of a built space's ``index`` block, connected (``None``: embedded).

    A database that does not answer, or lacks the collection, raises :class:`InputError`
    naming ``index.uri`` / ``index.collection``."""
    if backend_name(index) == "embedded":
        return None
    from .milvus import MilvusBackend, MilvusSettings
    return MilvusBackend.open(MilvusSettings.from_config(index))


def mirror(backend: VectorBackend, rec: LogRecord) -> None:
    """Apply one logged write to ``backend``."""
    if rec.op == "delete":
        backend.delete(rec.ids)
    elif rec.vectors is not None:
        backend.upsert(rec.ids, rec.vectors, rec.meta)


def reapply(backend: VectorBackend, records: Sequence[LogRecord]) -> str | None:
    """Apply logged writes to ``backend`` again, in order (upserts and deletes are
    idempotent); what went wrong, in words, or ``None``."""
    try:
        for rec in records:
            mirror(backend, rec)
    except Exception as e:  # noqa: BLE001 - the space still loads; a later load tries again
        return f"the vector database did not take the logged writes again ({type(e).__name__}: {e})"
    return None
