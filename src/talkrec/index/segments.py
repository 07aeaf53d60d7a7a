"""The two kinds of rows a space serves: an immutable base :class:`Generation` (what
compaction wrote: the index, the raw modality inputs aligned with it, BM25) and the
append-only :class:`DeltaRows` written since (in growable buffers).

Neither is ever changed where a reader may look: a generation not at all, delta rows only
beyond the row count of every snapshot made so far. What is derived from them (the text
model's search matrix, filter engines, name tables...) is computed once and kept
(:meth:`Generation.memo`).
"""
from __future__ import annotations

import bisect
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .filters import FilterEngine, is_null
from .analysis import BM25Settings
from .lexical import LexicalIndex
from .quantized import MAX_ROWS, MIN_ROWS, Int8TopK
from .store import VectorIndex

log = logging.getLogger(__name__)

#: the folder of a generation's saved int8 copies (:meth:`Generation.save_int8`)
INT8_DIR = "int8"


def int8_file(key: str | None) -> str:
    """The file name of a saved int8 copy (``key=None``: the fused vectors) in ``INT8_DIR``."""
    return "fused.npz" if key is None else f"input-{key}.npz"


__all__ = ["DeltaRows", "Generation", "SharedProduct", "descriptions", "lexical_texts", "row_text", "text_matrix"]


