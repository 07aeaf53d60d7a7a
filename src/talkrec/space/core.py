"""A built talkrec space: the Python API for search, recommendation, playlists and upserts.

On disk (written by :mod:`talkrec.pipeline`)::

    space.json            what was built, with which models and settings
    items.parquet         item metadata (+ description texts, modalities present)
    inputs/<modality>.npy raw modality vectors aligned with items (NaN rows = missing)
    fusion/               ContrastiveFusion (safetensors + config.json)
    cf/                   ALS factors (item + user), for personalization
    index/                VectorIndex of multimodal vectors + filterable metadata
    interactions.parquet  user histories (user_id, item_id, weight)
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._atomic import write_json
from .errors import InputError, NotFoundError
from .fusion.model import ContrastiveFusion, combine
from .index.filters import Where
from .index.rank_fusion import rrf_scores, top_k
from .index.store import VectorIndex, l2_normalize

log = logging.getLogger(__name__)

SEARCH_MODES = ("hybrid", "multi", "text", "lexical")

META_IN_HITS = ("tags", "genres", "genre", "decade", "year", "listeners", "plays", "n_ratings", "modalities")


@dataclass
class Hit:
    """One result: item id, display name, cosine score, and a few metadata fields."""

    item_id: str
    name: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if v is pd.NA or v is None:
        return None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


class Space:
    """Load with :meth:`Space.load`; every query method returns a list of :class:`Hit`."""

    def __init__(self, path: Path, config: dict[str, Any], index: VectorIndex, fusion: ContrastiveFusion,
                 inputs: dict[str, np.ndarray], interactions: pd.DataFrame | None) -> None:
        self.path = path
        self.config = config
        self.index = index
        self.fusion = fusion
        self.inputs = inputs
        self.interactions = interactions
        self._text_encoder: Any = None
        self._cf: Any = None
        self._session_model: Any = None
        self._write_lock = threading.Lock()
        self._user_items: dict[str, list[str]] | None = None
        self._emb_cache: dict[str, np.ndarray] = {}
        self._lexical: Any = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> "Space":
        path = Path(path)
        if not (path / "space.json").exists():
            raise NotFoundError(f"no talkrec space at {path} (space.json missing); build one with `talkrec build CONFIG`")
        config = json.loads((path / "space.json").read_text())
        index = VectorIndex.load(path / "index", ann=config.get("index", {}).get("ann", False))
        fusion = ContrastiveFusion.load(path / "fusion")
        inputs = {}
        n = len(index)
        for f in sorted((path / "inputs").glob("*.npy")):
            X = np.load(f, allow_pickle=False)
            # The index is the source of truth: a crash between the two atomic writes of an
            # upsert can leave the inputs one write ahead (or behind); realign them.
            if len(X) > n:
                X = X[:n]
            elif len(X) < n:
                X = np.concatenate([X, np.full((n - len(X),) + X.shape[1:], np.nan, dtype=np.float32)])
            inputs[f.stem] = X
        inter = pd.read_parquet(path / "interactions.parquet") if (path / "interactions.parquet").exists() else None
        return cls(path, config, index, fusion, inputs, inter)

    # ------------------------------------------------------------------ accessors
    @property
    def item_ids(self) -> np.ndarray:
        return self.index.ids

    @property
    def modalities(self) -> list[str]:
        return list(self.fusion.modalities_)

    def embeddings(self, kind: str = "multi") -> np.ndarray:
        """Item matrix aligned with :attr:`item_ids`: ``"multi"`` (the fused space) or a
        modality's raw input vectors (NaN rows where an item lacks it; items added after
        the build have NaN raw inputs)."""
        if kind == "multi":
            return self.index.vectors
        base = self.config["input_files"].get(kind)
        if base is None:
            raise NotFoundError(f"unknown embedding kind {kind!r}; available: multi, {', '.join(self.config['input_files'])}")
        n = len(self.index)
        cached = self._emb_cache.get(kind)
        if cached is not None and len(cached) == n:
            return cached
        X = self.inputs[base]
        X = np.nanmean(X, axis=1) if X.ndim == 3 else X
        if n > len(X):
            X = np.vstack([X, np.full((n - len(X), X.shape[1]), np.nan, dtype=np.float32)])
        self._emb_cache[kind] = X
        return X

    def _modality_input(self, modality: str) -> np.ndarray | list[np.ndarray]:
        X = self.inputs[self.config["input_files"][modality]]
        return [X[:, v] for v in range(X.shape[1])] if X.ndim == 3 else X

    def text_encoder(self) -> Any:
        if self._text_encoder is None:
            from .encoders.text import TextEncoder
            self._text_encoder = TextEncoder(**{k: v for k, v in self.config["text"].items() if k != "modality"})
        return self._text_encoder

    def cf(self) -> Any:
        if self._cf is None and (self.path / "cf").exists():
            from .encoders.cf import ALSEncoder
            self._cf = ALSEncoder.load(self.path / "cf")
        return self._cf

    def item(self, item_id: str) -> dict[str, Any]:
        """Everything stored about one item."""
        p = self.index.position(item_id)
        if p is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        row = self.index.meta.iloc[p].to_dict()
        return {k: _jsonable(v) for k, v in row.items()}

    def _hits(self, pairs: Iterable[tuple[str, float]]) -> list[Hit]:
        pairs = list(pairs)
        if not pairs:
            return []
        index = self.index
        meta = index.meta
        cols = [c for c in META_IN_HITS if c in meta.columns]
        sub = meta.iloc[[index.position(i) for i, _ in pairs]]          # one lookup for all hits
        names = sub["name"].tolist() if "name" in sub.columns else [i for i, _ in pairs]
        values = {c: sub[c].tolist() for c in cols}
        out = []
        for j, (iid, s) in enumerate(pairs):
            md = {c: _jsonable(values[c][j]) for c in cols}
            if isinstance(md.get("tags"), list):
                md["tags"] = md["tags"][:8]
            out.append(Hit(iid, str(names[j]) if names[j] is not None else iid, float(s), md))
        return out

    # ------------------------------------------------------------------ query vectors
    def text_query_vector(self, text: str) -> np.ndarray:
        """A text query projected into the space through the text encoder."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("query text is empty", field="query")
        q = self.text_encoder().encode(text.strip(), kind="query")
        return self.fusion.project("text", q)

    def query_vector(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Project a raw vector of ``modality`` (its input space) into the shared space."""
        if modality not in self.fusion.input_dims_:
            raise InputError(f"unknown modality {modality!r}; this space has {self.modalities}", field="modality")
        x = np.asarray(x, dtype=np.float32)
        want = self.fusion.input_dims_[modality]
        if x.ndim != 1 or x.shape[0] != want:
            raise InputError(f"modality {modality!r} takes vectors of dimension {want}, got shape {list(x.shape)}",
                             field="vector")
        if not np.isfinite(x).all():
            raise InputError("vector has NaN or infinite values", field="vector")
        return self.fusion.project(modality, self.standardize(modality, x))

    def standardize(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Apply the build's standardization of precomputed vectors of ``modality`` (raw
        descriptors in, the encoder's input out); identity for other modalities."""
        sc = self.config.get("scalers", {}).get(modality)
        if not sc:
            return np.asarray(x, dtype=np.float32)
        return ((np.asarray(x, dtype=np.float32) - np.asarray(sc["mean"], dtype=np.float32))
                / np.asarray(sc["std"], dtype=np.float32))

    def item_vector(self, item_id: str) -> np.ndarray:
        v = self.index.vector(item_id)
        if v is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        return v

    def user_history(self, user_id: str) -> list[str]:
        if self._user_items is None:
            self._user_items = {}
            if self.interactions is not None:
                pos = self.interactions
                thr = float(self.config.get("positive_threshold", 0.0))
                pos = pos[pos["weight"] > thr] if thr else pos
                for u, g in pos.sort_values("weight", ascending=False).groupby("user_id"):
                    self._user_items[str(u)] = g["item_id"].astype(str).tolist()
        hist = self._user_items.get(str(user_id))
        if hist is None:
            raise NotFoundError(f"unknown user {user_id!r}")
        return hist

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

    def mixed_query_vector(self, *, text: str | None = None, user: str | None = None,
                           items: Sequence[str] | None = None, vectors: Mapping[str, np.ndarray] | None = None,
                           weights: Mapping[str, float] | None = None, user_source: str = "items") -> np.ndarray:
        """One query from any weighted mix of a text, a user, example items and raw modality
        vectors, e.g. ``weights={"text": .7, "user": .3}``; each part is projected into the
        space, normalized, weighted (default 1) and summed, then normalized."""
        parts: dict[str, np.ndarray] = {}
        if text is not None:
            parts["text"] = self.text_query_vector(text)
        if user is not None:
            parts["user"] = self.user_vector(user, source=user_source)
        if items:
            parts["items"] = self.items_vector(items)
        for m, x in (vectors or {}).items():
            parts[m] = self.query_vector(m, x)
        if not parts:
            raise InputError("give at least one of text, user, items or vectors", field="query")
        w = dict(weights or {})
        unknown = set(w) - set(parts)
        if unknown:
            raise InputError(f"weights for parts not given: {sorted(unknown)}", field="weights")
        return l2_normalize(sum(float(w.get(k, 1.0)) * l2_normalize(v) for k, v in parts.items()))

    def items_vector(self, item_ids: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
        """Mean of the items' multimodal vectors (a user or playlist profile)."""
        if not item_ids:
            raise InputError("need at least one item", field="items")
        vs = []
        for i in item_ids:
            v = self.index.vector(i)
            if v is None:
                raise NotFoundError(f"unknown item {i!r}")
            vs.append(v)
        w = np.ones(len(vs)) if weights is None else np.asarray(weights, dtype=np.float32)
        return l2_normalize((np.stack(vs) * w[:, None]).sum(axis=0))

    # ------------------------------------------------------------------ applications
    def search(self, text: str, k: int = 10, *, where: Where = None, offset: int = 0,
               mode: str | None = None) -> list[Hit]:
        """Natural-language search. ``mode``: ``"multi"`` (the text query projected into the
        fused space, paper 001), ``"text"`` (the text model's own space), ``"lexical"`` (BM25
        over the item descriptions), ``"hybrid"`` (the default: reciprocal rank fusion of the
        fused space, the text model weighted ``search.hybrid_text_weight`` and BM25 weighted
        ``search.hybrid_bm25_weight``, both 2 by default as chosen on validation queries in
        docs/evaluation.md; a BM25 weight of 0 leaves the lexical list out).
        Hybrid, text and lexical scores are RRF scores / text-model cosines / BM25 scores,
        not fused-space cosines."""
        mode = mode or self.config.get("search", {}).get("mode", "hybrid")
        if mode not in SEARCH_MODES:
            raise InputError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}", field="mode")
        if mode == "lexical":
            return self._hits(self._lexical_search(text, k, where, offset))
        if mode == "multi" or "text" not in self.config["input_files"]:
            return self._hits(self.index.search(self.text_query_vector(text), k, where=where, offset=offset))
        return self._hits(self._text_scores_search(text, k, where, offset, mode))

    def lexical_index(self) -> Any:
        """BM25 over the items' descriptions (:class:`talkrec.index.lexical.LexicalIndex`), built
        on first use and again after :meth:`add_items` changes the items."""
        from .index.lexical import LexicalIndex

        lex = self._lexical
        if lex is None:
            meta = self.index.meta
            texts = meta["description"] if "description" in meta else meta.get("name", pd.Series([""] * len(meta)))
            lex = self._lexical = LexicalIndex([t if isinstance(t, str) else "" for t in texts.tolist()])
        return lex

    def _lexical_scores(self, text: str, allowed: np.ndarray | None) -> np.ndarray:
        s = self.lexical_index().scores(text.strip())
        s = np.where(s > 0, s, -np.inf)
        return s if allowed is None else np.where(allowed, s, -np.inf)

    def _lexical_search(self, text: str, k: int, where: Where, offset: int) -> list[tuple[str, float]]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("query text is empty", field="query")
        s = self._lexical_scores(text, self.index.mask(where))
        top = top_k(s, k + offset)
        return [(self.index.ids[i], float(s[i])) for i in top[offset:]]

    def _text_scores_search(self, text: str, k: int, where: Where, offset: int, mode: str) -> list[tuple[str, float]]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("query text is empty", field="query")
        q_raw = self.text_encoder().encode(text.strip(), kind="query")
        T = self.embeddings("text")
        has = ~np.isnan(T).any(axis=1)
        s_text = np.where(has, np.nan_to_num(T) @ q_raw, -np.inf)
        allowed = self.index.mask(where)
        if allowed is not None:
            s_text = np.where(allowed, s_text, -np.inf)
        need = k + offset
        if mode == "text":
            top = top_k(s_text, need)
            return [(self.index.ids[i], float(s_text[i])) for i in top[offset:]]
        # hybrid: reciprocal rank fusion of the fused space and the text model's own space
        s_multi = self.index.vectors @ self.fusion.project("text", q_raw)
        if allowed is not None:
            s_multi = np.where(allowed, s_multi, -np.inf)
        scfg = self.config.get("search", {})
        depth = max(int(scfg.get("rrf_depth", 1000)), need)
        lists = [top_k(s_multi, depth), top_k(s_text, depth)]
        weights = [1.0, float(scfg.get("hybrid_text_weight", 2.0))]
        w_bm25 = float(scfg.get("hybrid_bm25_weight", 2.0))
        if w_bm25 > 0:
            lists.append(top_k(self._lexical_scores(text, allowed), depth))
            weights.append(w_bm25)
        fused = rrf_scores(lists, len(s_multi), c=float(scfg.get("rrf_c", 60.0)), weights=weights)
        fused[~np.isfinite(s_multi)] = -np.inf
        fused[fused <= 0] = -np.inf
        top = top_k(fused, need)
        return [(self.index.ids[i], float(fused[i])) for i in top[offset:]]

    def similar(self, item_id: str, k: int = 10, *, where: Where = None, offset: int = 0) -> list[Hit]:
        """Items nearest to ``item_id`` in the fused space (itself excluded)."""
        return self._hits(self.index.search(self.item_vector(item_id), k, where=where, exclude=[item_id], offset=offset))

    def recommend(self, *, items: Sequence[str] | None = None, user: str | None = None, k: int = 10,
                  where: Where = None, offset: int = 0, exclude_seen: bool = True) -> list[Hit]:
        """Recommend from a list of items or a known user's history (mean of their items)."""
        if (items is None) == (user is None):
            raise InputError("give exactly one of items or user", field="items")
        hist = list(items) if items is not None else self.user_history(user)  # type: ignore[arg-type]
        q = self.items_vector(hist)
        excl = hist if exclude_seen else []
        return self._hits(self.index.search(q, k, where=where, exclude=excl, offset=offset))

    def personalized_search(self, text: str, user: str | None = None, *, items: Sequence[str] | None = None,
                            alpha: float = 0.3, k: int = 10, where: Where = None, offset: int = 0,
                            exclude_seen: bool = False) -> list[Hit]:
        """Text query blended with a user profile: ``normalize((1-alpha)*q_text + alpha*q_user)``."""
        if not 0 <= alpha <= 1:
            raise InputError(f"alpha must be in [0, 1], got {alpha}", field="alpha")
        if (items is None) == (user is None):
            raise InputError("give exactly one of user or items", field="user")
        q = self.mixed_query_vector(text=text, user=user, items=items, weights={
            "text": 1 - alpha, ("user" if user is not None else "items"): alpha})
        hist = list(items) if items is not None else self.user_history(user)  # type: ignore[arg-type]
        return self._hits(self.index.search(q, k, where=where, exclude=hist if exclude_seen else [], offset=offset))

    def search_by_vector(self, modality: str, x: np.ndarray, k: int = 10, *, where: Where = None,
                         offset: int = 0) -> list[Hit]:
        """Query by example: a raw vector of any modality (e.g. audio descriptors)."""
        return self._hits(self.index.search(self.query_vector(modality, x), k, where=where, offset=offset))

    def continue_playlist(self, seeds: Sequence[str], k: int = 10, *, where: Where = None, recency: float = 0.7,
                          diversity: float = 0.0, max_per: tuple[str, int] | None = None,
                          method: str = "auto") -> list[Hit]:
        """Next items for an ordered playlist: no duplicates, optional MMR ``diversity`` in
        [0, 1) and at most ``max_per=(field, n)`` items per value of a metadata field.

        ``method="knn"``: the seeds' mean vector weighted towards the end
        (``recency**(n-1-i)``); ``"session"``: the attached session model (paper 002), with
        kNN as the fallback for seeds it does not know; ``"auto"``: session if attached."""
        from .playlists import continue_playlist
        if method not in ("auto", "knn", "session"):
            raise InputError(f"method must be auto, knn or session, got {method!r}", field="method")
        if method == "session" and self.session_model() is None:
            raise InputError("no session model is attached to this space (talkrec sessions-attach)", field="method")
        use_session = method != "knn" and self.session_model() is not None
        return continue_playlist(self, seeds, k, where=where, recency=recency, diversity=diversity, max_per=max_per,
                                 session=self.session_model() if use_session else None)

    def session_model(self) -> Any:
        """The session model attached under ``<space>/session_model`` (or ``None``)."""
        if self._session_model is None and (self.path / "session_model").exists():
            from .sessions.recommender import SessionRecommender
            self._session_model = SessionRecommender.load(self.path / "session_model")
        return self._session_model

    def attach_session_model(self, model_dir: str | Path) -> None:
        """Copy a trained session model (``talkrec sessions``) into this space, atomically."""
        import shutil

        from ._atomic import atomic_dir
        src = Path(model_dir)
        if not src.is_dir():
            raise NotFoundError(f"no session model folder at {src}")
        with atomic_dir(self.path / "session_model") as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        self._session_model = None
        if self.session_model() is None:
            raise InputError(f"{src} is not a loadable session model", path=str(src))

    def generate_playlist(self, text: str, n: int = 20, *, where: Where = None, coherence: float = 0.5,
                          pool: int = 200) -> tuple[list[Hit], dict[str, float]]:
        """A playlist of ``n`` items for a text query that also hangs together; returns the
        hits and the measured relevance/coherence (see :mod:`talkrec.playlists`)."""
        from .playlists import generate_playlist
        return generate_playlist(self, text, n, where=where, coherence=coherence, pool=pool)

    def explain(self, a: str, b: str) -> dict[str, Any]:
        """Why two items are close: shared tags and each modality's share of the cosine."""
        from .explain import explain
        return explain(self, a, b)

    # ------------------------------------------------------------------ writes
    def add_items(self, records: Sequence[Mapping[str, Any]], *, persist: bool = True) -> list[dict[str, Any]]:
        """Add or update items without retraining (cold start): each record has
        ``item_id``, ``name``, optional ``tags`` (list or ``{category: [..]}``),
        ``description``, metadata fields, ``vectors`` ``{modality: [floats]}`` in the
        modality's raw input space, and ``media`` ``{modality: file path}`` for modalities
        built from audio or image files. The record is described (TEMPLATE), embedded with the
        space's text model, projected through the trained encoders and upserted."""
        from .coldstart import add_items
        with self._write_lock:
            new_index, new_inputs, out = add_items(self, records)
            if persist:                                  # durable first (atomic renames) ...
                from ._atomic import save_with
                for key, X in new_inputs.items():
                    save_with(self.path / "inputs" / f"{key}.npy", lambda p, X=X: np.save(p, X), suffix=".npy")
                new_index.save(self.path / "index")
            self.inputs, self.index = new_inputs, new_index  # ... then served
            self._emb_cache = {}
            self._lexical = None
            return out
