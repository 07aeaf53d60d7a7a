"""Text search beyond the fused space: BM25 over the descriptions, the text model's own
space, and their reciprocal rank fusion with the fused space (``mode="hybrid"``).

Each function returns ``(item_id, score)`` pairs, best first, ``offset`` skipped; the Space
turns them into hits."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import InputError
from ..index.analysis import BM25Settings
from ..index.filters import Where
from ..index.segments import row_text
from ..limits import check_page
from ..ranking import rrf_scores, top_k_among, top_then
from .hits import base_names
from .namelist import name_top, name_weight

if TYPE_CHECKING:
    from ..index.lexical import LexicalIndex
    from ..index.snapshot import Snapshot
    from .core import Space

SEARCH_MODES = ("hybrid", "multi", "text", "lexical")


def check_mode(mode: Any) -> str:
    """``mode`` when it is one of :data:`SEARCH_MODES`, else :class:`InputError` (field ``mode``)."""
    if mode not in SEARCH_MODES:
        raise InputError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}", field="mode")
    return str(mode)


class LexicalView:
    """BM25 over the descriptions of one snapshot's items: :meth:`scores` per row (0 for
    deleted rows; items written since the generation score with its corpus statistics)."""

    def __init__(self, snap: "Snapshot", settings: BM25Settings = BM25Settings()) -> None:
        self.snap, self.settings = snap, settings

    def __len__(self) -> int:
        return self.snap.n_rows

    def scores(self, text: str) -> np.ndarray:
        return self.snap.lexical_scores(text, self.settings)

    def generation_index(self) -> "LexicalIndex":
        """The generation's BM25 index with these settings (:meth:`Generation.lexical`)."""
        return self.snap.gen.lexical(self.settings)


_side: ThreadPoolExecutor | None = None
_side_lock = threading.Lock()
_side_free = threading.Semaphore(2)
_running = 0                          # text / hybrid searches and similar calls running in this process now
_running_lock = threading.Lock()


class _Later:
    """``fn()`` on the caller's thread, when its result is asked for (a side thread's
    :class:`~concurrent.futures.Future` has the same ``result()``)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def result(self) -> Any:
        return self.fn()


def beside(fn: Callable[[], Any]) -> "Future[Any] | _Later":
    """``fn()`` on one of two threads beside the caller's (made on first use, shared by every
    Space in the process) when this is the only text search running and a thread is free;
    else on the caller's thread when its result is asked for. A hybrid query's lists do not
    depend on each other, and numpy's products release the GIL: alone on two cores, a query
    costs about its longest list rather than their sum (docs/service.md). Beside other
    searches the cores are busy already, and handing lists to threads only adds the CPU of
    the hand-over (~0.5 ms a hybrid query), so each query scores its own lists."""
    global _side
    if _running > 1 or not _side_free.acquire(blocking=False):
        return _Later(fn)
    if _side is None:
        with _side_lock:
            if _side is None:
                _side = ThreadPoolExecutor(2, thread_name_prefix="talkrec-search")
    f = _side.submit(fn)
    f.add_done_callback(lambda _: _side_free.release())
    return f


@contextmanager
def counted() -> Iterator[None]:
    """Count a text search (or a similar call) as running while the block runs (see :func:`beside`)."""
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


def check_text(text: Any) -> None:
    """:class:`InputError` (field ``query``) unless ``text`` is a str with a word in it."""
    if not isinstance(text, str):
        raise InputError(f"query must be a str, got {type(text).__name__} {text!r:.60}", field="query")
    if not text.strip():
        raise InputError("query text is empty", field="query")


def lexical_top(space: "Space", text: str, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` allowed rows of highest BM25 score for ``text`` (rows it matches: score > 0),
    best first, and their scores."""
    s = space.lexical_index().scores(text.strip())
    top = top_k_among(s, np.flatnonzero((s > 0) & allowed), k)
    return top, s[top]


def lexical_neighbors(space: "Space", p: int, depth: int, allowed: np.ndarray, max_df: float = 1.0,
                      max_terms: int = 0) -> np.ndarray:
    """The rows most like row ``p`` by BM25, best first, ``p`` left out (``similar.lexical_weight``,
    :func:`.strategies.similar_rows`): the row's own BM25 text (the fields the index holds,
    tokenized as it tokenizes) less its name is the query (a name's words - "the", "black" -
    tie unrelated items), without the terms more than ``max_df`` of the items have (the words
    every description shares weigh little and cost most of the scoring), and
    with ``max_terms`` only that many of its terms, those of the largest count x idf (Lucene's
    MoreLikeThis; a long tag list costs in proportion to its terms)."""
    view = space.lexical_index()
    snap = view.snap
    lex = view.generation_index()
    got = lex.doc_terms(p) if p < snap.n0 else None            # a built row: its terms as indexed
    if got is None:
        text = row_text({f: snap.value(p, f) for f in (*lex.fields, "name")}, lex.fields)
        got = _counted_terms(lex.tokenize([text])[0])
    terms, counts = got
    # its name's words say little of its peers (a base row's from a list: a pandas lookup is 50 us)
    name = base_names(snap)[p] if p < snap.n0 else snap.value(p, "name")
    has_name = "description" in lex.fields or "name" in lex.fields    # else its words are tags of its own
    less = Counter(lex.tokenize([name])[0]) if isinstance(name, str) and has_name else Counter()
    counts = counts - np.array([less.get(t, 0) for t in terms], dtype=np.int64)
    terms, counts = [t for t, c in zip(terms, counts) if c > 0], counts[counts > 0]
    df = lex.doc_freq(terms)
    keep = np.flatnonzero(df <= max_df * lex.n) if max_df < 1.0 else np.arange(len(terms))
    if 0 < max_terms < len(keep):
        w = counts[keep] * lex.idf([terms[j] for j in keep])
        keep = keep[np.lexsort((keep, -w))[:max_terms]]
    s = snap.lexical_term_scores(lex, [terms[j] for j in keep], counts[keep])
    s[p] = 0.0
    return top_k_among(s, np.flatnonzero((s > 0) & allowed), depth)    # a few thousand rows of 17k


