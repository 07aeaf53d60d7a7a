"""The names list of hybrid search (``search.hybrid_name_weight``): BM25 over item names alone.

An item's name in its BM25 text ties a descriptive query to the items whose name shares a word
("animated movie for kids" -> *New Kids Nitro*; docs/evaluation.md, "Names as a list of their
own"), while without it a query that *is* a name ("toy story") finds nothing by words. With
``search.bm25_fields`` that leave the description (and so the name) out, this list gives names
their own, separately weighted place in the RRF: a query that names an item puts it near the
top, a query of tags is not pulled toward names that share a word.

Names are scored with Lucene's BM25 defaults (k1 1.2, b 0.75: a shorter name that matches is the
closer one, "Toy Story" before "Toy Story 2"), tokenized as the space's BM25 index tokenizes
(word pairs, stemming). The base rows' index is made once per generation; rows written since are
tokenized once per snapshot and scored with the base names' statistics.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..index.analysis import bm25_params
from ..index.lexical import LexicalIndex
from ..ranking import top_k_among
from .hits import base_names

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from .core import Space

#: Lucene's BM25 defaults, for names (short texts whose length does say how close a match is)
NAME_K1, NAME_B = 1.2, 0.75


def name_weight(space: "Space") -> float:
    """``search.hybrid_name_weight`` (0, the default: no names list)."""
    return float(space.config.get("search", {}).get("hybrid_name_weight", 0.0) or 0.0)


def name_index(space: "Space", snap: "Snapshot") -> LexicalIndex:
    """BM25 over the names of ``snap``'s base rows, tokenized as the space's BM25 index is (once
    per generation and tokenization)."""
    # a setting not given: as the generation's saved index
    pairs, stemmer, stop = bm25_params(space.config.get("search")).given_over(snap.gen.lexical().settings) \
        .tokenization()
    return snap.gen.memo(("names", pairs, stemmer, stop),  # type: ignore[no-any-return]
                         lambda: LexicalIndex([n if isinstance(n, str) else "" for n in base_names(snap)],
                                              k1=NAME_K1, b=NAME_B, fields=("name",), pairs=pairs,
                                              stemmer=stemmer, stopwords=stop))


def name_scores(space: "Space", snap: "Snapshot", text: str) -> np.ndarray:
    """BM25 score of every row's name for ``text`` (float64) where the two cover each other
    (:func:`_covers`): every word of the query is in the name ("lord of the rings" for *The Lord
    of the Rings: The Two Towers*), or every word of the name is in the query and makes most of
    it ("toy story" for *Toy Story*, not *The Toy*); 0 elsewhere (a query of tags that shares a
    word with a name: "films about war" and *Casualties of War*), for dead rows, and for names
    without a query word. Rows written since the generation score with its names' statistics."""
    idx = name_index(space, snap)
    query = idx.tokenize([text.strip()])[0]
    distinct = set(query)
    s, hit = idx.token_scores(query), np.zeros(idx.n, dtype=np.int64)      # the query tokenized once
    for t in distinct:                                   # how many of the query's terms each name has
        j = idx.vocab.get(t)
        if j is not None and j < len(idx.indptr) - 1:
            hit[idx.indices[idx.indptr[j]:idx.indptr[j + 1]]] += 1
    own = snap.gen.memo(("name_terms", *idx.settings.tokenization()),
                        lambda: np.bincount(idx.indices, minlength=idx.n))   # each name's distinct terms
    s = np.where(_covers(hit, own, len(distinct)), s, 0.0)
    if snap.m:
        s = np.concatenate([s, _delta_scores(idx, snap, query)])
    return np.where(snap.live, s, 0.0)


def _delta_scores(idx: LexicalIndex, snap: "Snapshot", query: list[str]) -> np.ndarray:
    postings, lens, own = snap.memo(("name_postings", *idx.settings.tokenization()), lambda: _postings(idx, snap))
    counts = Counter(query)
    out, hit = idx.outside_scores(counts, postings.get, lens)
    return np.where(_covers(hit, own, len(counts)), out, 0.0)


def _covers(hit: np.ndarray, own: np.ndarray, n_query: int) -> np.ndarray:
    """Where a name with ``own`` distinct terms, ``hit`` of them the query's, and a query of
    ``n_query`` distinct terms cover each other: the query's terms, two or more, are all in the
    name (one word is a tag as often as a title: "comedy" is no query for *The King of Comedy*),
    or the name's are all in the query and make more than half of it (a one-word title is no
    answer to a query of several words that merely has it: *Kids* for "animated movie for kids")."""
    return (hit > 0) & (((hit == n_query) & (n_query >= 2)) | ((hit == own) & (2 * hit > n_query)))


def _postings(idx: LexicalIndex, snap: "Snapshot") -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray,
                                                             np.ndarray]:
    """Per token, the delta rows whose name has it and its count there; each delta name's length
    and number of distinct tokens."""
    toks = idx.tokenize([_name(snap.value(snap.n0 + j, "name")) for j in range(snap.m)])
    acc: dict[str, tuple[list[int], list[int]]] = {}
    for j, tk in enumerate(toks):
        for t, c in Counter(tk).items():
            rows, tfs = acc.setdefault(t, ([], []))
            rows.append(j)
            tfs.append(c)
    lens = np.array([len(tk) for tk in toks], dtype=np.float64)
    own = np.array([len(set(tk)) for tk in toks], dtype=np.int64)
    return ({t: (np.array(r, dtype=np.int64), np.array(c, dtype=np.float64)) for t, (r, c) in acc.items()},
            lens, own)


def _name(v: Any) -> str:
    return v if isinstance(v, str) else ""


def name_top(space: "Space", snap: "Snapshot", text: str, allowed: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` allowed rows whose names best match ``text`` (score > 0), best first."""
    s = name_scores(space, snap, text)
    return top_k_among(s, np.flatnonzero((s > 0) & allowed), k)
