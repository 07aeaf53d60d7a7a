"""An immutable, consistent view of a space's items: what every read works on.

A :class:`Snapshot` is a base :class:`~talkrec.index.segments.Generation` plus the first ``m`` rows of
the :class:`~talkrec.index.segments.DeltaRows` written since, a liveness mask over all those rows (an
update tombstones the old row and appends a new one; a delete only tombstones) and the map from id to
the newest delta row. A write makes the next snapshot (copying the mask and the small delta map, never
touching rows a reader may use); a reader takes the current one once and uses it to the end, unlocked.

Rows are addressed physically: base rows ``0 .. n0-1``, delta rows ``n0 .. n0+m-1``; dead
rows score ``-inf`` and are never returned. :attr:`ids`, :attr:`vectors` and :attr:`meta`
are the live rows only, in row order (computed once per snapshot when asked for).

With a :class:`~talkrec.index.backend.VectorBackend` (``index: {backend: milvus}``) the kNN
of :meth:`Snapshot.search` runs in the vector database, which holds the newest state of the
items; what it returns is checked against this snapshot (items it does not have live are
dropped, so a read never sees an item written after it started), exclusions and the filter
clauses the database cannot express are applied here, fetching more when too few remain.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..ranking import top_k
from . import toplists
from .backend import VectorBackend
from .filters import FilterEngine, Where, field_kind
from .analysis import BM25Settings
from .lexical import LexicalIndex
from .segments import DeltaRows, Generation
from .store import ann_fetch, checked_query

__all__ = ["Snapshot"]


class Snapshot:
    """See the module docstring; make the first one with :meth:`of`."""

    __slots__ = ("gen", "delta", "m", "live", "delta_pos", "n_live", "dead_base", "version", "backend", "_memo")

    def __init__(self, gen: Generation, delta: DeltaRows, m: int, live: np.ndarray, delta_pos: Mapping[str, int],
                 n_live: int, dead_base: int, backend: VectorBackend | None = None) -> None:
        live.flags.writeable = False
        self.gen, self.delta, self.m, self.live = gen, delta, m, live
        self.delta_pos, self.n_live, self.dead_base = delta_pos, n_live, dead_base
        self.backend = backend               # where the kNN runs (None: here)
        self.version = delta.version          # the number of writes on ``delta`` this snapshot has seen
        self._memo: dict[Any, Any] = {}

    @classmethod
    def of(cls, gen: Generation, backend: VectorBackend | None = None) -> "Snapshot":
        """The generation alone (no delta rows); ``backend``: where searches run."""
        delta = DeltaRows(gen.index.dim, {k: X.shape[1:] for k, X in gen.inputs.items()})
        return cls(gen, delta, 0, np.ones(len(gen), dtype=bool), {}, len(gen), 0, backend)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` for this snapshot (racing readers may both compute)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return self.n_live

    @property
    def n0(self) -> int:
        return len(self.gen)

    @property
    def n_rows(self) -> int:
        """Physical rows: base + delta, dead ones included."""
        return len(self.gen) + self.m

    @property
    def changes(self) -> int:
        """Rows changed since the generation: delta rows + dead base rows."""
        return self.m + self.dead_base

    @property
    def dim(self) -> int:
        return self.gen.index.dim

    # ------------------------------------------------------------------ rows
    def position(self, item_id: str) -> int | None:
        """The row of a live item (``None`` for an unknown or deleted one)."""
        iid = str(item_id)
        p = self.delta_pos.get(iid)
        if p is None:
            p = self.gen.index.position(iid)
        return p if p is not None and self.live[p] else None

    def vector(self, item_id: str) -> np.ndarray | None:
        p = self.position(item_id)
        return None if p is None else self.rows([p])[0]

    def rows(self, positions: Sequence[int]) -> np.ndarray:
        """The fused vectors at ``positions``."""
        P = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(P), self.dim), dtype=np.float32)
        b = P < self.n0
        out[b] = self.gen.vectors[P[b]]
        out[~b] = self.delta.vectors[P[~b] - self.n0]
        return out

    def id_at(self, p: int) -> str:
        return str(self.gen.ids[p]) if p < self.n0 else self.delta.ids[p - self.n0]

    def ids_at(self, rows: np.ndarray) -> list[str]:
        """The item id of each row."""
        rows, n0 = np.asarray(rows, dtype=np.int64), self.n0
        base = self.gen.ids[rows[rows < n0]].tolist() if n0 else []
        if len(base) == len(rows):
            return base
        it = iter(base)
        return [next(it) if r < n0 else self.delta.ids[r - n0] for r in rows.tolist()]

    def pairs(self, rows: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        """``(item_id, score)`` of each row, with ``scores`` aligned with ``rows``."""
        return list(zip(self.ids_at(rows), np.asarray(scores, dtype=np.float64).tolist()))

    def input_row(self, key: str, p: int) -> np.ndarray | None:
        """Raw input ``key`` of row ``p`` (``None`` when the space keeps no such input)."""
        X = self.gen.inputs.get(key)
        if X is None:
            return None
        return X[p] if p < self.n0 else self.delta.inputs[key][p - self.n0]

    @property
    def columns(self) -> list[str]:
        """Metadata fields: the generation's, then those only delta rows have."""
        def make() -> list[str]:
            base = self.gen.memo("columns", lambda: tuple(self.gen.meta.columns))
            known = set(base)
            return [*base, *(c for c in self.delta.column_names(self.m) if c not in known)]
        return self.memo("columns", make)

    def meta_rows(self, positions: Sequence[int]) -> pd.DataFrame:
        """The metadata rows at ``positions``, in that order, with every column."""
        P = [int(p) for p in positions]
        n0 = self.n0
        if all(p < n0 for p in P):
            rows = self.gen.meta.iloc[P]
            return rows if len(self.columns) == self.gen.meta.shape[1] else rows.reindex(columns=self.columns)
        base = self.gen.meta.iloc[[p for p in P if p < n0]]
        delta = pd.DataFrame([self.delta.meta[p - n0] for p in P if p >= n0])
        parts = [f for f in (base, delta) if len(f)]
        if not parts:
            return self.gen.meta.iloc[[]].reindex(columns=self.columns)
        both = (pd.concat(parts, ignore_index=True) if len(parts) == 2 else parts[0]).reindex(columns=self.columns)
        return both.iloc[_restore_order(P, n0)].reset_index(drop=True)

    def value(self, p: int, column: str) -> Any:
        """One metadata value of row ``p`` (``None`` where the row lacks the field)."""
        if p >= self.n0:
            return self.delta.meta[p - self.n0].get(column)
        return self.gen.meta[column].iat[p] if column in self.gen.meta.columns else None

    # ------------------------------------------------------------------ the live rows
    @property
    def live_rows(self) -> np.ndarray:
        return self.memo("live_rows", lambda: np.flatnonzero(self.live))

    @property
    def ids(self) -> np.ndarray:
        """Ids of the live items, in row order."""
        def make() -> np.ndarray:
            r = self.live_rows
            base = self.gen.ids[r[r < self.n0]]
            delta = np.asarray([self.delta.ids[p - self.n0] for p in r[r >= self.n0]], dtype=str)
            return np.concatenate([base, delta]) if len(delta) else base
        return self.memo("ids", make)

    @property
    def vectors(self) -> np.ndarray:
        """Fused vectors of the live items, aligned with :attr:`ids`."""
        return self.memo("vectors", lambda: self.rows(self.live_rows))

    @property
    def meta(self) -> pd.DataFrame:
        """Metadata of the live items, aligned with :attr:`ids`."""
        return self.memo("meta", lambda: self.meta_rows(self.live_rows))

    def inputs(self, key: str) -> np.ndarray:
        """Raw input ``key`` of the live items, aligned with :attr:`ids`."""
        def make() -> np.ndarray:
            r = self.live_rows
            X, D = self.gen.inputs[key], self.delta.inputs[key]
            return np.concatenate([X[r[r < self.n0]], D[r[r >= self.n0] - self.n0]])
        return self.memo(("inputs", key), make)

    def schema(self) -> pd.DataFrame:
        """Sample rows for column-type checks: the generation's :meth:`Generation.schema`, then
        the delta rows that hold each field's first 50 values that are not missing."""
        def make() -> pd.DataFrame:
            rows = sorted({r for rs in list(self.delta.samples.values()) for r in rs if r < self.m})
            head = pd.DataFrame([self.delta.meta[r] for r in rows])
            return pd.concat([self.gen.schema(), head], ignore_index=True).reindex(columns=self.columns)
        return self.memo("schema", make) if self.m else self.gen.schema()

    def delta_frame(self) -> pd.DataFrame:
        """The delta rows as a table with every column; list fields hold ``[]`` for none."""
        def make() -> pd.DataFrame:
            df = pd.DataFrame(self.delta.meta[:self.m]).reindex(columns=self.columns)
            gschema = self.gen.schema()
            for c in gschema.columns:
                if field_kind(gschema[c]) == "list":
                    df[c] = [v if isinstance(v, (list, tuple, np.ndarray)) else [] for v in df[c].tolist()]
            return df
        return self.memo("delta_frame", make)

    # ------------------------------------------------------------------ scoring
    def mask(self, where: Where) -> np.ndarray:
        """Live rows that pass the filter (read-only; the liveness mask when there is none)."""
        base = self.gen.filters(tuple(self.columns)).mask(where)
        if base is None:
            return self.live
        if self.m:
            base = np.concatenate([base, FilterEngine(self.delta_frame()).mask(where)])
        return base & self.live

    def scores(self, q: np.ndarray) -> np.ndarray:
        """Cosine of every row to the unit vector ``q``; ``-inf`` for dead rows."""
        s = self.gen.matvec(None, q)
        if self.m:
            s = np.concatenate([s, self.delta.vectors[:self.m] @ q])
        return np.where(self.live, s, -np.inf)

    def search(self, query: np.ndarray, k: int = 10, *, where: Where = None, exclude: Iterable[str] = (),
               offset: int = 0, exact: bool | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (after skipping ``offset``) live items by cosine to ``query``, filtered;
        in the backend when there is one, else through the base's HNSW graph (delta rows
        exactly); ``exact=True``: exactly, over this snapshot's own vectors."""
        return self.pairs(*self.search_rows(query, k, where=where, exclude=exclude, offset=offset, exact=exact))

    def search_rows(self, query: np.ndarray, k: int = 10, *, where: Where = None, exclude: Iterable[str] = (),
                    offset: int = 0, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` as ``(rows, scores)`` of this snapshot (what ranking code that
        goes on with row scores needs, without a round trip through item ids)."""
        q = checked_query(query, self.dim, k, offset)
        need = k + offset
        if self.backend is not None and exact is not True:
            found = self._backend_search(self.backend, q, need, where, exclude)
            if found is not None:
                return found[0][offset:], found[1][offset:]
        allowed = self.mask(where)
        excl = [p for p in (self.position(e) for e in exclude) if p is not None]
        if self.gen.index.graph is not None and exact is not True and self.n0:
            # the share of base rows allowed (without a filter: the live ones, no pass over the mask)
            frac = (self.n0 - self.dead_base) / self.n0 if allowed is self.live else float(allowed[:self.n0].mean())
            res = self._ann(q, need, allowed, excl, frac) if frac > 0.05 else None
            if res is not None:
                return res[0][offset:need], res[1][offset:need]
        top, sims = self.top_rows(q, need, allowed, excl)
        return top[offset:], sims[offset:]

    def top_rows(self, q: np.ndarray, need: int, allowed: np.ndarray,
                 exclude: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Exactly the ``need`` allowed rows (not in ``exclude``) of highest cosine to ``q``,
        and their cosines (:func:`~talkrec.index.toplists.top_rows`)."""
        return toplists.top_rows(self, q, need, allowed, exclude)

    def text_top(self, key: str, q: np.ndarray, need: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`text_scores`' top ``need`` allowed rows and their cosines (exact;
        :func:`~talkrec.index.toplists.text_top`)."""
        return toplists.text_top(self, key, q, need, allowed)

    def _backend_search(self, backend: VectorBackend, q: np.ndarray, need: int, where: Where,
                        exclude: Iterable[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``need`` from the backend: its filter expression for what it can say, the
        rest of the filter, exclusions and liveness here, fetching 4x more while too few
        remain; ``None`` (search here) when the backend cannot return enough, or when an
        approximate index returns fewer than asked (it may have lost matches: Milvus Lite's
        HNSW returns at most its candidate list, filtered afterwards)."""
        expr, complete = backend.filter_expr(where, self.columns)
        allowed = None if complete else self.mask(where)
        if expr or not complete:                 # a selective filter: by key (no scan in the store)
            passing = np.flatnonzero(self.mask(where) if allowed is None else allowed)
            if not len(passing):
                return _no_rows()
            by_key = backend.ids_filter([self.id_at(int(p)) for p in passing]) \
                if len(passing) <= backend.max_id_filter else None
            if by_key is not None:
                expr, allowed = by_key, None
        excl = {str(e) for e in exclude}
        fetch = need + len(excl) + (self.delta.n - self.m) + 10      # + rows written since this snapshot
        while True:
            fetch = min(fetch, backend.max_fetch)
            got = backend.knn(q, fetch, expr)
            rows, sims = [], []
            for iid, s in got:
                p = self.position(iid)
                if p is not None and iid not in excl and (allowed is None or allowed[p]):
                    rows.append(p)
                    sims.append(s)
            if len(rows) >= need:
                return np.asarray(rows[:need], dtype=np.int64), np.asarray(sims[:need], dtype=np.float64)
            if len(got) < fetch:                    # all that pass ``expr`` (when the index is exact)
                return (np.asarray(rows, dtype=np.int64), np.asarray(sims, dtype=np.float64)) if backend.exact else None
            if fetch >= backend.max_fetch:
                return None
            fetch *= 4

    def _ann(self, q: np.ndarray, need: int, allowed: np.ndarray, excl: list[int],
             frac: float) -> tuple[np.ndarray, np.ndarray] | None:
        n0 = self.n0
        rows, sims = self.gen.index.ann_candidates(q, ann_fetch(need, n0, frac, len(excl) + self.dead_base))
        ok = allowed[rows] & ~np.isin(rows, excl)
        rows, sims = rows[ok], sims[ok]
        if len(rows) < need and len(ok) < n0:
            return None                      # not enough after filtering: exact search instead
        if self.m:
            ds = self.delta.vectors[:self.m] @ q
            top = top_k(ds, need, exclude=[p - n0 for p in excl if p >= n0], allowed=allowed[n0:])
            rows, sims = np.concatenate([rows, top + n0]), np.concatenate([sims, ds[top]])
        order = np.lexsort((rows, -sims))[:need]
        return rows[order], sims[order]

    def text_scores(self, key: str, q: np.ndarray) -> np.ndarray:
        """Cosine of every row's raw text vector (mean over views) to ``q``; ``-inf`` for rows
        without a text and dead rows."""
        _, has = self.gen.text(key)
        s = self.gen.matvec(key, q)
        if self.m:
            Td, hasd = self.delta.text(key, self.m)
            s, has = np.concatenate([s, Td @ q]), np.concatenate([has, hasd])
        return np.where(has & self.live, s, -np.inf)

    def lexical_scores(self, text: str, settings: BM25Settings = BM25Settings()) -> np.ndarray:
        """BM25 score of every row for ``text`` (float64; 0 where no term occurs or the row is
        dead); delta rows score with the generation's corpus statistics. ``settings``: see
        :meth:`~talkrec.index.segments.Generation.lexical`."""
        lex = self.gen.lexical(settings)
        return self._with_delta(lex, lex.scores(text), lambda: lex.tokenize([text])[0])

    def lexical_term_scores(self, lex: LexicalIndex, terms: Sequence[str], counts: np.ndarray) -> np.ndarray:
        """:meth:`lexical_scores` of a query of ``terms`` (each ``counts`` times) in ``lex`` (one of
        :meth:`Generation.lexical`'s), by :meth:`LexicalIndex.term_scores`."""
        return self._with_delta(lex, lex.term_scores(terms, counts), lambda: dict(zip(terms, counts)))

    def _with_delta(self, lex: LexicalIndex, base: np.ndarray, query: Callable[[], Any]) -> np.ndarray:
        s = np.concatenate([base, self.delta.bm25(lex, query(), self.m)]) if self.m else base
        return np.where(self.live, s, 0.0)

    # ------------------------------------------------------------------ writes
    def _check_newest(self) -> None:
        if self.version != self.delta.version:
            raise RuntimeError("only the newest snapshot can be written on")
        self.delta.version += 1

    def with_upsert(self, ids: Sequence[str], vectors: np.ndarray, meta: Sequence[Mapping[str, Any]],
                    inputs: Mapping[str, np.ndarray], tokens: Sequence[Sequence[str]]) -> "Snapshot":
        """The next snapshot: ``ids`` (unique) appended as new rows, their old rows dead."""
        self._check_newest()
        start = self.n0 + self.delta.append(ids, vectors, meta, inputs, tokens)
        k = len(ids)
        live = np.empty(self.n_rows + k, dtype=bool)
        live[:self.n_rows] = self.live
        live[self.n_rows:] = True
        delta_pos = dict(self.delta_pos)
        n_live, dead_base = self.n_live, self.dead_base
        for j, iid in enumerate(ids):
            old = self.position(iid)
            if old is None:
                n_live += 1
            else:
                live[old] = False
                dead_base += old < self.n0
            delta_pos[str(iid)] = start + j
        return Snapshot(self.gen, self.delta, self.m + k, live, delta_pos, n_live, dead_base, self.backend)

    def with_delete(self, ids: Sequence[str]) -> "Snapshot":
        """The next snapshot: the live items ``ids`` dead (unknown ids are skipped)."""
        self._check_newest()
        live = self.live.copy()
        n_live, dead_base = self.n_live, self.dead_base
        for iid in ids:
            p = self.position(iid)
            if p is not None and live[p]:
                live[p] = False
                n_live -= 1
                dead_base += p < self.n0
        return Snapshot(self.gen, self.delta, self.m, live, self.delta_pos, n_live, dead_base, self.backend)


def _restore_order(P: list[int], n0: int) -> np.ndarray:
    """Positions in ``concat(base rows of P, delta rows of P)`` of each element of ``P``."""
    is_delta = np.asarray([p >= n0 for p in P], dtype=bool)
    out = np.empty(len(P), dtype=np.int64)
    out[~is_delta] = np.arange(int((~is_delta).sum()))
    out[is_delta] = int((~is_delta).sum()) + np.arange(int(is_delta.sum()))
    return out


def _no_rows() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
