"""How text becomes BM25 terms, and the ``search.bm25_*`` settings that say so.

One tokenization serves the BM25 index over the descriptions, the names list of hybrid search,
an item's BM25 list in ``similar`` and the evaluation's BM25 baseline: lower-cased words,
English stopwords and the space's own (``bm25_stopwords``) removed, optionally stemmed
(``bm25_stemmer``) and with adjacent word pairs (``bm25_pairs``). :class:`BM25Settings` carries
the settings from a space's ``search`` block to :class:`~talkrec.index.lexical.LexicalIndex`.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import InputError

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


class BM25Settings(NamedTuple):
    """A space's BM25 settings (:func:`bm25_params`); ``None`` for one not given: the saved
    index's value stays (:meth:`given_over`). The names are
    :class:`~talkrec.index.lexical.LexicalIndex`'s keyword arguments."""

    k1: float | None = None
    b: float | None = None
    fields: tuple[str, ...] | None = None
    pairs: bool | None = None
    stemmer: str | None = None
    stopwords: tuple[str, ...] | None = None      # the space's own, beside the English ones

    def given_over(self, base: "BM25Settings") -> "BM25Settings":
        """These settings, with ``base``'s value wherever one is not given."""
        return BM25Settings(*(b if s is None else s for s, b in zip(self, base)))

    def tokenization(self) -> tuple[bool, str, tuple[str, ...]]:
        """What decides the terms of a text: ``(pairs, stemmer, stopwords)`` (unset: none)."""
        return bool(self.pairs), self.stemmer or "", self.stopwords or ()


def bm25_params(search: Mapping[str, Any] | None) -> BM25Settings:
    """:class:`BM25Settings` from a space's ``search`` settings (``bm25_k1``, ``bm25_b``,
    ``bm25_fields``, ``bm25_pairs``, ``bm25_stemmer``, ``bm25_stopwords``), each checked.
    ``k1 >= 0``, ``0 <= b <= 1``; ``fields``: ``description`` and / or metadata fields whose
    text or list of tags BM25 indexes with it (:func:`talkrec.index.segments.lexical_texts`);
    ``pairs``: also index adjacent word pairs (:func:`tokenize_text`); ``stemmer``: a Snowball
    language (``english``: "animated" and "animation" are one term) or ``""`` for none (the
    setting ``false`` or ``none``); ``stopwords``: words of the catalog's own that are no terms
    (:func:`stopwords_setting`).

    Descriptions made by the TEMPLATE describer are tag lists: their length says how many tags
    an item has (how well known it is), not how diluted its topic is, so the product's
    defaults normalise little (``b = 0.1``; Lucene's 0.75 scored 0.68 / 0.31 against
    0.71-0.72 / 0.47-0.49 on validation movie / music queries, docs/evaluation.md)."""
    search = search or {}
    out: list[float | None] = []
    for key, hi in (("bm25_k1", math.inf), ("bm25_b", 1.0)):
        v = search.get(key)
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
    fields = search.get("bm25_fields")
    if fields is not None:
        if (isinstance(fields, str) or not isinstance(fields, (list, tuple)) or not fields
                or not all(isinstance(f, str) and f.strip() for f in fields)):
            raise InputError(f"search.bm25_fields must be a non-empty list of field names, got {fields!r}",
                             field="search.bm25_fields")
        fields = tuple(dict.fromkeys(f.strip() for f in fields))
    pairs = search.get("bm25_pairs")
    if pairs is not None and not isinstance(pairs, bool):
        raise InputError(f"search.bm25_pairs must be true or false, got {pairs!r}", field="search.bm25_pairs")
    return BM25Settings(out[0], out[1], fields, pairs, stemmer_setting(search.get("bm25_stemmer")),
                        stopwords_setting(search.get("bm25_stopwords")))


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


def stopwords_setting(value: Any) -> tuple[str, ...] | None:
    """``search.bm25_stopwords`` checked: ``None`` (not given) or the words, lower-cased,
    sorted and distinct (``[]``: none beside the English ones). Each must be one word as
    :func:`tokenize_text` finds them (letters or digits, two or more): the words that name
    the catalog's kind of item ("movies", "films"; "music", "artists") are in most queries
    and match the few items whose tags happen to have them (*Film-Noir*, "movie to see")."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InputError(f"search.bm25_stopwords must be a list of words, got {value!r}",
                         field="search.bm25_stopwords")
    bad = next((w for w in value if not isinstance(w, str)), None)
    if bad is not None:
        raise InputError(f"search.bm25_stopwords: each entry must be one word of two or more letters or "
                         f"digits, got {bad!r}", field="search.bm25_stopwords")
    return _checked_words(tuple(value))


@functools.lru_cache(maxsize=32)
def _checked_words(words: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`stopwords_setting` of a list of strings (checked once per list: the setting is
    read on every query)."""
    for w in words:
        if not _TOKEN.fullmatch(w.strip().lower()):
            raise InputError(f"search.bm25_stopwords: each entry must be one word of two or more letters or "
                             f"digits, got {w!r}", field="search.bm25_stopwords")
    return tuple(sorted({w.strip().lower() for w in words}))


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


@functools.lru_cache(maxsize=16)
def stop_set(extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The English stopwords and ``extra`` (a space's ``bm25_stopwords``), as one set."""
    return STOPWORDS_EN | frozenset(extra)


def check_fields(fields: Sequence[str], have: Collection[str]) -> None:
    """Refuse ``search.bm25_fields`` that name neither ``description`` nor one of ``have``
    (the items' fields), naming the first unknown one and what the items have."""
    unknown = [f for f in fields if f != "description" and f not in have]
    if unknown:
        raise InputError(f"search.bm25_fields: no item field {unknown[0]!r}; the items have "
                         f"{', '.join(sorted(map(str, have)))}", field="search.bm25_fields")


def tokenize_text(text: str, pairs: bool = False, stemmer: str = "",
                  stopwords: Collection[str] = STOPWORDS_EN) -> list[str]:
    """bm25s' tokenization (``stopwords="en"``; no stemming unless ``stemmer``): lower-cased
    ``\\w\\w+`` words, ``stopwords`` removed (:func:`stop_set`: the English ones and a space's
    own); with ``stemmer`` (a Snowball language, as ``bm25s.tokenize(stemmer=...)`` applies
    it) each word is then its stem ("animated", "animation" -> ``anim``).

    ``pairs``: after each word, also the pair ``"<previous word> <word>"`` where the two are
    adjacent words of the text with only spaces or hyphens between them ("post-rock" and "post
    rock" give ``post``, ``post rock``, ``rock``; no pair across a comma, a full stop, a
    stopword or a one-letter word). A tag of two words is then a term of its own: a query for
    "post-rock" scores the items tagged so above those with "post-punk" and "rock" (+0.038
    validation nDCG for BM25 on the Last.fm tag queries, docs/evaluation.md)."""
    text = text.lower()
    if not pairs:
        words = [t for t in _TOKEN.findall(text) if t not in stopwords]
        return _stem_words(stemmer)(words) if stemmer and words else words
    stem = _stem_words(stemmer) if stemmer else None
    out: list[str] = []
    prev: re.Match[str] | None = None                  # the word before, where it is a token
    for m in _WORD.finditer(text):
        w = m.group()
        if len(w) < 2 or w in stopwords:
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
