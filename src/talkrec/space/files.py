"""A space on disk (written by :mod:`talkrec.pipeline`, updated by :meth:`Space.add_items`)::

    space.json            what was built, with which models and settings
    items.parquet         item metadata (+ description texts, modalities present)
    inputs/<modality>.npy raw modality vectors aligned with items (NaN rows = missing)
    fusion/               ContrastiveFusion (safetensors + config.json)
    cf/                   ALS factors (item + user), for personalization
    index/                VectorIndex of multimodal vectors + filterable metadata
    interactions.parquet  user histories (user_id, item_id, weight)
    session_model/        an attached session model (optional)
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_dir, save_with
from ..errors import NotFoundError, TalkrecError
from ..fusion.model import ContrastiveFusion
from ..fusion.projector import FusionProjector
from ..index.store import VectorIndex

log = logging.getLogger(__name__)


@dataclass
class SpaceFiles:
    """What :func:`read_space` loads."""

    config: dict[str, Any]
    index: VectorIndex
    fusion: ContrastiveFusion
    inputs: dict[str, np.ndarray]
    interactions: pd.DataFrame | None


def read_space(path: Path) -> SpaceFiles:
    """Load the space at ``path``; raw inputs are realigned with the index."""
    if not (path / "space.json").exists():
        raise NotFoundError(f"no talkrec space at {path} (space.json missing); build one with `talkrec build CONFIG`")
    config = json.loads((path / "space.json").read_text())
    index = VectorIndex.load(path / "index", ann=config.get("index", {}).get("ann", False))
    fusion = FusionProjector.load(path / "fusion")  # numpy: serving never imports torch
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
    return SpaceFiles(config, index, fusion, inputs, inter)


class WriteError(TalkrecError):
    """A write that could not be persisted; the space, in memory and on disk, is unchanged."""


def write_items(path: Path, index: VectorIndex, inputs: dict[str, np.ndarray]) -> None:
    """Persist an upsert: each raw-input matrix, then the index (each an atomic rename);
    any failure is a :class:`WriteError`."""
    try:
        for key, X in inputs.items():
            save_with(path / "inputs" / f"{key}.npy", lambda p, X=X: np.save(p, X), suffix=".npy")
        index.save(path / "index")
    except Exception as e:
        log.exception("persisting items to %s failed", path)
        raise WriteError(f"the items could not be persisted ({type(e).__name__}: {e}); nothing was changed") from e


def copy_session_model(path: Path, src: Path) -> None:
    """Copy a trained session model folder into the space at ``path``, atomically."""
    import shutil

    if not src.is_dir():
        raise NotFoundError(f"no session model folder at {src}")
    with atomic_dir(path / "session_model") as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
