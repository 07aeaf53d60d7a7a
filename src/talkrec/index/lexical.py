"""BM25 over item descriptions (and, with ``search.bm25_fields``, the items' tag fields): the
lexical list of hybrid search.

Template queries that name a genre or a place are matched literally far better by BM25 than
by any embedding (docs/evaluation.md: movie search BM25 0.696 vs MiniLM 0.351), and the
reciprocal rank fusion of the fused space, the text model and BM25 is the best search system
measured on both datasets. The evaluation's BM25 baseline is this class.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..ranking import top_k
from .analysis import DEFAULT_FIELDS, BM25Settings, stop_set, tokenize_text


def term_counts(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(token, document, tf, lengths)`` of token-id documents: one entry per distinct
    (token, document) pair, sorted by token then document, with its count; and each
    document's length in tokens (int64 throughout)."""
    n = len(ids)
    stride = max(n, 1)                                          # key = token * stride + document
    lens = np.fromiter((len(d) for d in ids), dtype=np.int64, count=n)
    flat = np.fromiter((t for d in ids for t in d), dtype=np.int64, count=int(lens.sum()))
    keys, tf = np.unique(flat * stride + np.repeat(np.arange(n, dtype=np.int64), lens), return_counts=True)
    return keys // stride, keys % stride, tf.astype(np.int64), lens


