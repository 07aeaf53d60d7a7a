"""BM25 over item descriptions: the lexical list of hybrid search.

Template queries that name a genre or a place are matched literally far better by BM25 than
by any embedding (docs/evaluation.md: movie search BM25 0.696 vs MiniLM 0.351), and the
reciprocal rank fusion of the fused space, the text model and BM25 is the best search system
measured on both datasets. The evaluation's BM25 baseline is this class.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ranking import top_k


class LexicalIndex:
    """BM25 (``bm25s``: English stopwords, lower-cased word tokens, no stemming) over texts.

    Parameters
    ----------
    texts:
        One text per item, in item order (an empty text matches nothing).
    k1, b:
        The BM25 parameters.
    """

    def __init__(self, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        import bm25s

        self._bm25s = bm25s
        self.k1, self.b = float(k1), float(b)
        self.n = len(texts)
        docs = [t if isinstance(t, str) else "" for t in texts]
        self._model = bm25s.BM25(k1=self.k1, b=self.b)
        if self.n:
            self._model.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)

    def __len__(self) -> int:
        return self.n

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every item for ``query`` (float64, 0 where no query term occurs)."""
        if not self.n:
            return np.zeros(0)
        toks = self._bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        if not toks:
            return np.zeros(self.n)
        return np.asarray(self._model.get_scores(toks), dtype=np.float64)

    def search(self, queries: Sequence[str], k: int, *, exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """Top-``k`` item positions per query, best first (``-1`` where fewer items match a term;
        ties by position)."""
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for qi, q in enumerate(queries):
            s = self.scores(q)
            order = top_k(s, k, exclude=exclude[qi] if exclude is not None else None, allowed=s > 0)
            out[qi, :len(order)] = order
        return out
