"""The embedded vector store: item vectors + metadata, exact (and optional HNSW) kNN with
filters, upserts, atomic persistence. No server.

Exact search is a matrix-vector product and :func:`talkrec.ranking.top_k` (STACK.md: 2-4 ms at 100k
items, 33 ms at 1M). ``ann=True`` adds an hnswlib HNSW graph for large catalogs; filtered
queries on it over-fetch and fall back to exact search when the filter is narrow.
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
from ..errors import InputError
from ..ranking import top_k
from .filters import FilterEngine, Where

log = logging.getLogger(__name__)


def l2_normalize(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.maximum(n, 1e-12)


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
    """

    def __init__(self, ids: Sequence[str] | np.ndarray, vectors: np.ndarray, meta: pd.DataFrame | None = None, *,
                 ann: bool = False, M: int = 32, ef_construction: int = 200, ef_search: int = 128) -> None:
        ids = np.asarray(ids).astype(str)
        V = l2_normalize(vectors)
        if V.ndim != 2 or len(V) != len(ids):
            raise ValueError(f"{len(ids)} ids for vectors of shape {V.shape}")
        if not np.isfinite(V).all():
            raise ValueError("vectors contain NaN or infinite values")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("ids must be unique")
        if meta is None:
            meta = pd.DataFrame({"item_id": ids})
        meta = meta.reset_index(drop=True)
        if list(meta["item_id"].astype(str)) != ids.tolist():
            raise ValueError("meta rows must be in the same order as ids")
        self.ids, self.vectors, self.meta = ids, V, meta
        self.ann, self.M, self.ef_construction, self.ef_search = ann, M, ef_construction, ef_search
        self._pos = {k: i for i, k in enumerate(ids.tolist())}
        self._filters = FilterEngine(meta)
        self._lock = threading.RLock()
        self._hnsw: Any = None
        if ann:
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

    # ---------------------------------------------------------------- search
    def _build_hnsw(self) -> None:
        try:
            import hnswlib
        except ImportError as e:
            raise ImportError("approximate search needs hnswlib: pip install 'talkrec[ann]'") from e
        idx = hnswlib.Index(space="ip", dim=self.dim)
        idx.init_index(max_elements=max(len(self) * 2, 1024), M=self.M, ef_construction=self.ef_construction)
        idx.add_items(self.vectors, np.arange(len(self)))
        idx.set_ef(self.ef_search)
        self._hnsw = idx

    def search(self, query: np.ndarray, k: int = 10, *, where: Where = None, exclude: Iterable[str] = (),
               offset: int = 0, exact: bool | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (after skipping ``offset``) ids by cosine to ``query``, filtered."""
        if k < 1 or offset < 0:
            raise InputError(f"k must be >= 1 and offset >= 0, got k={k}, offset={offset}", field="k")
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != self.dim:
            raise InputError(f"query vector has dimension {q.shape[0]}, the index has {self.dim}", field="vector")
        if not np.isfinite(q).all() or np.linalg.norm(q) < 1e-12:
            raise InputError("query vector is empty, zero or not finite", field="vector")
        q = q / np.linalg.norm(q)
        with self._lock:
            allowed = self.mask(where)
            excl = [p for p in (self._pos.get(str(e)) for e in exclude) if p is not None]
            need = k + offset
            use_ann = self._hnsw is not None and exact is not True
            if use_ann and (allowed is None or allowed.mean() > 0.05):
                res = self._ann_search(q, need, allowed, excl)
                if res is not None:
                    return res[offset:need]
            scores = self.vectors @ q
            top = top_k(scores, need, exclude=excl, allowed=allowed)
            return [(self.ids[i], float(scores[i])) for i in top[offset:]]

    def _ann_search(self, q: np.ndarray, need: int, allowed: np.ndarray | None,
                    excl: list[int]) -> list[tuple[str, float]] | None:
        frac = 1.0 if allowed is None else max(float(allowed.mean()), 1e-6)
        fetch = min(len(self), int((need + len(excl)) / frac * 1.5) + 10)
        self._hnsw.set_ef(max(self.ef_search, fetch))
        labels, dist = self._hnsw.knn_query(q[None, :], k=fetch)
        ex = set(excl)
        out = []
        for lab, d in zip(labels[0], dist[0]):
            if lab >= len(self.ids) or lab in ex or (allowed is not None and not allowed[lab]):
                continue
            out.append((self.ids[lab], float(1.0 - d)))
            if len(out) >= need:
                return out
        return None  # not enough after filtering: caller falls back to exact

    def search_many(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k for a batch of queries: (positions (n, k'), scores (n, k')), k' = min(k, len(self)).

        A query without finite scores (NaN) gets positions ``-1`` with score ``-inf``."""
        Q = l2_normalize(Q)
        S = Q @ self.vectors.T
        top = top_k(S, min(k, S.shape[1]))
        return top, np.where(top >= 0, np.take_along_axis(S, np.maximum(top, 0), axis=1), -np.inf)

    # ---------------------------------------------------------------- writes
    def copy(self) -> "VectorIndex":
        """A copy with its own vectors and metadata. An HNSW graph is shared, not rebuilt
        (upserts add labels the original never returns: it ignores labels beyond its size)."""
        with self._lock:
            new = VectorIndex(self.ids.copy(), self.vectors.copy(), self.meta.copy(), ann=False, M=self.M,
                              ef_construction=self.ef_construction, ef_search=self.ef_search)
            new.ann, new._hnsw = self.ann, self._hnsw
            return new

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, meta: pd.DataFrame) -> None:
        """Insert or replace items (vectors and metadata)."""
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
            if self._hnsw is not None:
                for j, iid in enumerate(ids):
                    p = self._pos[iid]
                    if p >= self._hnsw.get_max_elements():
                        self._hnsw.resize_index(p * 2)
                    self._hnsw.add_items(V[j:j + 1], np.array([p]), replace_deleted=False)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write ``vectors.npy``, ``ids.txt`` ... atomically into folder ``path``."""
        with self._lock, atomic_dir(path) as tmp:
            np.save(tmp / "vectors.npy", self.vectors)
            self.meta.to_parquet(tmp / "meta.parquet", index=False)
            (tmp / "config.json").write_text(json.dumps({"ann": self.ann, "M": self.M, "ef_construction": self.ef_construction,
                                                         "ef_search": self.ef_search, "n": len(self), "dim": self.dim}))

    @classmethod
    def load(cls, path: str | Path, *, ann: bool | None = None) -> "VectorIndex":
        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        meta = pd.read_parquet(path / "meta.parquet")
        meta = meta.apply(lambda s: s.map(lambda v: list(v) if isinstance(v, np.ndarray) else v)) if len(meta) else meta
        V = np.load(path / "vectors.npy", allow_pickle=False)
        return cls(meta["item_id"].astype(str).to_numpy(), V, meta, ann=cfg["ann"] if ann is None else ann,
                   M=cfg["M"], ef_construction=cfg["ef_construction"], ef_search=cfg["ef_search"])
