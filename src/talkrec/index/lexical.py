"""BM25 over item descriptions: the lexical list of hybrid search.

Template queries that name a genre or a place are matched literally far better by BM25 than
by any embedding (docs/evaluation.md: movie search BM25 0.696 vs MiniLM 0.351), and the
reciprocal rank fusion of the fused space, the text model and BM25 is the best search system
measured on both datasets. The evaluation's BM25 baseline is this class.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..ranking import top_k

#: the statistics saved next to bm25s' own files
_STATS = "talkrec_bm25.json"


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
        self.avgdl = 0.0
        if self.n:
            tok = bm25s.tokenize(docs, stopwords="en", show_progress=False)
            self.avgdl = float(np.mean([len(d) for d in tok.ids]))
            self._model.index(tok, show_progress=False)

    def __len__(self) -> int:
        return self.n

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the index into folder ``path`` (bm25s' arrays + vocabulary, and the corpus
        statistics), so that no process has to tokenize the corpus again."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.n:
            self._model.save(str(path), show_progress=False)
        (path / _STATS).write_text(json.dumps({"n": self.n, "avgdl": self.avgdl, "k1": self.k1, "b": self.b}))

    @classmethod
    def load(cls, path: str | Path) -> "LexicalIndex":
        import bm25s

        path = Path(path)
        stats = json.loads((path / _STATS).read_text())
        self = cls.__new__(cls)
        self._bm25s = bm25s
        self.k1, self.b, self.n, self.avgdl = float(stats["k1"]), float(stats["b"]), int(stats["n"]), float(stats["avgdl"])
        self._model = (bm25s.BM25.load(str(path), show_progress=False, verbosity=0) if self.n
                       else bm25s.BM25(k1=self.k1, b=self.b))
        return self

    # ------------------------------------------------------------------ statistics
    @staticmethod
    def tokenize(texts: Sequence[str]) -> list[list[str]]:
        """The BM25 tokens of each text (lower-cased words, English stopwords removed)."""
        import bm25s

        docs = [t if isinstance(t, str) else "" for t in texts]
        return [list(d) for d in bm25s.tokenize(docs, stopwords="en", return_ids=False, show_progress=False)]

    def idf(self, tokens: Sequence[str]) -> np.ndarray:
        """Lucene idf of each token in this corpus: ``ln(1 + (N - df + 0.5) / (df + 0.5))``
        (``df = 0`` for a token the corpus does not have)."""
        vocab = getattr(self._model, "vocab_dict", None) or {}
        indptr = self._model.scores["indptr"] if self.n else None
        df = np.array([float(indptr[vocab[t] + 1] - indptr[vocab[t]]) if t in vocab else 0.0 for t in tokens])
        return np.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def term_weight(self, tf: np.ndarray, doc_len: np.ndarray) -> np.ndarray:
        """Lucene BM25 term-frequency part, ``tf / (tf + k1 (1 - b + b |d| / avgdl))``, with
        this corpus' average document length (documents scored as if they were in it)."""
        avgdl = self.avgdl if self.avgdl > 0 else 1.0
        return tf / (tf + self.k1 * (1.0 - self.b + self.b * doc_len / avgdl))

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
