"""The embedded vector store: item vectors + metadata, exact (and optional HNSW) kNN with
filters, upserts, atomic persistence. No server.

Exact search is a matrix-vector product and :func:`talkrec.ranking.top_k` (STACK.md: 2-4 ms at 100k
items, 33 ms at 1M). ``ann=True`` adds an hnswlib HNSW graph for large catalogs; filtered
queries on it over-fetch and fall back to exact search when the filter is narrow. The graph
is saved with the index (``hnsw.bin``) so no process rebuilds it; a graph label maps to a row
(``hnsw_labels.npy``, when compaction carried a graph over instead of rebuilding it).

A space serves a :class:`VectorIndex` as the immutable base of its current generation
(:mod:`talkrec.index.snapshot` puts the writes since on top); hnswlib is not safe when one
thread searches a graph while another inserts into it, so a served graph is never changed.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_dir
from ..errors import InputError, TalkrecError
from ..limits import check_page
from ..ranking import top_k
from .filters import FilterEngine, Where

log = logging.getLogger(__name__)

GRAPH_FILE, LABELS_FILE = "hnsw.bin", "hnsw_labels.npy"


def l2_normalize(X: np.ndarray, *, unless_unit: bool = False) -> np.ndarray:
    """Rows (or a vector) of ``X`` scaled to length 1, float32. ``unless_unit``: rows of length
    1 already (within 1e-4) kept bit for bit: normalizing a unit row again changes the last bit
    of some of its numbers (~4% of the Last.fm space's rows), so a generation saved and loaded
    again, or compacted, would not serve the vectors it served before, nor match the int8
    copies made of them."""
    X = np.asarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    if unless_unit:
        n = np.where(np.abs(n - 1.0) < 1e-4, np.float32(1.0), n)      # x / 1 is x, to the bit
    return X / np.maximum(n, 1e-12)


def checked_query(query: np.ndarray, dim: int, k: int, offset: int) -> np.ndarray:
    """The query as a unit float32 vector, after checking ``k``, ``offset`` and the vector."""
    check_page(k, offset)
    q = np.asarray(query, dtype=np.float32).ravel()
    if q.shape[0] != dim:
        raise InputError(f"query vector has dimension {q.shape[0]}, the index has {dim}", field="vector")
    if not np.isfinite(q).all() or np.linalg.norm(q) < 1e-12:
        raise InputError("query vector is empty, zero or not finite", field="vector")
    return q / np.linalg.norm(q)


def ann_fetch(need: int, n: int, allowed_fraction: float, extra: int = 0) -> int:
    """How many graph neighbours to fetch for ``need`` results when ``allowed_fraction`` of
    the items pass the filter and ``extra`` more may be excluded."""
    return min(n, int((need + extra) / max(allowed_fraction, 1e-6) * 1.5) + 10)


class VectorIndex:
    """Unit vectors with metadata; cosine kNN with filters.

    Parameters
    ----------
    ids, vectors:
        Item ids and their vectors (rows are L2-normalized on the way in).
    meta:
        One row per id (column ``item_id`` first); other columns are filterable.
    ann:
        Build an hnswlib HNSW index as well (``M``, ``ef_construction``, ``ef_search``).
    unit:
        ``vectors`` are rows an index served (saved, or a snapshot's): those of length 1 are kept
        bit for bit, not normalized again (:func:`l2_normalize`).
    """

    def __init__(self, ids: Sequence[str] | np.ndarray, vectors: np.ndarray, meta: pd.DataFrame | None = None, *,
                 ann: bool = False, M: int = 32, ef_construction: int = 200, ef_search: int = 128,
                 graph: Any = None, graph_labels: np.ndarray | None = None, unit: bool = False) -> None:
        ids = np.asarray(ids).astype(str)
        V = l2_normalize(vectors, unless_unit=unit)
        if V.ndim != 2 or len(V) != len(ids):
            raise ValueError(f"{len(ids)} ids for vectors of shape {V.shape}")
        if not np.isfinite(V).all():
            raise ValueError("vectors contain NaN or infinite values")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("ids must be unique")
        if meta is None:
            meta = pd.DataFrame({"item_id": ids})
        meta = meta.reset_index(drop=True)
        # compared as numpy strings: a Python list of the column took 8 ms of GIL for 17,632 rows
        meta_ids = np.asarray(meta["item_id"].astype(str).to_numpy(), dtype=str)
        if len(meta) != len(ids) or not np.array_equal(meta_ids, ids):
            raise ValueError("meta rows must be in the same order as ids")
        self.ids, self.vectors, self.meta = ids, V, meta
        self.ann, self.M, self.ef_construction, self.ef_search = ann, M, ef_construction, ef_search
        self._pos = {k: i for i, k in enumerate(ids.tolist())}
        self._filters = FilterEngine(meta)
        self._lock = threading.RLock()
        self._hnsw: Any = graph
        self._labels = graph_labels      # graph label -> row (-1: deleted); None: label == row
        if ann and graph is None:
            self._build_hnsw()

    # ---------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def position(self, item_id: str) -> int | None:
        return self._pos.get(str(item_id))

    def vector(self, item_id: str) -> np.ndarray | None:
        p = self.position(item_id)
        return None if p is None else self.vectors[p]

    def mask(self, where: Where) -> np.ndarray | None:
        return self._filters.mask(where)

    def meta_rows(self, positions: Sequence[int]) -> pd.DataFrame:
        """The metadata rows at ``positions``, in that order."""
        return self.meta.iloc[list(positions)]

    @property
    def graph(self) -> Any:
        """The HNSW graph (``None`` without ``ann``); never changed while it is served."""
        return self._hnsw

    @property
    def graph_labels(self) -> np.ndarray | None:
        return self._labels

    # ---------------------------------------------------------------- search
    def _build_hnsw(self) -> None:
        self._hnsw, self._labels = build_graph(self.vectors, M=self.M, ef_construction=self.ef_construction,
                                               ef_search=self.ef_search), None

    def search(self, query: np.ndarray, k: int = 10, *, where: Where = None, exclude: Iterable[str] = (),
               offset: int = 0, exact: bool | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (after skipping ``offset``) ids by cosine to ``query``, filtered."""
        q = checked_query(query, self.dim, k, offset)
        with self._lock:
            allowed = self.mask(where)
            excl = [p for p in (self._pos.get(str(e)) for e in exclude) if p is not None]
            need = k + offset
            use_ann = self._hnsw is not None and exact is not True
            if use_ann and (allowed is None or allowed.mean() > 0.05):
                frac = 1.0 if allowed is None else float(allowed.mean())
                rows, sims = self.ann_candidates(q, ann_fetch(need, len(self), frac, len(excl)))
                ex = set(excl)
                out = [(self.ids[r], float(s)) for r, s in zip(rows, sims)
                       if r not in ex and (allowed is None or allowed[r])][:need]
                if len(out) >= need:
                    return out[offset:need]
            scores = self.vectors @ q
            top = top_k(scores, need, exclude=excl, allowed=allowed)
            return [(self.ids[i], float(scores[i])) for i in top[offset:]]

    def ann_candidates(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosines of up to ``fetch`` approximate nearest neighbours of the unit
        vector ``q`` in the HNSW graph, best first."""
        g = self._hnsw
        n_graph = g.get_current_count()
        fetch = max(1, min(fetch, n_graph))
        labels, dist = _knn(g, q, fetch, self.ef_search)
        rows = labels if self._labels is None else self._labels[labels]
        ok = (rows >= 0) & (rows < len(self.ids))
        return rows[ok].astype(np.int64), (1.0 - dist[ok]).astype(np.float32)

    def search_many(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k for a batch of queries: (positions (n, k'), scores (n, k')), k' = min(k, len(self)).

        A query without finite scores (NaN) gets positions ``-1`` with score ``-inf``."""
        Q = l2_normalize(Q)
        S = Q @ self.vectors.T
        top = top_k(S, min(k, S.shape[1]))
        return top, np.where(top >= 0, np.take_along_axis(S, np.maximum(top, 0), axis=1), -np.inf)

    # ---------------------------------------------------------------- writes
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, meta: pd.DataFrame) -> None:
        """Insert or replace items (vectors and metadata) in place."""
        ids = [str(i) for i in ids]
        if len(set(ids)) != len(ids):
            dup = sorted(i for i, n in Counter(ids).items() if n > 1)
            raise InputError(f"duplicate ids in one upsert: {dup[:5]}; each id may appear once per call", field="item_id")
        V = l2_normalize(np.atleast_2d(vectors))
        if V.shape != (len(ids), self.dim):
            raise InputError(f"expected {len(ids)} vectors of dimension {self.dim}, got shape {V.shape}", field="vector")
        if not np.isfinite(V).all():
            raise InputError("vectors contain NaN or infinite values", field="vector")
        meta = meta.reset_index(drop=True).copy()
        meta["item_id"] = ids
        with self._lock:
            new_meta = self.meta.copy()
            for c in meta.columns:
                if c not in new_meta.columns:
                    new_meta[c] = None
            vecs = self.vectors.copy()
            add_ids, add_rows, add_meta = [], [], []
            for j, iid in enumerate(ids):
                p = self._pos.get(iid)
                row = meta.iloc[j]
                if p is None:
                    add_ids.append(iid)
                    add_rows.append(V[j])
                    add_meta.append(row)
                else:
                    vecs[p] = V[j]
                    for c in meta.columns:
                        new_meta.at[p, c] = row[c]
            if add_ids:
                vecs = np.vstack([vecs, np.stack(add_rows)])
                new_meta = pd.concat([new_meta, pd.DataFrame(add_meta).reindex(columns=new_meta.columns)],
                                     ignore_index=True)
            self.ids = np.concatenate([self.ids, np.asarray(add_ids, dtype=str)]) if add_ids else self.ids
            self.vectors, self.meta = vecs, new_meta
            self._pos = {k: i for i, k in enumerate(self.ids.tolist())}
            self._filters = FilterEngine(self.meta)
            if self._hnsw is not None:       # this index's own graph, under the lock its searches take
                self._add_to_graph([self._pos[i] for i in ids], V)

    def _add_to_graph(self, rows: list[int], V: np.ndarray) -> None:
        labels = []
        for r in rows:
            if self._labels is None:
                labels.append(r)
                continue
            have = np.flatnonzero(self._labels == r)
            if len(have):
                labels.append(int(have[0]))
            else:
                labels.append(len(self._labels))
                self._labels = np.append(self._labels, r)
        need = max(labels) + 1
        if need > self._hnsw.get_max_elements():
            self._hnsw.resize_index(need * 2)
        self._hnsw.add_items(V, np.asarray(labels))

    # ---------------------------------------------------------------- persistence
    def write_files(self, folder: Path) -> None:
        """Write ``vectors.npy``, ``meta.parquet``, ``config.json`` (and the graph) into the
        existing folder ``folder`` (not atomically: see :meth:`save`)."""
        np.save(folder / "vectors.npy", self.vectors)
        self.meta.to_parquet(folder / "meta.parquet", index=False)
        if self._hnsw is not None:
            self._hnsw.save_index(str(folder / GRAPH_FILE))
            if self._labels is not None:
                np.save(folder / LABELS_FILE, self._labels)
        (folder / "config.json").write_text(json.dumps({"ann": self.ann, "M": self.M, "ef_construction": self.ef_construction,
                                                       "ef_search": self.ef_search, "n": len(self), "dim": self.dim}))

    def save(self, path: str | Path) -> None:
        """Write the index atomically into folder ``path``."""
        with self._lock, atomic_dir(path) as tmp:
            self.write_files(tmp)

    @classmethod
    def load(cls, path: str | Path, *, ann: bool | None = None) -> "VectorIndex":
        """The index saved in folder ``path``; :class:`UnreadableIndex` naming the file that is
        missing (a ``FileNotFoundError`` too) or cannot be read."""
        path = Path(path)
        cfg = read_index_file(path / "config.json", lambda f: json.loads(f.read_text()))
        meta = read_index_file(path / "meta.parquet", read_meta)
        V = read_index_file(path / "vectors.npy", lambda f: np.load(f, allow_pickle=False))
        try:
            use_ann = cfg["ann"] if ann is None else ann
            params = {k: cfg[k] for k in ("M", "ef_construction", "ef_search")}
        except (KeyError, TypeError, ValueError) as e:
            raise BadIndexFile(f"{path / 'config.json'}: not an index config ({type(e).__name__}: {e})") from None
        if V.ndim != 2 or len(meta) != len(V) or "item_id" not in meta.columns:
            raise BadIndexFile(f"{path}: meta.parquet has {len(meta)} rows (item_id: {'item_id' in meta.columns}) for "
                               f"{len(V)} rows of vectors.npy")
        graph = labels = None
        if use_ann and (path / GRAPH_FILE).exists():
            graph = read_index_file(path / GRAPH_FILE,
                                    lambda f: load_graph(f, V.shape[1], ef_search=params["ef_search"]))
            labels = read_index_file(path / LABELS_FILE, np.load) if (path / LABELS_FILE).exists() else None
        return cls(meta["item_id"].astype(str).to_numpy(), V, meta, ann=use_ann, **params, graph=graph,
                   graph_labels=labels, unit=True)


class UnreadableIndex(TalkrecError):
    """A file of a saved index is missing or cannot be read (``talkrec doctor SPACE`` says more)."""


class MissingIndexFile(UnreadableIndex, FileNotFoundError):
    """A file of a saved index is missing (a ``FileNotFoundError``: a compaction may have replaced it)."""


class BadIndexFile(UnreadableIndex, ValueError):
    """A file of a saved index is there but cannot be read (truncated, corrupt)."""


def read_index_file(f: Path, reader: Any) -> Any:
    """``reader(f)``, its failures as :class:`UnreadableIndex` naming ``f`` (a file of an index
    or of the generation that holds it)."""
    try:
        return reader(f)
    except FileNotFoundError:
        raise MissingIndexFile(f"{f} is missing (the space is damaged: `talkrec doctor SPACE` says more)") from None
    except (OSError, ValueError, KeyError, EOFError, RuntimeError) as e:
        raise BadIndexFile(f"{f} cannot be read ({type(e).__name__}: {e}; `talkrec doctor SPACE` says more)") from None


#: rows of a list column converted to Python lists per call in :func:`read_meta`
META_CHUNK = 1024


def read_meta(path: Path) -> pd.DataFrame:
    """A metadata table saved with ``to_parquet``, list columns as Python lists (pandas would
    give numpy arrays; arrow converts them in C). The lists are made ``META_CHUNK`` rows per
    call: one call per column held the GIL 20-130 ms for the Last.fm space's 17,632 rows,
    and a process that loads a generation while it serves (a follower after a compaction)
    would stall every read for that long; in chunks, ~6 ms at most."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    lists = [f.name for f in t.schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    meta = t.drop_columns(lists).to_pandas()
    n = len(t)
    for c in lists:
        col, values = t.column(c), np.empty(n, dtype=object)
        for a in range(0, n, META_CHUNK):
            _put_lists(values, a, col)
        meta[c] = pd.Series(values, index=meta.index, dtype=object, copy=False)
    return meta[t.column_names]


def _put_lists(values: np.ndarray, a: int, col: Any) -> None:
    """Rows ``a:a + META_CHUNK`` of list column ``col`` into ``values`` (a 1-D object array: one
    list each). A Python function of its own: a follower's paced load (``space/follower.py``)
    can make way for reads at each call, and pyarrow's calls in it are not calls a profile hook sees."""
    values[a:a + META_CHUNK] = col.slice(a, META_CHUNK).to_pylist()


def _hnswlib() -> Any:
    try:
        import hnswlib
    except ImportError as e:
        raise ImportError("approximate search needs hnswlib: pip install 'talkrec[ann]'") from e
    return hnswlib


def _knn(graph: Any, q: np.ndarray, fetch: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
    graph.set_ef(max(ef_search, fetch))
    try:
        labels, dist = graph.knn_query(q[None, :], k=fetch)
    except RuntimeError:        # fewer reachable nodes than asked for (many deleted): callers go exact
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return labels[0].astype(np.int64), dist[0]


def build_graph(vectors: np.ndarray, *, M: int, ef_construction: int, ef_search: int) -> Any:
    """A new HNSW graph over ``vectors`` (label = row)."""
    idx = _hnswlib().Index(space="ip", dim=int(vectors.shape[1]))
    idx.init_index(max_elements=max(len(vectors) * 2, 1024), M=M, ef_construction=ef_construction)
    if len(vectors):
        idx.add_items(vectors, np.arange(len(vectors)))
    idx.set_ef(ef_search)
    return idx


def load_graph(path: Path, dim: int, *, ef_search: int, max_elements: int = 0) -> Any:
    """A graph saved by :meth:`VectorIndex.write_files` (a private copy: changing it changes
    no other graph)."""
    idx = _hnswlib().Index(space="ip", dim=dim)
    idx.load_index(str(path), max_elements=max_elements)
    idx.set_ef(ef_search)
    return idx