def _counted_terms(tokens: Sequence[str]) -> tuple[list[str], np.ndarray]:
    c = Counter(tokens)
    return list(c), np.fromiter(c.values(), dtype=np.int64, count=len(c))


def lexical_search(space: "Space", text: str, k: int, where: Where, offset: int) -> list[tuple[str, float]]:
    """BM25 over the item descriptions."""
    check_page(k, offset)
    check_text(text)
    snap = space.index
    top, s = lexical_top(space, text, snap.mask(where), k + offset)
    return snap.pairs(top[offset:], s[offset:])


def text_search(space: "Space", text: str, k: int, where: Where, offset: int, mode: str) -> list[tuple[str, float]]:
    """``mode="text"``: cosine in the text model's own space; ``"hybrid"``: reciprocal rank
    fusion of the fused space, the text model (weight ``search.hybrid_text_weight``) and
    BM25 (weight ``search.hybrid_bm25_weight``; 0 leaves it out). Each list is read to
    ``search.rrf_depth`` whatever ``k``: past the rows they reach, the fused space's order
    goes on, RRF score 0 (:func:`~talkrec.ranking.top_then`), so a page never depends on ``k``."""
    check_page(k, offset)
    check_text(text)
    with counted():
        return _text_search(space, text, k, where, offset, mode)


def _text_search(space: "Space", text: str, k: int, where: Where, offset: int, mode: str) -> list[tuple[str, float]]:
    snap = space.index
    allowed = snap.mask(where)
    need = k + offset
    if mode == "text":
        q_raw = space.text_encoder().encode(text.strip(), kind="query")
        top, sims = snap.text_top(space.config["input_files"]["text"], q_raw, need, allowed)
        return snap.pairs(top[offset:], sims[offset:])
    lists, c, q_multi = hybrid_lists(space, snap, text, allowed)
    fused = rrf_scores([r for r, _ in lists.values()], snap.n_rows, c=c, weights=[w for _, w in lists.values()])
    top = top_then(fused, np.flatnonzero((fused > 0) & allowed), need,     # the rows the lists reach, then
                   lambda n: snap.top_rows(q_multi, n, allowed)[0])[offset:]   # the fused space's order
    return snap.pairs(top, fused[top])


def hybrid_lists(space: "Space", snap: "Snapshot", text: str,
                 allowed: np.ndarray) -> tuple[dict[str, tuple[np.ndarray, float]], float, np.ndarray]:
    """The lists hybrid search fuses for ``text``, by name, each its rows best first (read to
    ``search.rrf_depth``) and its weight: ``fused`` (the query projected into the fused space),
    ``text`` (the text model's own space) and, with ``search.hybrid_bm25_weight`` > 0,
    ``lexical`` (BM25); and the RRF constant and the fused-space query vector."""
    key = space.config["input_files"]["text"]
    scfg = space.config.get("search", {})
    depth = int(scfg.get("rrf_depth", 1000))
    w_bm25, w_name = float(scfg.get("hybrid_bm25_weight", 4.0)), name_weight(space)
    # BM25 (and the names' BM25) needs no query vector: alone, it runs beside the query's forward pass
    f_lex = beside(lambda: (lexical_top(space, text, allowed, depth)[0] if w_bm25 > 0 else None,
                            name_top(space, snap, text, allowed, depth) if w_name > 0 else None)) \
        if w_bm25 > 0 or w_name > 0 else None
    q_raw = space.text_encoder().encode(text.strip(), kind="query")
    q_multi = space.fusion.project("text", q_raw)
    f_multi = beside(lambda: snap.top_rows(q_multi, depth, allowed)[0])
    text_list = snap.text_top(key, q_raw, depth, allowed)[0]
    lists = {"fused": (f_multi.result(), 1.0), "text": (text_list, float(scfg.get("hybrid_text_weight", 1.0)))}
    lex_list, name_list = f_lex.result() if f_lex is not None else (None, None)
    if lex_list is not None:
        lists["lexical"] = (lex_list, w_bm25)
    if name_list is not None:
        lists["name"] = (name_list, w_name)
    return lists, float(scfg.get("rrf_c", 60.0)), q_multi


#: what the scores of each search mode are
MODE_SCORES = {"multi": "cosine", "text": "text_cosine", "lexical": "bm25", "hybrid": "rrf"}


def search_score_kind(space: "Space", mode: str | None) -> str:
    """What the scores of ``space.search(..., mode=mode)`` are: the mode asked for, else the
    space's default; the fused space's cosine where the space has no text inputs to blend."""
    used = mode or space.config.get("search", {}).get("mode", "hybrid")
    if used in ("text", "hybrid") and "text" not in space.config["input_files"]:
        used = "multi"
    return MODE_SCORES.get(used, "cosine")
