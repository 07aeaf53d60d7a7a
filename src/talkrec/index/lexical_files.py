"""A :class:`~.lexical.LexicalIndex` on disk: bm25s' file layout (so that no process has to
tokenize the corpus again, and none imports bm25s to read it), and talkrec's own files beside it."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .lexical import LexicalIndex

log = logging.getLogger(__name__)

#: the statistics saved next to bm25s' own files
_STATS = "talkrec_bm25.json"
#: bm25s' file names for the score matrix (CSC: one column of BM25 scores per token), its
#: vocabulary and parameters
_ARRAYS = ("data", "indices", "indptr")
_VOCAB, _PARAMS = "vocab.index.json", "params.index.json"
#: talkrec's own files beside them: each entry's term count (aligned with ``indices``) and each
#: document's length, what a compaction merges instead of tokenizing every description again
_COUNTS = {"tf": "talkrec_tf.npy", "doc_len": "talkrec_doclen.npy"}
#: the vocabulary again, one token a line in id order: read in a few ms and in pieces, where the
#: JSON was one 10-13 ms call holding the GIL (a follower loads it while it serves reads)
_TOKENS = "talkrec_vocab.txt"
#: vocabulary entries made per call from :data:`_TOKENS`
VOCAB_CHUNK = 8192


def save_lexical(index: "LexicalIndex", path: Path) -> None:
    """Write ``index`` into folder ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    stats = {"n": index.n, "avgdl": index.avgdl, "k1": index.k1, "b": index.b, "fields": list(index.fields),
             "pairs": index.pairs, "stemmer": index.stemmer,
             "stopwords": list(index.stopwords)}
    if index.n:
        for k in _ARRAYS:
            np.save(path / f"{k}.csc.index.npy", getattr(index, k))
        vocab = index.vocab
        (path / _VOCAB).write_text(json.dumps(vocab))
        tokens = sorted(vocab, key=vocab.__getitem__)
        if [vocab[t] for t in tokens] == list(range(len(tokens))) and not any("\n" in t for t in tokens):
            (path / _TOKENS).write_text("\n".join(tokens), encoding="utf-8")
            stats["vocab_size"] = len(tokens)
        (path / _PARAMS).write_text(json.dumps({
            "k1": index.k1, "b": index.b, "delta": 0.5, "method": "lucene", "idf_method": "lucene",
            "dtype": str(index.data.dtype), "int_dtype": str(index.indptr.dtype), "num_docs": index.n,
            "backend": "numpy"}))
        if index.has_counts:
            for k, name in _COUNTS.items():
                np.save(path / name, getattr(index, k))
    (path / _STATS).write_text(json.dumps(stats))


def load_lexical(cls: "type[LexicalIndex]", path: Path) -> "LexicalIndex":
    """The index :func:`save_lexical` wrote into folder ``path``."""
    from .analysis import DEFAULT_FIELDS

    stats = json.loads((path / _STATS).read_text())
    index = cls([], k1=float(stats["k1"]), b=float(stats["b"]), fields=stats.get("fields", DEFAULT_FIELDS),
                pairs=bool(stats.get("pairs", False)), stemmer=str(stats.get("stemmer") or ""),
                stopwords=[str(w) for w in stats.get("stopwords") or ()])
    index.n, index.avgdl = int(stats["n"]), float(stats["avgdl"])
    if index.n:
        index.data, index.indices, index.indptr = (np.load(path / f"{k}.csc.index.npy", allow_pickle=False)
                                                   for k in _ARRAYS)
        index.vocab = read_vocab(path, stats.get("vocab_size"))
        have = all((path / name).exists() for name in _COUNTS.values())
        for k, name in _COUNTS.items():                # an index saved before them: None
            # mapped, not read: only a compaction reads them (a query process never does)
            setattr(index, k, np.load(path / name, mmap_mode="r", allow_pickle=False) if have else None)
        if have and (index.tf.shape != index.indices.shape or index.doc_len.shape != (index.n,)):
            log.warning("%s: term counts do not fit the index; a compaction tokenizes the texts", path)
            index.tf = index.doc_len = None
    return index


def read_vocab(path: Path, size: int | None) -> dict[str, int]:
    """The vocabulary saved in folder ``path``: from :data:`_TOKENS` (ids 0..n-1 in line order)
    where it was written with its ``size`` (the statistics say it) and holds that many distinct
    tokens, else (an index saved before it, or a file that is not it) from bm25s' JSON."""
    if size is not None and (path / _TOKENS).is_file():
        tokens = (path / _TOKENS).read_text(encoding="utf-8").split("\n")
        vocab: dict[str, int] = {}
        for a in range(0, len(tokens), VOCAB_CHUNK):
            _add_tokens(vocab, tokens, a)
        if len(vocab) == len(tokens) == size:
            return vocab
        log.warning("%s: %s does not hold the %d tokens of the vocabulary; reading %s", path, _TOKENS, size, _VOCAB)
    return json.loads((path / _VOCAB).read_text())  # type: ignore[no-any-return]


def _add_tokens(vocab: dict[str, int], tokens: list[str], a: int) -> None:
    """Tokens ``a:a + VOCAB_CHUNK`` into ``vocab``: a function of its own, so that a follower's
    paced load can make way for reads at each call (``space/follower.py``)."""
    vocab.update(zip(tokens[a:a + VOCAB_CHUNK], range(a, a + VOCAB_CHUNK)))
