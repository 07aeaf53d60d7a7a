"""Fusion inputs: the views of each modality, which rows are present, the split of the
trainable items into training and validation, and the standardization statistics.

Inputs are ``{modality: matrix}`` with one row per item, in the same item order for every
modality; a row of NaN marks a missing modality. A modality may also be a list of
matrices, several *views* of it (e.g. TEMPLATE and GEN descriptions).
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError

ModalityInput = np.ndarray | Sequence[np.ndarray]


def as_float32(v: object, name: str) -> np.ndarray:
    """``v`` as a float32 array of modality ``name``: :class:`InputError` (field ``X[name]``) for
    values that are not numbers or are infinite (or too large for float32) in a row."""
    field = f"X[{name}]"
    if v is None or isinstance(v, (str, bytes)):
        raise InputError(f"modality '{name}': expected numbers, got {type(v).__name__}", field=field)
    try:
        with np.errstate(over="ignore"):                  # too large for float32: inf, refused below
            a = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"modality '{name}': expected numbers ({e})", field=field) from None
    inf = np.isinf(a).any(axis=-1) if a.ndim else np.isinf(a)[None]
    if inf.any():
        rows = np.flatnonzero(inf.reshape(-1))
        raise InputError(f"modality '{name}': infinite value in row {int(rows[0]) + 1} ({len(rows)} rows; too "
                         "large for float32, or inf); a missing modality is a row of NaN", field=field)
    return a


def as_views(x: ModalityInput, name: str) -> list[np.ndarray]:
    """The views of modality ``name`` as float32 matrices of one shape (NaN marks a missing
    row; an infinite value is an error)."""
    if x is None or isinstance(x, (str, bytes)):
        raise InputError(f"modality '{name}': expected a matrix or a list of matrices, got {type(x).__name__}",
                         field=f"X[{name}]")
    vs = [x] if isinstance(x, np.ndarray) else list(x)
    if not vs:
        raise InputError(f"modality '{name}': no views given", field=f"X[{name}]")
    out = []
    for v in vs:
        v = as_float32(v, name)
        if v.ndim != 2:
            raise InputError(f"modality '{name}': expected a 2-D matrix, got shape {v.shape}", field=f"X[{name}]")
        out.append(v)
    if len({v.shape for v in out}) != 1:
        raise InputError(f"modality '{name}': all views must have the same shape", field=f"X[{name}]")
    return out


def present_mask(v: np.ndarray) -> np.ndarray:
    """Rows that hold a vector (no NaN)."""
    return ~np.isnan(v).any(axis=1)


def check_inputs(X: Mapping[str, ModalityInput], pairs: Sequence[Sequence[str]] | None,
                 ) -> tuple[dict[str, list[np.ndarray]], list[tuple[str, str]]]:
    """The views of every modality and the modality pairs to train (default: all pairs)."""
    if not isinstance(X, Mapping):
        raise InputError(f"fusion needs at least two modalities, got type {type(X).__name__}; expected a mapping "
                         "{modality: matrix (n_items, dim)}", field="X")
    if len(X) < 2:
        raise InputError(f"fusion needs at least two modalities, got {list(X)}", field="X")
    views = {m: as_views(v, m) for m, v in X.items()}
    n = {m: v[0].shape[0] for m, v in views.items()}
    if len(set(n.values())) != 1:
        raise InputError(f"all modalities must have one row per item; got row counts {n}", field="X")
    modalities = list(views)
    out: list[tuple[str, str]] = []
    for p in pairs or itertools.combinations(modalities, 2):
        if len(p) != 2 or p[0] not in views or p[1] not in views or p[0] == p[1]:
            raise InputError(f"pair {tuple(p)} must name two different given modalities {modalities}", field="pairs")
        out.append((p[0], p[1]))
    return views, out


def presence(views: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """``(n_items, n_views)`` masks of the present rows of each modality."""
    return {m: np.stack([present_mask(v) for v in vs], axis=1) for m, vs in views.items()}


def split_items(present: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], validation_fraction: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: the items with both modalities of some pair, a
    ``validation_fraction`` of them (at most all but two) held out at random."""
    has = {m: p.any(axis=1) for m, p in present.items()}
    trainable = np.zeros(len(next(iter(has.values()))), dtype=bool)
    for a, b in pairs:
        trainable |= has[a] & has[b]
    idx = np.flatnonzero(trainable)
    if len(idx) < 2:
        raise InputError("fewer than two items have two or more modalities; nothing to train on", field="X")
    rng.shuffle(idx)
    n_val = min(int(round(len(idx) * validation_fraction)), len(idx) - 2)
    return np.sort(idx[n_val:]), np.sort(idx[:n_val])


def standardization(views: Mapping[str, list[np.ndarray]], rows: np.ndarray, standardize: bool,
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-modality ``(mean, std)`` over the present ``rows`` of all views (std < 1e-6 -> 1);
    zeros and ones when ``standardize`` is false."""
    mean, std = {}, {}
    for m, vs in views.items():
        present = np.concatenate([v[rows][present_mask(v[rows])] for v in vs])
        d = vs[0].shape[1]
        if standardize and len(present):
            mu, sd = present.mean(axis=0), present.std(axis=0)
            sd = np.where(sd < 1e-6, 1.0, sd)
        else:
            mu, sd = np.zeros(d), np.ones(d)
        mean[m], std[m] = mu.astype(np.float32), sd.astype(np.float32)
    return mean, std