def bm25_columns(tok: np.ndarray, row: np.ndarray, tf: np.ndarray, lens: np.ndarray, n_vocab: int, k1: float,
                 b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The BM25 score matrix from :func:`term_counts`' entries (sorted by token, then
    document) and the documents' lengths: ``(data, indices, indptr, avgdl)``, CSC with one
    column per token id (``indptr`` of ``n_vocab + 1``); ``data = float32(idf * tf / (tf + k1
    (1 - b + b |d| / avgdl)))`` with the Lucene ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` in
    float32, as ``bm25s.BM25(k1, b).index`` makes it (Lucene variant), to the bit.

    bm25s builds it in a Python loop over the documents (0.24 s for 17,632 descriptions, the
    GIL held all along, which a compaction did while the server answered reads); this takes
    0.04 s, mostly in numpy (``tests/core/test_index.py`` checks it against bm25s)."""
    n = len(lens)
    avgdl = lens.mean() if n else np.float64(0.0)               # a numpy float64, as bm25s' (its arithmetic)
    df = np.bincount(tok, minlength=n_vocab)
    idf = np.zeros(n_vocab, np.float32)
    for t in np.flatnonzero(df).tolist():                       # math.log per token, as bm25s
        idf[t] = math.log(1 + (n - int(df[t]) + 0.5) / (int(df[t]) + 0.5))
    tf32 = tf.astype(np.float32)
    tfc = tf32 / (k1 * ((1 - b) + b * lens[row].astype(np.float64) / avgdl) + tf32)
    indptr = np.zeros(n_vocab + 1, np.int64)
    np.cumsum(df, out=indptr[1:])
    return (idf[tok] * tfc).astype(np.float32), row.astype(np.int32), indptr, float(avgdl)


def _add_empty_token(vocab: dict[str, int]) -> None:
    """bm25s' empty token: a vocabulary entry without a column, after the last one."""
    if "" not in vocab:
        vocab[""] = max(vocab.values(), default=-1) + 1


class LexicalIndex:
    """BM25 (bm25s' Lucene variant: English stopwords, lower-cased word tokens, stemmed where
    ``stemmer`` says) over texts. bm25s tokenizes plain words (with word pairs or a stemmer,
    :func:`tokenize_text` does); the index
    (:func:`bm25_columns`), scoring, saving and loading are numpy only.

    Parameters
    ----------
    texts:
        One text per item, in item order (an empty text matches nothing).
    k1, b:
        The BM25 parameters (``None``: these defaults, bm25s' own).
    fields:
        What the texts were made of (:func:`talkrec.index.segments.lexical_texts`); kept with
        the index so that a space knows when its settings ask for another one.
    pairs:
        Also index adjacent word pairs (:func:`tokenize_text`); queries are tokenized the same
        way. Kept with the index, as ``fields`` is.
    stemmer:
        A Snowball language whose stems are the terms (``""``: the words themselves); queries
        are stemmed the same way. Kept with the index, as ``fields`` is.
    stopwords:
        Words that are no terms beside the English stopwords (a space's ``bm25_stopwords``);
        removed from queries too. Kept with the index, as ``fields`` is.
    """

    def __init__(self, texts: Sequence[str], *, k1: float | None = 1.5, b: float | None = 0.75,
                 fields: Sequence[str] | None = DEFAULT_FIELDS, pairs: bool | None = False,
                 stemmer: str | None = "", stopwords: Sequence[str] | None = ()) -> None:
        self.k1, self.b = float(1.5 if k1 is None else k1), float(0.75 if b is None else b)
        self.fields = tuple(DEFAULT_FIELDS if fields is None else fields)
        self.pairs, self.stemmer = bool(pairs), str(stemmer or "")
        self.stopwords = tuple(sorted({str(w).lower() for w in stopwords or ()}))
        self.stop = stop_set(self.stopwords)          # every word that is no term
        self.n = len(texts)
        self.avgdl = 0.0
        self.vocab: dict[str, int] = {}
        self.data, self.indices = np.zeros(0, np.float32), np.zeros(0, np.int32)
        self.indptr = np.zeros(1, np.int32)
        # term count per entry and length per document (None: an index saved without them)
        self.tf: np.ndarray | None = np.zeros(0, np.int32)
        self.doc_len: np.ndarray | None = np.zeros(0, np.int32)
        self._by_doc: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None = None   # doc_terms' inverse
        if self.n:
            docs = [t if isinstance(t, str) else "" for t in texts]
            if self.pairs or self.stemmer or self.stopwords:    # bm25s knows words and its stopwords only
                ids = [[self.vocab.setdefault(t, len(self.vocab)) for t in d] for d in self.tokenize(docs)]
            else:
                import bm25s

                tok = bm25s.tokenize(docs, stopwords="en", show_progress=False)
                self.vocab, ids = dict(tok.vocab), tok.ids
            col, row, tf, lens = term_counts(ids)
            self.data, self.indices, self.indptr, self.avgdl = bm25_columns(col, row, tf, lens, len(self.vocab),
                                                                            self.k1, self.b)
            self.tf, self.doc_len = tf.astype(np.int32), lens.astype(np.int32)
            _add_empty_token(self.vocab)

    @classmethod
    def merged(cls, base: "LexicalIndex", keep: np.ndarray, added: Mapping[str, tuple[np.ndarray, np.ndarray]],
               added_len: np.ndarray, *, k1: float | None = None, b: float | None = None) -> "LexicalIndex":
        """The index of ``base``'s documents ``keep`` (ascending positions; they become documents
        ``0..len(keep)-1``) followed by new documents, without tokenizing any text: the same
        scores, to the bit, as an index built from the texts of those documents.

        ``added``: per token (:meth:`tokenize`'s), the new documents that have it (positions
        ``0..len(added_len)-1``) and its count in each; ``added_len``: each new document's
        length in tokens. ``base`` must have its term counts (:attr:`has_counts`)."""
        if base.tf is None or base.doc_len is None:
            raise ValueError("this BM25 index was saved without its term counts; build it from the texts")
        out = cls([], **base.settings._replace(k1=base.k1 if k1 is None else k1, b=base.b if b is None else b)
                  ._asdict())
        keep = np.asarray(keep, dtype=np.int64)
        lens = np.concatenate([base.doc_len[keep].astype(np.int64), np.asarray(added_len, dtype=np.int64)])
        out.n = len(lens)
        if not out.n:
            return out
        n_col = len(base.indptr) - 1
        vocab = {t: j for t, j in base.vocab.items() if j < n_col}
        new_of_old = np.full(base.n, -1, dtype=np.int64)
        new_of_old[keep] = np.arange(len(keep))
        doc = new_of_old[base.indices]
        ok = doc >= 0
        cols = [np.repeat(np.arange(n_col, dtype=np.int64), np.diff(base.indptr))[ok]]
        docs, tfs = [doc[ok]], [base.tf[ok].astype(np.int64)]
        n_vocab = n_col
        for t, (where, counts) in added.items():
            if len(where):
                if t not in vocab:                         # a word the base never saw: a new column
                    vocab[t], n_vocab = n_vocab, n_vocab + 1
                cols.append(np.full(len(where), vocab[t], dtype=np.int64))
                docs.append(np.asarray(where, dtype=np.int64) + len(keep))
                tfs.append(np.asarray(counts).astype(np.int64))
        col, row, tf = np.concatenate(cols), np.concatenate(docs), np.concatenate(tfs)
        order = np.argsort(col * out.n + row, kind="stable")
        col, row, tf = col[order], row[order], tf[order]
        out.vocab = vocab
        out.data, out.indices, out.indptr, out.avgdl = bm25_columns(col, row, tf, lens, n_vocab, out.k1, out.b)
        out.tf, out.doc_len = tf.astype(np.int32), lens.astype(np.int32)
        _add_empty_token(out.vocab)
        return out

    @property
    def settings(self) -> BM25Settings:
        """What this index was built with (every setting given)."""
        return BM25Settings(self.k1, self.b, self.fields, self.pairs, self.stemmer, self.stopwords)

    @property
    def has_counts(self) -> bool:
        """Whether the index has its term counts (:meth:`merged` can extend it)."""
        return self.tf is not None and self.doc_len is not None

    def __len__(self) -> int:
        return self.n

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the index into folder ``path`` (:func:`.lexical_files.save_lexical`)."""
        from .lexical_files import save_lexical
        save_lexical(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> "LexicalIndex":
        """The index :meth:`save` wrote into folder ``path``."""
        from .lexical_files import load_lexical
        return load_lexical(cls, Path(path))

    # ------------------------------------------------------------------ statistics
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The BM25 tokens of each text, as this index tokenizes (lower-cased words, English
        stopwords and :attr:`stopwords` removed; word pairs too where :attr:`pairs`; stems where
        :attr:`stemmer`)."""
        return [tokenize_text(t if isinstance(t, str) else "", self.pairs, self.stemmer, self.stop) for t in texts]

    def doc_terms(self, doc: int) -> tuple[list[str], np.ndarray] | None:
        """Document ``doc``'s distinct terms as indexed (in vocabulary order) and each one's
        count, from the term counts without the text; None for an index without its counts
        (:attr:`has_counts`). The first call inverts the index (a few ms, kept)."""
        if self.tf is None:
            return None
        if self._by_doc is None:
            n_col = len(self.indptr) - 1
            order = np.argsort(self.indices, kind="stable")      # entries by document, terms ascending
            ptr = np.zeros(self.n + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.indices, minlength=self.n), out=ptr[1:])
            term = np.repeat(np.arange(n_col, dtype=np.int32), np.diff(self.indptr))[order]
            names = [""] * n_col
            for t, j in self.vocab.items():
                if j < n_col:
                    names[j] = t
            self._by_doc = (ptr, term, np.asarray(self.tf)[order], names)
        ptr, term, tf, names = self._by_doc
        a, e = ptr[doc], ptr[doc + 1]
        return [names[j] for j in term[a:e].tolist()], tf[a:e].astype(np.int64)

    def term_scores(self, terms: Sequence[str], counts: np.ndarray) -> np.ndarray:
        """BM25 score (float64) of every document for a query with each of ``terms`` ``counts``
        times: :meth:`token_scores` of that query up to float rounding, in one pass over the
        terms' postings (a long query, such as an item's whole text, costs a third)."""
        ids, reps = [], []
        for t, c in zip(terms, counts):
            j = self.vocab.get(t)
            if j is not None and j < len(self.indptr) - 1:
                ids.append(j)
                reps.append(c)
        if not ids:
            return np.zeros(self.n)
        col = np.asarray(ids, dtype=np.int64)
        start, lens = self.indptr[col].astype(np.int64), np.diff(self.indptr)[col].astype(np.int64)
        at = np.repeat(start - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())   # the postings, in a row
        w = self.data[at] * np.repeat(np.asarray(reps, dtype=np.float64), lens)
        return np.bincount(self.indices[at], weights=w, minlength=self.n)

    def doc_freq(self, tokens: Sequence[str]) -> np.ndarray:
        """How many documents of this corpus have each token (0 for one it does not have)."""
        vocab, indptr = self.vocab, self.indptr
        return np.array([float(indptr[vocab[t] + 1] - indptr[vocab[t]]) if t in vocab else 0.0 for t in tokens])

    def idf(self, tokens: Sequence[str]) -> np.ndarray:
        """Lucene idf of each token in this corpus: ``ln(1 + (N - df + 0.5) / (df + 0.5))``
        (``df = 0`` for a token the corpus does not have)."""
        df = self.doc_freq(tokens)
        return np.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def term_weight(self, tf: np.ndarray, doc_len: np.ndarray) -> np.ndarray:
        """Lucene BM25 term-frequency part, ``tf / (tf + k1 (1 - b + b |d| / avgdl))``, with
        this corpus' average document length (documents scored as if they were in it)."""
        avgdl = self.avgdl if self.avgdl > 0 else 1.0
        return tf / (tf + self.k1 * (1.0 - self.b + self.b * doc_len / avgdl))

    def outside_scores(self, counts: Mapping[str, int], posting: Callable[[str], tuple[np.ndarray, np.ndarray] | None],
                       lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BM25 scores of ``len(lens)`` documents outside this corpus, scored as if they were in
        it (its idf and average length), for a query with each term ``counts[t]`` times;
        ``posting(t)``: the documents that have term ``t`` and its count in each (or ``None``).
        Also how many of the query's distinct terms each document has."""
        out, hit = np.zeros(len(lens)), np.zeros(len(lens), dtype=np.int64)
        for t, w in zip(counts, self.idf(list(counts))):
            got = posting(t)
            if got is not None and len(got[0]):
                rows, tf = got
                out[rows] += counts[t] * w * self.term_weight(tf, lens[rows])
                hit[rows] += 1
        return out, hit

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every item for ``query`` (float64, 0 where no query term occurs):
        :meth:`token_scores` of its tokens."""
        return self.token_scores(tokenize_text(query, self.pairs, self.stemmer, self.stop))

    def token_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every item for a query of ``tokens`` (:meth:`tokenize`'s): the sum
        over the tokens (a repeated one again) of the token's column, added in float32 in
        query order as bm25s does."""
        s = np.zeros(self.n, dtype=np.float32)
        for t in tokens:
            j = self.vocab.get(t)
            if j is not None:
                a, e = self.indptr[j], self.indptr[j + 1]
                s[self.indices[a:e]] += self.data[a:e]          # a column's rows are distinct
        return s.astype(np.float64)

    def search(self, queries: Sequence[str], k: int, *, exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """Top-``k`` item positions per query, best first (``-1`` where fewer items match a term;
        ties by position)."""
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for qi, q in enumerate(queries):
            s = self.scores(q)
            order = top_k(s, k, exclude=exclude[qi] if exclude is not None else None, allowed=s > 0)
            out[qi, :len(order)] = order
        return out