def text_matrix(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw text inputs (``(n, d)`` or ``(n, views, d)``) as the text-model search matrix: an
    item's first description view (the primary one, e.g. TEMPLATE), or its next view when it
    lacks the first (NaN as 0); and which rows have a text at all. (The mean over views
    scored 0.217 on the MovieLens tag queries against 0.351 for TEMPLATE alone: an overview
    vector pulls the item away from tag-like queries; docs/evaluation.md.)"""
    T = X
    if X.ndim == 3:
        T = X[:, 0].copy()
        for v in range(1, X.shape[1]):
            miss = np.isnan(T).any(axis=1)
            if not miss.any():
                break
            T[miss] = X[miss, v]
    has = ~np.isnan(T).any(axis=1) if len(T) else np.zeros(0, dtype=bool)
    if has.all() and T.dtype == np.float32:
        return T, has                  # the input itself: no second copy of the matrix (26 MB on Last.fm)
    return np.nan_to_num(T).astype(np.float32, copy=False), has


class Generation:
    """The base rows of a space: ``index`` (ids, fused vectors, metadata, optional HNSW
    graph), ``inputs`` (raw modality matrices aligned with it, by input key) and
    ``lexical`` (BM25 over the descriptions; built on first use when a legacy space has
    none saved). ``name`` is its folder (``gen-000003``), or ``""`` for a legacy space;
    ``folder``: that folder, where it was read from (its saved int8 copies, :meth:`int8`)."""

    def __init__(self, name: str, index: VectorIndex, inputs: Mapping[str, np.ndarray],
                 lexical: LexicalIndex | None = None, folder: Path | None = None) -> None:
        self.name, self.index, self.inputs, self.folder = name, index, dict(inputs), folder
        self._lexical = lexical
        self._memo: dict[Any, Any] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.index)

    @property
    def ids(self) -> np.ndarray:
        return self.index.ids

    @property
    def vectors(self) -> np.ndarray:
        return self.index.vectors

    @property
    def meta(self) -> pd.DataFrame:
        return self.index.meta

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` for this generation."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def memoized(self, key: Any) -> Any:
        """What :meth:`memo` made for ``key`` so far, or None."""
        return self._memo.get(key)

    def lexical(self, settings: BM25Settings = BM25Settings()) -> LexicalIndex:
        """BM25 over the descriptions: the saved index, or one built with ``settings`` where
        those given differ from it (a space whose ``search.bm25_*`` settings changed after the
        generation was written; built once per setting)."""
        if self._lexical is None:
            self._lexical = self.memo("lexical", lambda: LexicalIndex(descriptions(self.meta)))
        base = self._lexical
        want = settings.given_over(base.settings)
        if want == base.settings:
            return base
        return self.memo(("lexical", want),  # type: ignore[no-any-return]
                         lambda: LexicalIndex(lexical_texts(self.meta, want.fields), **want._asdict()))

    def lexical_tokens(self, rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """The BM25 tokens of metadata rows (dicts) as this generation's index makes them: its
        fields (:func:`row_text`), its tokenization (:meth:`LexicalIndex.tokenize`)."""
        lex = self.lexical()
        return lex.tokenize([row_text(r, lex.fields) for r in rows])

    def text(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """:func:`text_matrix` of input ``key``."""
        return self.memo(("text", key), lambda: text_matrix(self.inputs[key]))

    def int8(self, key: str | None, *, build: bool = False) -> Int8TopK | None:
        """The int8 copy (:class:`~talkrec.index.quantized.Int8TopK`) of the fused vectors
        (``key=None``) or of input ``key``'s text-model matrix: exact top-k lists reading a
        quarter of the bytes. ``build=True`` makes it (a serving process, at warm-up; for
        ``MIN_ROWS`` to ``MAX_ROWS`` rows); until then ``None``, and callers score in float32.
        A copy saved with the generation (:meth:`save_int8`) is read rather than made again."""
        if ("int8", key) not in self._memo and not (build and MIN_ROWS <= len(self) <= MAX_ROWS):
            return None

        def make() -> Int8TopK | None:
            X = self.vectors if key is None else self.text(key)[0]
            if not np.isfinite(X).all():       # nothing to bound: these lists stay float32
                log.warning("%s: non-finite values in %s; no int8 copy", self.name, key or "the fused vectors")
                return None
            ix = Int8TopK.saved_or_new(X, self.folder / INT8_DIR / int8_file(key) if self.folder else None)
            if key is None:
                ix.moments()                   # for the blend (toplists.blend_top): 23 ms for Last.fm
            return ix
        return self.memo(("int8", key), make)  # type: ignore[no-any-return]

    def save_int8(self, folder: Path) -> None:
        """Save the int8 copies made so far into generation folder ``folder`` (``int8/``), so
        that a process loading the generation reads them (a follower taking on a compaction)."""
        made = {k[1]: ix for k, ix in list(self._memo.items())
                if isinstance(k, tuple) and k[0] == "int8" and ix is not None}
        if made:
            (folder / INT8_DIR).mkdir(exist_ok=True)
        for key, ix in made.items():
            ix.save(folder / INT8_DIR / int8_file(key))

    def warm_int8(self, text_key: str | None) -> None:
        """Make the int8 copies of the fused vectors and of input ``text_key``'s text-model
        matrix (``None``: none) that :meth:`int8` serves."""
        for key in (None, text_key) if text_key is not None else (None,):
            self.int8(key, build=True)

    def warmed_like(self, other: "Generation") -> "Generation":
        """This generation with the int8 copies ``other`` has (compaction: the new generation
        serves as fast as the one it replaces); returns itself."""
        for key in [k[1] for k in list(other._memo) if isinstance(k, tuple) and k[0] == "int8"]:
            self.int8(key, build=True)
        return self

    def matvec(self, key: str | None, q: np.ndarray) -> np.ndarray:
        """``X @ q`` over the fused vectors (``key=None``) or the text-model matrix of input
        ``key`` (:meth:`text`), shared with concurrent readers (:class:`SharedProduct`)."""
        def make() -> SharedProduct:
            return SharedProduct(self.vectors if key is None else self.text(key)[0])
        return self.memo(("matvec", key), make)(q)  # type: ignore[no-any-return]

    def filters(self, columns: tuple[str, ...]) -> FilterEngine:
        """A filter engine over the base metadata with ``columns`` (those only delta rows have
        are empty here)."""
        def make() -> FilterEngine:
            missing = [c for c in columns if c not in self.meta.columns]
            return FilterEngine(self.meta.assign(**{c: None for c in missing}) if missing else self.meta)
        return self.memo(("filters", columns), make)

    def schema(self) -> pd.DataFrame:
        """Rows of the metadata that hold, for every column, its first 50 non-null values in
        order: what the column-type checks look at (``column.dropna().head(n)``)."""
        def make() -> pd.DataFrame:
            keep: set[int] = set()
            for c in self.meta.columns:
                keep.update(np.flatnonzero(self.meta[c].notna().to_numpy())[:50].tolist())
            return self.meta.iloc[sorted(keep)]
        return self.memo("schema", make)


class SharedProduct:
    """``X @ q`` for many threads: the queries that arrive while one product runs are answered
    together by the next, as one ``Q @ X.T``. Scoring a catalog is memory-bound (``X`` is read
    once per product), so a batch of concurrent queries costs about as much as one; a query
    alone gets the plain ``X @ q``. (A batched row may differ from ``X @ q`` in the last bit:
    the BLAS kernels sum in another order.)"""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self._run = threading.Lock()          # held while a product runs
        self._queue_lock = threading.Lock()
        self._queue: list[list[Any]] = []      # [query, result, error] per waiting caller

    def __call__(self, q: np.ndarray) -> np.ndarray:
        mine: list[Any] = [q, None, None]
        with self._queue_lock:
            self._queue.append(mine)
        with self._run:                        # whoever runs answers everything queued so far
            if mine[1] is None and mine[2] is None:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    if len(batch) == 1:
                        batch[0][1] = self.X @ batch[0][0]
                    else:
                        for b, row in zip(batch, np.stack([b[0] for b in batch]) @ self.X.T):
                            b[1] = row
                except BaseException as e:  # noqa: BLE001 - handed to every waiter
                    for b in batch:
                        b[2] = e
        if mine[2] is not None:
            raise mine[2]
        return mine[1]  # type: ignore[no-any-return]


def descriptions(meta: pd.DataFrame) -> list[str]:
    """Each item's description (its name where it has none)."""
    n = len(meta)
    texts = meta["description"].tolist() if "description" in meta else [None] * n
    names = meta["name"].tolist() if "name" in meta else [None] * n
    return [t if isinstance(t, str) else (m if isinstance(m, str) else "") for t, m in zip(texts, names)]


def _field_text(v: Any) -> str:
    """A field's text; a list of tags joined with commas, so that no word pair
    (:func:`~talkrec.index.analysis.tokenize_text`) spans two tags."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(x for x in v if isinstance(x, str))
    return ""


def lexical_texts(meta: pd.DataFrame, fields: Sequence[str] = ("description",)) -> list[str]:
    """The text BM25 indexes per item: ``fields`` joined in order - ``description`` is the
    item's description (its name where the catalog has none); any other field is a metadata
    column whose string, or list of strings (a tag category: every tag, not only the ones the
    description has room for), is added. A missing column or value adds nothing; the fields are
    joined with ``" | "`` (no word pair spans two)."""
    parts = [descriptions(meta) if f == "description" else
             ([_field_text(v) for v in meta[f].tolist()] if f in meta else [""] * len(meta)) for f in fields]
    return [" | ".join(p for p in row if p) for row in zip(*parts)] if parts else [""] * len(meta)


def row_text(row: Mapping[str, Any], fields: Sequence[str] = ("description",)) -> str:
    """:func:`lexical_texts` of one metadata row (a dict)."""
    out = []
    for f in fields:
        t = row.get("description") if f == "description" else row.get(f)
        if f == "description" and not isinstance(t, str):
            t = row.get("name")
        out.append(_field_text(t))
    return " | ".join(p for p in out if p)


class DeltaRows:
    """Rows written since the generation, in append-only buffers.

    ``append`` writes rows ``n .. n+k-1`` (growing the buffers by doubling: the old buffers
    stay valid for the snapshots that use them); a snapshot of ``m`` rows reads only rows
    ``< m``. ``ids`` and ``meta`` are lists of the rows' ids and metadata dicts; the BM25
    postings (token -> rows, term frequencies) are appended in row order, so a snapshot
    cuts each at ``m``."""

    def __init__(self, dim: int, input_shapes: Mapping[str, tuple[int, ...]], capacity: int = 64) -> None:
        self.dim = dim
        self.input_shapes = dict(input_shapes)
        self.n = 0
        self.version = 0                               # writes made on these rows (snapshots check it)
        self.vectors = np.zeros((capacity, dim), dtype=np.float32)
        self.inputs = {k: np.full((capacity,) + s, np.nan, dtype=np.float32) for k, s in self.input_shapes.items()}
        self.ids: list[str] = []
        self.meta: list[dict[str, Any]] = []
        self.doc_len: list[int] = []
        self.postings: dict[str, tuple[list[int], list[int]]] = {}
        self.columns: list[tuple[str, int]] = []     # (metadata key, first row that has it)
        self.samples: dict[str, list[int]] = {}       # key -> the rows of its first 50 values that are not missing
        self._text: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}   # key -> text_matrix rows so far
        self._per_row: dict[Any, np.ndarray] = {}          # per_row's caches
        self._lock = threading.Lock()                   # guards text() and per_row()'s caches

    def _grow(self, need: int) -> None:
        cap = len(self.vectors)
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        V = np.zeros((new_cap, self.dim), dtype=np.float32)
        V[:self.n] = self.vectors[:self.n]
        inputs = {}
        for k, X in self.inputs.items():
            Y = np.full((new_cap,) + X.shape[1:], np.nan, dtype=np.float32)
            Y[:self.n] = X[:self.n]
            inputs[k] = Y
        self.vectors, self.inputs = V, inputs          # swapped only when complete

    def append(self, ids: Sequence[str], vectors: np.ndarray, meta: Sequence[Mapping[str, Any]],
               inputs: Mapping[str, np.ndarray], tokens: Sequence[Sequence[str]]) -> int:
        """Append rows; returns the first new row (relative to the delta)."""
        start, k = self.n, len(ids)
        self._grow(start + k)
        self.vectors[start:start + k] = vectors
        for key, X in self.inputs.items():
            rows = inputs.get(key)
            X[start:start + k] = np.nan if rows is None else rows
        for j, toks in enumerate(tokens):
            for t, tf in Counter(toks).items():
                rows_tf = self.postings.setdefault(t, ([], []))
                rows_tf[0].append(start + j)
                rows_tf[1].append(tf)
            self.doc_len.append(len(toks))
        for j, row in enumerate(meta):
            for c, v in row.items():
                if c not in self.samples:
                    self.columns.append((c, start + j))
                rows = self.samples.setdefault(c, [])
                if len(rows) < 50 and not is_null(v):
                    rows.append(start + j)
        self.ids.extend(ids)
        self.meta.extend(dict(m) for m in meta)
        self.n = start + k
        return start

    def text(self, key: str, m: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`text_matrix` of rows ``< m`` of input ``key``, extended as rows arrive (rows
        already done never change)."""
        with self._lock:
            T, has, done = self._text.get(key, (np.zeros((0, 0), np.float32), np.zeros(0, bool), 0))
            if done < m:
                Tn, hn = text_matrix(self.inputs[key][done:m])
                if len(T) < m:
                    cap = max(m, 2 * len(T), 64)
                    T2, h2 = np.zeros((cap, Tn.shape[1]), np.float32), np.zeros(cap, bool)
                    if done:
                        T2[:done], h2[:done] = T[:done], has[:done]
                    T, has = T2, h2
                T[done:m], has[done:m] = Tn, hn
                self._text[key] = (T, has, m)
            return T[:m], has[:m]

    def per_row(self, key: Any, m: int, of_ids: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        """``of_ids(ids)`` (one int64 per id) for rows ``< m``, made once per row: extended as
        rows arrive, cached under ``key`` (e.g. each row's position in a model's item list:
        a read after a write looks up only the rows written since)."""
        with self._lock:
            done = self._per_row.get(key, np.zeros(0, np.int64))
            if len(done) < m:
                done = np.concatenate([done, np.asarray(of_ids(self.ids[len(done):m]), dtype=np.int64)])
                self._per_row[key] = done
            return done[:m]

    def column_names(self, m: int) -> list[str]:
        """The metadata keys rows ``< m`` have, in order of first appearance."""
        return [c for c, first in self.columns if first < m]

    def posting(self, token: str, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``< m`` containing ``token`` and its frequency in each."""
        p = self.postings.get(token)
        if p is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        rows, tfs = p
        cut = bisect.bisect_left(rows, m)
        return np.asarray(rows[:cut], dtype=np.int64), np.asarray(tfs[:cut], dtype=np.float64)

    def bm25(self, lexical: LexicalIndex, query_tokens: Sequence[str] | Mapping[str, int], m: int) -> np.ndarray:
        """BM25 scores of rows ``< m`` for the query, with the base corpus' statistics (idf,
        average length): a delta row scores as it would inside the base."""
        counts = Counter(query_tokens)           # a repeated query term counts again, as in bm25s (or: counts)
        if not counts or not m:
            return np.zeros(m)
        return lexical.outside_scores(counts, lambda t: self.posting(t, m),
                                      np.asarray(self.doc_len[:m], dtype=np.float64))[0]
