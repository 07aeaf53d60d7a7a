"""A built talkrec space: the Python API for search, recommendation, playlists and writes (files:
:mod:`.files`; storage engine: :mod:`.writer`; write methods: :mod:`.writes`)."""
from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..encoders.media_cache import CacheArg
from ..encoders.query import QueryEncoder
from ..errors import InputError, NotFoundError, shown
from ..fusion.projector import FusionProjector
from ..index.filters import FilterSpec, Where
from ..index.analysis import bm25_params
from ..index.snapshot import Snapshot
from ..limits import is_number
from . import browse, media, playlists, warming
from .explain import Explanations
from .hits import Hit, hits_at, jsonable, make_hits
from .diversity import rerank as diverse
from .playlists import Continuation
from .popularity import novelty_setting
from .shared import SharedState, consistent
from .search import LexicalView, check_mode, check_text, lexical_search, text_search
from .best_score import best_score_rows
from .strategies import (checked_negative_weight, recommend_rows, recommend_strategy, score_kind,
                         similar_rows)
from .vectors import checked_vector, id_list, mean_vector, mixed_vector, signed_vector
from .writer import SpaceStore, open_store
from .writes import SpaceWrites

class Space(SpaceWrites, Explanations):
    """Load with :meth:`Space.load`; every query method returns a list of :class:`Hit`.

    Queries are safe to run from many threads and never wait for a write: each works on the
    snapshot that was current when it started (text queries go through one
    :class:`~talkrec.encoders.query.QueryEncoder`: serialized, cached, micro-batched). Writes
    (:meth:`add_items`, :meth:`remove`) are logged and fsync'ed before they are served."""

    def __init__(self, path: Path, config: dict[str, Any], fusion: FusionProjector,
                 interactions: pd.DataFrame | None, store: SpaceStore, *, query_cache: int = 1024) -> None:
        self.path, self.config, self.fusion, self.interactions = path, config, fusion, interactions
        self.query_cache, self.store = query_cache, store
        self._pin: Snapshot | None = None
        self._shared = SharedState()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, *, query_cache: int = 1024, **storage: Any) -> "Space":
        """The space built at ``path``; ``query_cache``: text query vectors kept (LRU); ``storage``:
        settings of :class:`~talkrec.space.writer.SpaceStore` over the ``storage`` block of ``space.json``."""
        if not isinstance(path, (str, os.PathLike)):
            raise InputError(f"a space is a folder path (str or Path), got {type(path).__name__} {path!r:.60}")
        path = Path(path)
        f, store = open_store(path, **storage)
        return cls(path, f.config, f.fusion, f.interactions, store, query_cache=query_cache)

    def __repr__(self) -> str:
        return f"Space({str(self.path)!r}: {self.index.n_live} items, {' + '.join(self.modalities)})"

    def warm_up(self) -> None:
        """Load now, not on the first query: the text model, BM25, the int8 copies and what reads
        use (:func:`.warming.keep_warm`: also each generation a compaction makes from now on)."""
        self.text_encoder().encode("warm up", kind="query")
        self.index.gen.lexical(bm25_params(self.config.get("search")))
        self.index.gen.warm_int8(self.config["input_files"].get("text"))
        warming.keep_warm(self)

    @property
    def index(self) -> Snapshot:
        """The items (:class:`~talkrec.index.snapshot.Snapshot`) as of now, or of the running read's start."""
        return self._pin if self._pin is not None else self.store.snapshot

    def pinned(self, snapshot: Snapshot | None = None) -> "Space":
        """A view of this space that keeps reading the current snapshot (or ``snapshot``; writes go through)."""
        view = copy.copy(self)
        view._pin = snapshot if snapshot is not None else self.store.snapshot
        return view

    # ------------------------------------------------------------------ accessors
    @property
    def item_ids(self) -> np.ndarray:
        return self.index.ids

    @property
    def modalities(self) -> list[str]:
        return list(self.fusion.modalities_)

    @consistent
    def embeddings(self, kind: str = "multi") -> np.ndarray:
        """Item matrix aligned with :attr:`item_ids`: ``"multi"`` (the fused space) or a
        modality's raw input vectors (NaN rows where an item lacks it)."""
        return browse.embeddings(self.index, self.config["input_files"], kind)

    @consistent
    def raw_input(self, item_id: str, modality: str) -> np.ndarray:
        """The item's raw input vectors of ``modality``, one row per view, NaN rows where it
        has none; no rows when the space keeps no inputs for the modality."""
        return browse.raw_input(self.index, self.config["input_files"], item_id, modality)

    def text_encoder(self, *, for_writes: bool = False) -> QueryEncoder:
        """The text model behind a :class:`~talkrec.encoders.query.QueryEncoder`; ``for_writes``: the one for
        written descriptions (``storage.write_threads`` threads, priority lowered by ``write_nice``)."""
        sh, key = self._shared, ("write_encoder" if for_writes else "text_encoder")
        with sh.lock:
            if getattr(sh, key) is None:
                from ..encoders.text import TextEncoder
                from .coldstart import write_encoder
                enc = None if for_writes else TextEncoder.for_space(self.config["text"], self.path)
                setattr(sh, key, write_encoder(self.config["text"], self.path, self.store) if enc is None else
                        QueryEncoder(enc, cache_size=self.query_cache, lanes=2 if enc.parallel_safe else 1))
        return getattr(sh, key)  # type: ignore[no-any-return]

    def cf(self) -> Any:
        sh = self._shared
        if sh.cf is None and (self.path / "cf").exists():
            from ..encoders.cf import ALSEncoder
            sh.cf = ALSEncoder.load(self.path / "cf")
        return sh.cf

    @consistent
    def item(self, item_id: str) -> dict[str, Any]:
        """Everything stored about one item."""
        p = self.index.position(item_id)
        if p is None:
            raise NotFoundError(f"unknown item {shown(item_id)}")
        row = self.index.meta_rows([p]).iloc[0].to_dict()
        return {k: jsonable(v) for k, v in row.items()}

    def hits(self, pairs: Iterable[tuple[str, float]]) -> list[Hit]:
        """Hits (name and a few metadata fields) for ``(item_id, score)`` pairs, in order."""
        return make_hits(self.index, pairs)

    # ------------------------------------------------------------------ browsing
    @consistent
    def resolve(self, ref: str) -> str:
        """An item id, or an exact (case-insensitive) item name; of several items with one
        name, the most popular. A name without its accents (``Bjork``) is the one item name it
        is without them (``Björk``); an unknown one names the nearest in its error."""
        if not isinstance(ref, str):
            raise InputError(f"an item is named by its id or name (a str), got {type(ref).__name__} {ref!r:.60}",
                             field="item")
        iid = browse.lookup(self.index, ref)
        if iid is None:
            near = browse.near_names(self.index, ref)
            hint = f"; did you mean {', '.join(map(repr, near[:-1]))} or {near[-1]!r}?" if len(near) > 1 else \
                f"; did you mean {near[0]!r}?" if near else ""
            raise NotFoundError(f"unknown item {shown(ref)} (neither an id nor an exact name){hint}")
        return iid

    def find(self, name: str, limit: int = 10) -> list[tuple[str, str]]:
        """``(item_id, name)`` of items whose name contains ``name`` (for pickers)."""
        return browse.find_in(self.index, name, browse.checked_limit(limit))

    def facets(self) -> browse.Facets:
        """Filterable fields (numeric ones with their range), the top tags and the decades."""
        return browse.facets_of(self.index)

    @property
    def _positive(self) -> float:
        """A user's history is their interactions above this weight (``positive_threshold``)."""
        return float(self.config.get("positive_threshold", 0.0))

    def users(self, limit: int = 20) -> list[tuple[str, int]]:
        """``(user_id, n_interactions)`` of the users with the most history in the items the space has now."""
        snap = self.index
        memo = snap.memo if snap.changes else snap.gen.memo        # once per generation until a write
        users = memo("top_users", lambda: browse.top_users(self.interactions, snap, self._positive))
        return users[:browse.checked_limit(limit)]  # type: ignore[no-any-return]

    def filter_where(self, filters: FilterSpec | None) -> dict[str, Any] | None:
        """The ``where`` mapping for :class:`~talkrec.index.filters.FilterSpec` filters (tags,
        decade, numeric ranges, a free expression) on this space's fields."""
        if filters is None or not (filters.tags or filters.decade or filters.ranges or filters.where):
            return None
        return filters.to_where(self.index.schema())

    # ------------------------------------------------------------------ query vectors
    def text_query_vector(self, text: str) -> np.ndarray:
        """A text query projected into the space through the text encoder."""
        check_text(text)
        q = self.text_encoder().encode(text.strip(), kind="query")
        return self.fusion.project("text", q)

    def query_vector(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Project a raw vector of ``modality`` (its input space) into the shared space."""
        if modality not in self.fusion.input_dims_:
            raise InputError(f"unknown modality {modality!r}; this space has {self.modalities}", field="modality")
        x = checked_vector(modality, x, self.fusion.input_dims_[modality])
        return self.fusion.project(modality, self.standardize(modality, x))

    def standardize(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Apply the build's standardization of precomputed vectors of ``modality`` (raw
        descriptors in, the encoder's input out); identity for other modalities."""
        sc, x = self.config.get("scalers", {}).get(modality), np.asarray(x, dtype=np.float32)
        return x if not sc else (x - np.asarray(sc["mean"], dtype=np.float32)) / np.asarray(sc["std"], dtype=np.float32)

    def item_vector(self, item_id: str) -> np.ndarray:
        v = self.index.vector(item_id)
        if v is None:
            raise NotFoundError(f"unknown item {shown(item_id)}")
        return v

    def user_history(self, user_id: str) -> list[str]:
        """The user's positive items that the space has (not deleted), strongest first."""
        sh = self._shared
        if sh.histories is None:
            sh.histories = browse.histories(self.interactions, self._positive)
        hist = sh.histories.get(str(user_id))
        if hist is None:
            raise NotFoundError(f"unknown user {user_id!r}")
        return browse.live_history(self.index, hist, user_id)

    @consistent
    def user_vector(self, user_id: str, *, source: str = "items") -> np.ndarray:
        """A user in the space: ``"items"`` = mean of their positive items' vectors (paper
        001 section 3.2); ``"cf"`` = their ALS user factors projected through the CF encoder."""
        if source == "items":
            return self.items_vector(self.user_history(user_id))
        if source == "cf":
            cf = self.cf()
            u = cf.known_user(user_id) if cf is not None else None
            if u is None:
                raise NotFoundError(f"user {user_id!r} has no CF factors in this space")
            return self.fusion.project("cf", u)
        raise InputError(f"user source must be 'items' or 'cf', got {source!r}", field="source")

    @consistent
    def mixed_query_vector(self, *, text: str | None = None, user: str | None = None,
                           items: Sequence[str] | None = None, vectors: Mapping[str, np.ndarray] | None = None,
                           weights: Mapping[str, float] | None = None, user_source: str = "items") -> np.ndarray:
        """One query from any weighted mix of a text, a user, example items and raw modality
        vectors, e.g. ``weights={"text": .7, "user": .3}``; each part is projected into the
        space, normalized, weighted (default 1) and summed, then normalized."""
        return mixed_vector(self, text=text, user=user, items=items, vectors=vectors, weights=weights,
                            user_source=user_source)

    def items_vector(self, item_ids: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
        """Mean of the items' multimodal vectors (a user or playlist profile)."""
        return mean_vector(self.index, item_ids, weights)

    # ------------------------------------------------------------------ applications
    @consistent
    def search(self, text: str, k: int = 10, *, where: Where = None, offset: int = 0,
               mode: str | None = None) -> list[Hit]:
        """Natural-language search. ``mode``: ``"multi"`` (the text query projected into the
        fused space, paper 001), ``"text"`` (the text model's own space), ``"lexical"`` (BM25
        over the item descriptions, ``search.bm25_k1`` / ``bm25_b``), ``"hybrid"`` (the default:
        reciprocal rank fusion of the fused space, the text model weighted ``search.hybrid_text_weight``
        and BM25 weighted ``search.hybrid_bm25_weight``, 0 leaving it out; docs/evaluation.md).
        Scores: RRF / text-model cosine / BM25 (hybrid / text / lexical), not fused-space cosines."""
        mode = check_mode(mode or self.config.get("search", {}).get("mode", "hybrid"))
        if mode == "lexical":
            return self.hits(lexical_search(self, text, k, where, offset))
        if mode == "multi" or "text" not in self.config["input_files"]:
            return self.hits(self.index.search(self.text_query_vector(text), k, where=where, offset=offset))
        return self.hits(text_search(self, text, k, where, offset, mode))

    def lexical_index(self) -> LexicalView:
        """BM25 (``search.bm25_k1`` / ``bm25_b``) over the descriptions as of now (:class:`.search.LexicalView`)."""
        return LexicalView(self.index, bm25_params(self.config.get("search")))

    @consistent
    def similar(self, item_id: str, k: int = 10, *, where: Where = None, offset: int = 0,
                novelty: float | None = None, pool: int | None = None) -> list[Hit]:
        """Items similar to ``item_id`` (itself excluded), by ``similar.strategy`` (:mod:`.strategies`);
        ``novelty`` (default ``similar.novelty``, else 0) re-ranks its top ``pool`` (default 100, at
        least ``offset + k``) with less popular items up (:mod:`.diversity`)."""
        novelty = novelty_setting(self, "similar", novelty)
        def ranked(n: int, start: int = 0) -> list[Hit]:
            if score_kind(self, "similar") == "rrf":
                return hits_at(self.index, *similar_rows(self, item_id, n, where, start))
            return self.hits(self.index.search(self.item_vector(item_id), n, where=where, exclude=[item_id],
                                               offset=start))
        if novelty == 0:
            return ranked(k, offset)
        return diverse(self, ranked, k, offset, diversity=0.0, max_per_artist=None, artist_field="artist", pool=pool,
                       novelty=novelty)

    @consistent
    def recommend(self, *, items: Sequence[str] | None = None, user: str | None = None, k: int = 10,
                  where: Where = None, offset: int = 0, exclude_seen: bool = True, diversity: float = 0.0,
                  max_per_artist: int | None = None, artist_field: str = "artist", pool: int | None = None,
                  negative: Sequence[str] | None = None, negative_weight: float | None = None,
                  novelty: float | None = None, strategy: str | None = None) -> list[Hit]:
        """Recommend from items or a known user's history, by ``strategy`` (``blend``, ``rrf``,
        ``knn``, ``best_score``: :mod:`.strategies`; default the space's ``recommend.strategy``);
        ``negative``: items not wanted, never recommended, weighed against the history in every
        term (``negative_weight``, default ``recommend.negative_weight``; ``items=[]`` with them alone;
        under ``best_score`` by its own rule, without a weight); ``diversity`` (MMR), ``novelty`` (less
        popular items up; default ``recommend.novelty``, else 0) and ``max_per_artist`` re-rank its
        top ``pool`` (default 100, at least ``offset + k``)."""
        novelty = novelty_setting(self, "recommend", novelty)
        if (items is None) == (user is None):
            raise InputError("give exactly one of items or user", field="items")
        strategy = recommend_strategy(self, strategy)
        hist = id_list(items) if items is not None else self.user_history(user)  # type: ignore[arg-type]
        neg = [] if negative is None else id_list(negative, "negative")
        excl = (hist if exclude_seen else []) + neg
        if strategy == "best_score":
            if negative_weight is not None:
                raise InputError("negative_weight does not apply to strategy best_score (an item nearer a negative "
                                 "example than to every history item scores minus that cosine)", field="negative_weight")
            q, gamma = None, 0.0                                            # its own rule: no query, no weight
        else:
            gamma = checked_negative_weight(self, negative_weight)
            q = signed_vector(self.index, hist, neg, gamma)

        def ranked(n: int, start: int = 0) -> list[Hit]:                    # the strategy's list
            if strategy == "best_score":
                return hits_at(self.index, *best_score_rows(self, hist, neg, n, where, start, excl))
            if score_kind(self, "recommend", strategy) != "cosine":
                return hits_at(self.index, *recommend_rows(self, hist, q, n, where, start, excl, neg, gamma,
                                                           strategy=strategy))
            return self.hits(self.index.search(q, n, where=where, exclude=excl, offset=start))
        if diversity == 0 and max_per_artist is None and novelty == 0:
            return ranked(k, offset)
        return diverse(self, ranked, k, offset, diversity=diversity, max_per_artist=max_per_artist,
                       artist_field=artist_field, pool=pool, novelty=novelty)

    @consistent
    def personalized_search(self, text: str, user: str | None = None, *, items: Sequence[str] | None = None,
                            alpha: float = 0.3, k: int = 10, where: Where = None, offset: int = 0,
                            exclude_seen: bool = False) -> list[Hit]:
        """Text query blended with a user profile: ``normalize((1-alpha)*q_text + alpha*q_user)``."""
        if not is_number(alpha) or not 0 <= alpha <= 1:
            raise InputError(f"alpha must be a number in [0, 1], got {alpha!r}", field="alpha")
        if (items is None) == (user is None):
            raise InputError("give exactly one of user or items", field="user")
        q = self.mixed_query_vector(text=text, user=user, items=items, weights={
            "text": 1 - alpha, ("user" if user is not None else "items"): alpha})
        hist = id_list(items) if items is not None else self.user_history(user)  # type: ignore[arg-type]
        return self.hits(self.index.search(q, k, where=where, exclude=hist if exclude_seen else [], offset=offset))

    def search_by_vector(self, modality: str, x: np.ndarray, k: int = 10, *, where: Where = None,
                         offset: int = 0) -> list[Hit]:
        """Query by example: a raw vector of any modality (e.g. audio descriptors)."""
        return self.hits(self.index.search(self.query_vector(modality, x), k, where=where, offset=offset))

    def search_by_media(self, modality: str, path: str | Path, k: int = 10, *, where: Where = None,
                        offset: int = 0, cache: CacheArg | None = None, name: str | None = None) -> list[Hit]:
        """Query by an audio or image file, encoded as the space's ``modality`` was built
        (see :meth:`encode_media`)."""
        return media.search_by_media(self, modality, path, k, where=where, offset=offset, cache=cache, name=name)

    def encode_media(self, modality: str, path: str | Path, *, cache: CacheArg | None = None,
                     name: str | None = None) -> np.ndarray:
        """The raw input vector of ``modality`` for a media file, through the encoder and
        settings the modality was built with (:mod:`talkrec.encoders.media`). ``cache``: the
        encoder's vector cache (``None``: as built); ``name``: how errors name the file."""
        return media.encode_media(self, modality, path, cache=cache, name=name)

    @consistent
    def continue_playlist(self, seeds: Sequence[str], k: int = 10, *, where: Where = None, recency: float = 0.7,
                          diversity: float = 0.0, max_per: tuple[str, int] | None = None,
                          method: str = "auto") -> list[Hit]:
        """Next items for an ordered playlist: no duplicates, optional MMR ``diversity`` in
        [0, 1) and at most ``max_per=(field, n)`` items per value of a metadata field.

        ``method="knn"``: the seeds' mean vector weighted towards the end
        (``recency**(n-1-i)``); ``"session"``: the attached session model (paper 002), with
        kNN as the fallback for seeds it does not know; ``"auto"``: session if attached.
        :meth:`continuation` also says how coherent the result is."""
        if max_per is not None and max_per[0] not in self.index.columns:
            raise InputError(f"unknown field {max_per[0]!r} for max_per; fields: {self.index.columns}",
                             field="max_per")
        return self.continuation(seeds, k, where=where, recency=recency, diversity=diversity, method=method,
                                 max_per_artist=max_per[1] if max_per else None,
                                 artist_field=max_per[0] if max_per else "artist").items

    @consistent
    def continuation(self, seeds: Sequence[str], k: int = 10, *, where: Where = None, recency: float = 0.7,
                     diversity: float = 0.0, max_per_artist: int | None = None, artist_field: str = "artist",
                     method: str = "auto") -> Continuation:
        """:meth:`continue_playlist` with the deduplicated seeds and the coherence of the
        playlist before and after (:class:`~talkrec.space.playlists.Continuation`); at most
        ``max_per_artist`` items per value of ``artist_field``, where a space without that
        field is a catalog of artists (each item its own artist; a note says so)."""
        return playlists.continue_playlist(self, seeds, k, where=where, recency=recency, diversity=diversity,
                                           max_per_artist=max_per_artist, artist_field=artist_field, method=method)

    def session_model(self) -> Any:
        """The session model attached under ``<space>/session_model`` (or ``None``)."""
        sh = self._shared
        if sh.session_model is None and (self.path / "session_model").exists():
            from ..sessions.recommender import SessionRecommender
            sh.session_model = SessionRecommender.load(self.path / "session_model")
        return sh.session_model

    @consistent
    def generate_playlist(self, text: str, n: int = 20, *, where: Where = None, coherence: float = 0.5,
                          pool: int = 200) -> tuple[list[Hit], dict[str, float]]:
        """A playlist of ``n`` items for a text query that also hangs together; returns the
        hits and the measured relevance/coherence (see :mod:`talkrec.space.playlists`)."""
        return playlists.generate_playlist(self, text, n, where=where, coherence=coherence, pool=pool)
