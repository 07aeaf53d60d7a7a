"""Text search beyond the fused space: BM25 over the descriptions, the text model's own
space, and their reciprocal rank fusion with the fused space (``mode="hybrid"``).

Each function returns ``(item_id, score)`` pairs, best first, ``offset`` skipped; the Space
turns them into hits."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError
from ..index.filters import Where
from ..index.lexical import LexicalIndex
from ..ranking import rrf_scores, top_k

if TYPE_CHECKING:
    from .core import Space


def lexical_index(meta: pd.DataFrame) -> LexicalIndex:
    """BM25 over the items' descriptions (their names where there are none)."""
    texts = meta["description"] if "description" in meta else meta.get("name", pd.Series([""] * len(meta)))
    return LexicalIndex([t if isinstance(t, str) else "" for t in texts.tolist()])


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise InputError("query text is empty", field="query")


def lexical_scores(space: "Space", text: str, allowed: np.ndarray | None) -> np.ndarray:
    """BM25 score per item; ``-inf`` where nothing matches or the filter excludes the item."""
    s = space.lexical_index().scores(text.strip())
    s = np.where(s > 0, s, -np.inf)
    return s if allowed is None else np.where(allowed, s, -np.inf)


def lexical_search(space: "Space", text: str, k: int, where: Where, offset: int) -> list[tuple[str, float]]:
    """BM25 over the item descriptions."""
    _check_text(text)
    s = lexical_scores(space, text, space.index.mask(where))
    top = top_k(s, k + offset)
    return [(space.index.ids[i], float(s[i])) for i in top[offset:]]


def text_search(space: "Space", text: str, k: int, where: Where, offset: int, mode: str) -> list[tuple[str, float]]:
    """``mode="text"``: cosine in the text model's own space; ``"hybrid"``: reciprocal rank
    fusion of the fused space, the text model (weight ``search.hybrid_text_weight``) and
    BM25 (weight ``search.hybrid_bm25_weight``; 0 leaves it out)."""
    _check_text(text)
    index = space.index
    q_raw = space.text_encoder().encode(text.strip(), kind="query")
    T = space.embeddings("text")
    has = ~np.isnan(T).any(axis=1)
    s_text = np.where(has, np.nan_to_num(T) @ q_raw, -np.inf)
    allowed = index.mask(where)
    if allowed is not None:
        s_text = np.where(allowed, s_text, -np.inf)
    need = k + offset
    if mode == "text":
        top = top_k(s_text, need)
        return [(index.ids[i], float(s_text[i])) for i in top[offset:]]
    s_multi = index.vectors @ space.fusion.project("text", q_raw)
    if allowed is not None:
        s_multi = np.where(allowed, s_multi, -np.inf)
    scfg = space.config.get("search", {})
    depth = max(int(scfg.get("rrf_depth", 1000)), need)
    lists = [top_k(s_multi, depth), top_k(s_text, depth)]
    weights = [1.0, float(scfg.get("hybrid_text_weight", 2.0))]
    w_bm25 = float(scfg.get("hybrid_bm25_weight", 2.0))
    if w_bm25 > 0:
        lists.append(top_k(lexical_scores(space, text, allowed), depth))
        weights.append(w_bm25)
    fused = rrf_scores(lists, len(s_multi), c=float(scfg.get("rrf_c", 60.0)), weights=weights)
    fused[~np.isfinite(s_multi)] = -np.inf
    fused[fused <= 0] = -np.inf
    top = top_k(fused, need)
    return [(index.ids[i], float(fused[i])) for i in top[offset:]]
