"""BM25 over item descriptions (and, with ``search.bm25_fields``, the items' tag fields): the
lexical list of hybrid search.

Template queries that name a genre or a place are matched literally far better by BM25 than
by any embedding (docs/evaluation.md: movie search BM25 0.696 vs MiniLM 0.351), and the
reciprocal rank fusion of the fused space, the text model and BM25 is the best search system
measured on both datasets. The evaluation's BM25 baseline is this class.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..ranking import top_k


_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WORD = re.compile(r"(?u)\w+")
#: what may stand between the two words of a pair token: spaces and hyphens only
_PAIR_GAP = re.compile(r"[\s\-]+")
#: bm25s' English stopwords (``bm25s.stopwords.STOPWORDS_EN``; a test checks they are the same)
STOPWORDS_EN = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with"))


#: what BM25 indexes per item unless ``search.bm25_fields`` says otherwise
DEFAULT_FIELDS: tuple[str, ...] = ("description",)


def bm25_params(search: Mapping[str, Any] | None) -> tuple[float | None, float | None, tuple[str, ...] | None,
                                                            bool | None, str | None]:
    """``(k1, b, fields, pairs, stemmer)`` from a space's ``search`` settings (``bm25_k1``,
    ``bm25_b``, ``bm25_fields``, ``bm25_pairs``, ``bm25_stemmer``); ``None`` for one not given
    (the saved index's value stays). ``k1 >= 0``, ``0 <= b <= 1``; ``fields``: ``description``
    and / or metadata fields whose text or list of tags BM25 indexes with it
    (:func:`talkrec.index.segments.lexical_texts`); ``pairs``: also index adjacent word pairs
    (:func:`tokenize_text`); ``stemmer``: a Snowball language (``english``: "animated" and
    "animation" are one term) or ``""`` for none (the setting ``false`` or ``none``).

    Descriptions made by the TEMPLATE describer are tag lists: their length says how many tags
    an item has (how well known it is), not how diluted its topic is, so the product's
    defaults normalise little (``b = 0.1``; Lucene's 0.75 scored 0.68 / 0.31 against
    0.71-0.72 / 0.47-0.49 on validation movie / music queries, docs/evaluation.md)."""
    out: list[float | None] = []
    for key, hi in (("bm25_k1", math.inf), ("bm25_b", 1.0)):
        v = (search or {}).get(key)
        if v is None:
            out.append(None)
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if isinstance(v, bool) or not 0.0 <= x <= hi:
            raise InputError(f"search.{key} must be a number in [0, {hi:g}], got {v!r}", field=f"search.{key}")
        out.append(x)
    fields = (search or {}).get("bm25_fields")
    if fields is not None:
        if (isinstance(fields, str) or not isinstance(fields, (list, tuple)) or not fields
                or not all(isinstance(f, str) and f.strip() for f in fields)):
            raise InputError(f"search.bm25_fields must be a non-empty list of field names, got {fields!r}",
                             field="search.bm25_fields")
        fields = tuple(dict.fromkeys(f.strip() for f in fields))
    pairs = (search or {}).get("bm25_pairs")
    if pairs is not None and not isinstance(pairs, bool):
        raise InputError(f"search.bm25_pairs must be true or false, got {pairs!r}", field="search.bm25_pairs")
    return out[0], out[1], fields, pairs, stemmer_setting((search or {}).get("bm25_stemmer"))


def stemmer_setting(value: Any) -> str | None:
    """``search.bm25_stemmer`` checked: ``None`` (not given), ``""`` (``false`` / ``"none"``: no
    stemming) or a Snowball language PyStemmer has (lower-cased)."""
    if value is None:
        return None
    if value is False or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return ""
    langs = _languages()
    if not isinstance(value, str) or value.strip().lower() not in langs:
        raise InputError(f"search.bm25_stemmer must be false or a Snowball language ({', '.join(langs)}), "
                         f"got {value!r}", field="search.bm25_stemmer")
    return value.strip().lower()


@functools.lru_cache(maxsize=1)
def _languages() -> tuple[str, ...]:
    """PyStemmer's languages, sorted (read once: the setting is checked on every query)."""
    import Stemmer

    return tuple(sorted(Stemmer.algorithms()))


@functools.lru_cache(maxsize=8)
def _stem_words(language: str) -> Any:
    """PyStemmer's ``stemWords`` for ``language`` (one stemmer per language and process; it
    keeps its own cache of the words it has stemmed)."""
    import Stemmer

    return Stemmer.Stemmer(language).stemWords


def check_fields(fields: Sequence[str], have: Collection[str]) -> None:
    """Refuse ``search.bm25_fields`` that name neither ``description`` nor one of ``have``
    (the items' fields), naming the first unknown one and what the items have."""
    unknown = [f for f in fields if f != "description" and f not in have]
    if unknown:
        raise InputError(f"search.bm25_fields: no item field {unknown[0]!r}; the items have "
                         f"{', '.join(sorted(map(str, have)))}", field="search.bm25_fields")


def tokenize_text(text: str, pairs: bool = False, stemmer: str = "") -> list[str]:
    """bm25s' tokenization (``stopwords="en"``; no stemming unless ``stemmer``): lower-cased
    ``\\w\\w+`` words, English stopwords removed; with ``stemmer`` (a Snowball language, as
    ``bm25s.tokenize(stemmer=...)`` applies it) each word is then its stem ("animated",
    "animation" -> ``anim``).

    ``pairs``: after each word, also the pair ``"<previous word> <word>"`` where the two are
    adjacent words of the text with only spaces or hyphens between them ("post-rock" and "post
    rock" give ``post``, ``post rock``, ``rock``; no pair across a comma, a full stop, a
    stopword or a one-letter word). A tag of two words is then a term of its own: a query for
    "post-rock" scores the items tagged so above those with "post-punk" and "rock" (+0.038
    validation nDCG for BM25 on the Last.fm tag queries, docs/evaluation.md)."""
    text = text.lower()
    if not pairs:
        words = [t for t in _TOKEN.findall(text) if t not in STOPWORDS_EN]
        return _stem_words(stemmer)(words) if stemmer and words else words
    stem = _stem_words(stemmer) if stemmer else None
    out: list[str] = []
    prev: re.Match[str] | None = None                  # the word before, where it is a token
    for m in _WORD.finditer(text):
        w = m.group()
        if len(w) < 2 or w in STOPWORDS_EN:
            prev = None
            continue
        if prev is not None and _PAIR_GAP.fullmatch(text, prev.end(), m.start()):
            out.append(f"{prev.group()} {w}")
        out.append(w)
        prev = m
    if stem is not None and out:                        # a pair is the pair of its words' stems
        flat = stem([w for t in out for w in t.split(" ")])
        it = iter(flat)
        out = [f"{next(it)} {next(it)}" if " " in t else next(it) for t in out]
    return out


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
    """

    def __init__(self, texts: Sequence[str], *, k1: float | None = 1.5, b: float | None = 0.75,
                 fields: Sequence[str] = DEFAULT_FIELDS, pairs: bool = False, stemmer: str = "") -> None:
        self.k1, self.b = float(1.5 if k1 is None else k1), float(0.75 if b is None else b)
        self.fields, self.pairs, self.stemmer = tuple(fields), bool(pairs), str(stemmer or "")
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
            if self.pairs or self.stemmer:                  # bm25s knows words only
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
        out = cls([], k1=base.k1 if k1 is None else k1, b=base.b if b is None else b, fields=base.fields,
                  pairs=base.pairs, stemmer=base.stemmer)
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
        stopwords removed; word pairs too where :attr:`pairs`; stems where :attr:`stemmer`)."""
        return [tokenize_text(t if isinstance(t, str) else "", self.pairs, self.stemmer) for t in texts]

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

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every item for ``query`` (float64, 0 where no query term occurs):
        :meth:`token_scores` of its tokens."""
        return self.token_scores(tokenize_text(query, self.pairs, self.stemmer))

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
