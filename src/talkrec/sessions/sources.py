"""Item embeddings to initialise session models with: CF, text, audio, MULTI, from a Space.

Every function returns an ``(ids, matrix)`` pair (NaN rows = missing), the one format
:func:`talkrec.sessions.init.init_table` takes, so any talkrec embedding plugs in.

For the study the CF and MULTI vectors are computed from the *training sessions only*
(the session x item matrix, as RTA's MF baseline does), so no held-out behaviour leaks
into the initialization. An embedding taken from a built Space (``space_vectors``) was
trained on whatever interactions built that Space: if those include the test users, the
comparison is optimistic for that embedding.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)

Vectors = tuple[np.ndarray, np.ndarray]


def cf_vectors(sessions: Sequence[Sequence[str]], item_ids: Sequence[str], *, factors: int = 64,
               regularization: float = 0.05, alpha: float = 10.0, iterations: int = 15,
               random_state: int | None = 0) -> Vectors:
    """Implicit-ALS item factors of the session x item occurrence matrix (confidence 1 + alpha*log1p(n))."""
    from ..encoders.cf import ALSEncoder

    rows = [(str(j), str(x)) for j, s in enumerate(sessions) for x in s]
    if not rows:
        raise InputError("no sessions to factorize", field="sessions")
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    df = df.groupby(["user_id", "item_id"], as_index=False).size().rename(columns={"size": "weight"})
    enc = ALSEncoder(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
                     random_state=random_state).fit(df, item_ids=np.asarray(item_ids, dtype=str))
    return enc.item_ids_, enc.item_factors_


def text_vectors(texts: pd.Series, item_ids: Sequence[str], *, model: str = "minilm",
                 cache_dir: str | Path | None = None, batch_size: int = 64) -> Vectors:
    """Sentence embeddings of ``texts[item_id]`` (NaN rows for items without a text), cached."""
    ids = [str(i) for i in item_ids if str(i) in texts.index]
    docs = [str(texts[i]) for i in ids]
    key = hashlib.sha256(("\x1f".join([model, *ids, *docs])).encode("utf-8")).hexdigest()[:16]
    cache = Path(cache_dir) / f"text-{model}-{key}.npy" if cache_dir is not None else None
    if cache is not None and cache.exists():
        X = np.load(cache, allow_pickle=False)
        log.info("text vectors from cache %s", cache.name)
    else:
        from ..encoders.text import TextEncoder
        X = np.asarray(TextEncoder(model=model).encode(docs, batch_size=batch_size), dtype=np.float32)
        if cache is not None:
            from .._atomic import save_with
            save_with(cache, lambda p: np.save(p, X, allow_pickle=False), suffix=".npy")
    return np.asarray(ids, dtype=str), X


def space_vectors(space_dir: str | Path, kind: str = "multi") -> Vectors:
    """``(Space.item_ids, Space.embeddings(kind))`` of a built talkrec Space."""
    from ..space import Space
    sp = Space.load(space_dir)
    return np.asarray(sp.item_ids, dtype=str), np.asarray(sp.embeddings(kind), dtype=np.float32)


def multi_vectors(modalities: Mapping[str, Vectors], item_ids: Sequence[str], *, out_dim: int = 200,
                  max_epochs: int = 60, patience: int = 10, random_state: int | None = 0) -> Vectors:
    """The multimodal (MULTI) embedding: talkrec's ContrastiveFusion over the given modalities.

    Items that have at least one modality get the mean of their encoder outputs
    (paper 001 / 004); items with none stay missing.
    """
    from ..fusion.model import ContrastiveFusion
    from .init import align

    ids = np.asarray(item_ids, dtype=str)
    X = {m: align(v[0], v[1], ids) for m, v in modalities.items()}
    if len(X) < 2:
        raise InputError(f"MULTI needs at least two modalities, got {sorted(X)}", field="multi")
    fus = ContrastiveFusion(out_dim=out_dim, max_epochs=max_epochs, patience=patience,
                            random_state=random_state).fit(X)
    Z = np.asarray(fus.transform(X), dtype=np.float32)
    none = ~np.column_stack([np.isfinite(x).all(axis=1) for x in X.values()]).any(axis=1)
    Z[none] = np.nan
    return ids, Z


def pca_reduce(vectors: Vectors, dim: int, *, random_state: int | None = 0) -> Vectors:
    """PCA of the present rows down to ``dim`` when the input is wider (NaN rows kept)."""
    ids, X = vectors
    X = np.asarray(X, dtype=np.float32)
    if X.shape[1] <= dim:
        return ids, X
    from sklearn.decomposition import PCA
    present = np.isfinite(X).all(axis=1)
    out = np.full((len(X), dim), np.nan, dtype=np.float32)
    if present.sum() > dim:
        out[present] = PCA(n_components=dim, random_state=random_state).fit_transform(X[present]).astype(np.float32)
    return ids, out
