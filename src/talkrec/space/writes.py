"""The write methods of :class:`~talkrec.space.core.Space` (add, update, delete items, attach a
session model, compact): each validates and embeds outside any lock, then goes through the
space's storage engine (:class:`~talkrec.space.writer.SpaceStore`)."""
from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_dir
from ..errors import InputError, NotFoundError
from ..index.snapshot import Snapshot
from .writer import SpaceStore

__all__ = ["SpaceWrites"]


class SpaceWrites:
    """The write methods of :class:`~talkrec.space.core.Space` (``self.store``: its
    :class:`SpaceStore`)."""

    store: SpaceStore
    index: Snapshot
    path: Path
    _shared: Any

    def pinned(self) -> Any:  # pragma: no cover - Space defines it
        raise NotImplementedError

    def session_model(self) -> Any:  # pragma: no cover - Space defines it
        raise NotImplementedError

    def add_items(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Add or update items without retraining (cold start): each record has
        ``item_id``, ``name``, optional ``tags`` (list or ``{category: [..]}``),
        ``description``, metadata fields (``metadata`` ``{field: value}`` or at the top level,
        checked against the existing columns' types), ``vectors`` ``{modality: [floats]}`` in
        the modality's raw input space, and ``media`` ``{modality: file path}`` for modalities
        built from audio or image files. The record is described (TEMPLATE), embedded with the
        space's text model, projected through the trained encoders and upserted (metadata
        fields an update does not give keep their values).

        Bad records raise :class:`InputError` (row and field) before anything is written. The
        batch is one log record, fsync'ed before this returns and before readers see it; a
        failure while persisting raises :class:`~talkrec.space.files.WriteError`."""
        from . import coldstart          # descriptions and catalog code: loaded by the first write, not by reads
        batch, summary = coldstart.prepare(self.pinned(), records)   # embedding: no lock held
        self.store.upsert(batch)
        return summary

    def remove(self, item_ids: Sequence[str]) -> int:
        """Delete items (a batch: :class:`NotFoundError` for an unknown id, and nothing is
        deleted); durable before this returns. Returns how many items the space has left."""
        if isinstance(item_ids, str) or not item_ids:
            raise InputError("give a non-empty list of item ids", field="item_ids")
        self.store.remove([str(i) for i in item_ids])
        return len(self.index)

    def attach_session_model(self, model_dir: str | Path) -> None:
        """Copy a trained session model (``talkrec sessions``) into this space, atomically,
        once it is checked: a folder that is not a loadable model, or one that knows none of
        the space's items, is refused and the model in place is kept."""
        from ..sessions.recommender import SessionRecommender

        src = Path(model_dir)
        if not src.is_dir():
            raise NotFoundError(f"no session model folder at {src}")
        SessionRecommender.check_attachable(src, [str(i) for i in self.index.ids])
        with self.store.writing():
            copy_session_model(self.path, src)
        self._shared.session_model = None

    def compact(self) -> dict[str, Any]:
        """Fold the writes since the last generation into a new one now (the space also does
        this in the background once enough has changed); reads and writes go on meanwhile."""
        return self.store.compact()

    def close(self) -> None:
        """Finish a running compaction and release the space for other writing processes."""
        self.store.close()


def copy_session_model(path: Path, src: Path) -> None:
    """Copy a trained session model folder into the space at ``path``, atomically."""
    if not src.is_dir():
        raise NotFoundError(f"no session model folder at {src}")
    with atomic_dir(path / "session_model") as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
