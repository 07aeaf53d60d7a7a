"""The tiny synthetic catalog and build config that many tests share (a module, not the
conftest, so that test modules can import it by one unambiguous name)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TINY_NOVELTY", "TINY_SPACE_CONFIG", "copy_space", "make_tiny_catalog"]


def _link_model_files(src: str, dst: str) -> str:
    """``copytree``'s copy function: a file inside a ``text_model/`` folder is hard-linked
    (the space's exported encoder, ~90 MB, which nothing writes in place: the product
    replaces files by renaming), every other file is copied; a link the file system refuses
    falls back to a copy."""
    if Path(src).parent.name == "text_model":
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)


#: the default novelty of the space ``tiny_novelty_space_dir`` (conftest) is built with: (recommend, similar)
TINY_NOVELTY = (0.5, 0.4)


def copy_space(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """A copy of the space folder ``src`` at ``dst`` that tests may write to, sharing the
    exported text model with ``src`` on disk (a suite that copied it whole wrote ~8 GB)."""
    shutil.copytree(src, dst, copy_function=_link_model_files)
    return Path(dst)


def make_tiny_catalog():
    """Three clusters of items ("metal", "jazz", "pop"), users who each like one cluster,
    and a 4-d content vector per item that encodes the cluster (some items lack it)."""
    from talkrec.data.catalog import Catalog, VectorTable

    rng = np.random.default_rng(0)
    genres = ["metal", "jazz", "pop"]
    rows, tags, inter, vec_ids, vecs = [], [], [], [], []
    for g_i, g in enumerate(genres):
        for j in range(20):
            iid = f"{g}{j}"
            rows.append({"item_id": iid, "name": f"{g.title()} Band {j}", "year": 1980 + 10 * g_i + j % 10,
                         "tags": [g, "band"], "genre": [g]})
            tags += [{"item_id": iid, "category": "genre", "tag": g, "weight": 5.0},
                     {"item_id": iid, "category": "other", "tag": "band", "weight": 1.0}]
            if j % 4 != 0:
                v = np.zeros(4)
                v[g_i] = 1.0
                vec_ids.append(iid)
                vecs.append(v + 0.05 * rng.normal(size=4))
        for u in range(15):
            for j in rng.choice(20, size=8, replace=False):
                inter.append({"user_id": f"u{g}{u}", "item_id": f"{g}{j}", "weight": float(rng.integers(1, 50))})
    return Catalog(items=pd.DataFrame(rows), tags=pd.DataFrame(tags), interactions=pd.DataFrame(inter),
                   vectors={"audio": VectorTable(np.array(vec_ids), np.array(vecs))}, name="tiny")


TINY_SPACE_CONFIG = {
    "name": "tiny", "seed": 0,
    "descriptions": {"template": {"header": "artist"}},
    "cf": {"params": {"factors": 8, "iterations": 10}},
    "content": {"audio": {"source": "vectors"}},
    "fusion": {"max_epochs": 60, "batch_size": 32, "learning_rate": 3e-3, "hidden_dim": 32, "out_dim": 16},
}


def tiny_session_model(path: str | os.PathLike[str], items: list[str]) -> Path:
    """A small next-item session model over ``items``, trained for two epochs and saved at
    ``path`` (sessions of four consecutive items, seeded)."""
    from talkrec.sessions.models import NextItemSessionModel
    rng = np.random.default_rng(0)
    sess = [[items[(a + t) % len(items)] for t in range(4)] for a in rng.integers(0, len(items), 60)]
    NextItemSessionModel(d_model=8, n_layers=1, n_heads=2, max_length=6, max_epochs=2, n_negatives=3,
                         device="cpu", random_state=0).fit(sess, item_ids=items).save(path)
    return Path(path)
