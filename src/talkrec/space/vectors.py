"""Query vectors: raw vectors checked, profiles as weighted means of item vectors, and
weighted mixes of several query parts (paper 001 section 3.2)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, NotFoundError, shown
from ..index.store import VectorIndex, l2_normalize
from ..limits import is_number

if TYPE_CHECKING:
    from .core import Space


def checked_vector(modality: str, x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` as a float32 vector of ``dim`` finite numbers, else :class:`InputError`."""
    try:
        x64 = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"a vector is a list of numbers, got {type(x).__name__} {x!r:.60}", field="vector") from None
    if x64.ndim != 1 or x64.shape[0] != dim:
        raise InputError(f"modality {modality!r} takes vectors of dimension {dim}, got shape {list(x64.shape)}",
                         field="vector")
    if not np.isfinite(x64).all():
        raise InputError("vector has NaN or infinite values", field="vector")
    if not (np.abs(x64) < 3e38).all():
        raise InputError("vector values must be finite 32-bit floats (|x| < 3e38)", field="vector")
    return x64.astype(np.float32)


def id_list(items: Sequence[str], field: str = "items") -> list[str]:
    """``items`` as a list of ids; one bare string (a sequence of characters) is refused."""
    if isinstance(items, (str, bytes)):
        raise InputError(f"give a list of item ids, not one string: [{shown(items)}] rather than {shown(items)}",
                         field=field)
    try:
        return list(items)
    except TypeError:
        raise InputError(f"give a list of item ids, got {type(items).__name__} {items!r:.60}", field=field) from None


def mean_vector(index: VectorIndex, item_ids: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
    """``normalize(sum_i w_i v_i)`` over the items' fused vectors (``w_i = 1`` by default)."""
    item_ids = id_list(item_ids)
    if not item_ids:
        raise InputError("need at least one item", field="items")
    V = item_vectors(index, item_ids)
    w = np.ones(len(V)) if weights is None else _checked_weights(weights, len(V))
    return l2_normalize((V * w[:, None]).sum(axis=0))


def item_vectors(index: VectorIndex, item_ids: Sequence[str]) -> np.ndarray:
    """The fused vectors of ``item_ids``, one row each; an unknown id: :class:`NotFoundError`."""
    vs = []
    for i in item_ids:
        v = index.vector(i)
        if v is None:
            raise NotFoundError(f"unknown item {shown(i)}")
        vs.append(v)
    return np.stack(vs) if vs else np.zeros((0, index.dim), dtype=np.float32)


def signed_vector(index: VectorIndex, item_ids: Sequence[str], negative: Sequence[str], gamma: float) -> np.ndarray:
    """Rocchio's query with negative examples: ``normalize(p - gamma * n)``, ``p`` and ``n`` the
    normalized means of the items' and the negatives' vectors (``p = 0`` without items: the
    items least like the negatives). Without negatives, :func:`mean_vector` of the items."""
    if not negative:
        return mean_vector(index, item_ids)
    p = mean_vector(index, item_ids) if item_ids else 0.0
    q = p - gamma * mean_vector(index, negative)
    if not item_ids and not gamma > 0:
        raise InputError("negative examples alone need a negative_weight above 0 (at 0 they are only left out)",
                         field="negative_weight")
    if not np.linalg.norm(q) > 1e-9:
        raise InputError("the items and the negative examples cancel out (the same items on both sides?)",
                         field="negative")
    return l2_normalize(q)


def _checked_weights(weights: Sequence[float], n: int) -> np.ndarray:
    """``weights`` as an array when they are ``n`` finite numbers, not all 0; else
    :class:`InputError` (field ``weights``: a wrong length was stretched, NaN failed later)."""
    w = list(weights) if isinstance(weights, (list, tuple, np.ndarray)) else None
    if w is None or len(w) != n or not all(is_number(x) and np.isfinite(x) for x in w) or not any(w):
        raise InputError(f"weights must be {n} finite numbers (one per item), not all 0; got {weights!r}",
                         field="weights")
    return np.asarray(w, dtype=np.float32)


def mixed_vector(space: "Space", *, text: str | None, user: str | None, items: Sequence[str] | None,
                 vectors: Mapping[str, np.ndarray] | None, weights: Mapping[str, float] | None,
                 user_source: str) -> np.ndarray:
    """``normalize(sum_p w_p normalize(q_p))`` over the given parts ``p`` (``w_p = 1`` by default)."""
    parts: dict[str, np.ndarray] = {}
    if text is not None:
        parts["text"] = space.text_query_vector(text)
    if user is not None:
        parts["user"] = space.user_vector(user, source=user_source)
    if items is not None:
        parts["items"] = space.items_vector(items)
    for m, x in (vectors or {}).items():
        parts[m] = space.query_vector(m, x)
    if not parts:
        raise InputError("give at least one of text, user, items or vectors", field="query")
    w = dict(weights or {})
    unknown = set(w) - set(parts)
    if unknown:
        raise InputError(f"weights for parts not given: {sorted(unknown)}", field="weights")
    bad = {k: v for k, v in w.items() if not (is_number(v) and np.isfinite(v))}
    if bad:
        raise InputError(f"weights must be finite numbers, got {bad}", field="weights")
    return l2_normalize(sum(float(w.get(k, 1.0)) * l2_normalize(v) for k, v in parts.items()))
