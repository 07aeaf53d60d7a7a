"""Only the index stage, for a space already built: point it at another ``index`` block
(and the check of an ``index`` block that every build runs first, :func:`index_settings`).

``reindex(space, {"backend": "milvus", "uri": "items.db"})`` fills a Milvus collection
with the space's live items (their fused vectors and filterable metadata, as they are now,
cold-start writes included) and rewrites the ``index`` block of ``space.json``; nothing is
trained or encoded again. ``reindex(space, {"ann": False})`` goes back to the embedded
index (the space always keeps its own index files). The space must not be open for
writing in another process (it takes the space's ``LOCK``); the collection takes its name
only together with the new ``space.json``, so a failure leaves the space as it was.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._atomic import write_json
from ..errors import TalkrecError
from ..index.backend import backend_name, embedded_params

__all__ = ["index_settings", "reindex"]


def reindex(path: str | Path, index: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild only the index of the space at ``path`` for the ``index`` block ``index``
    (a relative Milvus Lite path is taken from the working directory); returns what was done."""
    from ..index.milvus import MilvusSettings, check_answers, default_collection, staged_collection
    from ..space.core import Space
    from ..space.files import read_config

    path = Path(path)
    cfg = read_config(path)
    settings = None
    if backend_name(index) != "embedded":
        settings = MilvusSettings.from_config(index, default_collection=default_collection(str(cfg["name"])))
        check_answers(settings)
    block = {**embedded_params(cfg.get("index", {})), **embedded_params(index),
             **(settings.to_config() if settings is not None else {})}
    space = Space.load(path, auto_compact=False)
    info: dict[str, Any] = {"space": str(path), "index": block}
    try:
        with space.store.writing():                  # the space's writer: no write lands meanwhile
            snap = space.store.snapshot
            info["items"] = len(snap)
            try:
                with staged_collection(settings, snap.ids, snap.vectors, snap.meta, info) as swap_in:
                    swap_in()
                    write_json(path / "space.json", {**cfg, "index": block})
            except (TalkrecError, OSError):
                raise
            except Exception as e:          # the database refused (an index_type it does not know...)
                where = f"{settings.uri}, collection {settings.collection!r}, " if settings is not None else ""
                raise TalkrecError(f"{path}: the vector database ({where}index_type {block.get('index_type')!r}) "
                                   f"refused the index ({type(e).__name__}: {e}); the space was not changed") from e
    finally:
        space.close()
    return info


def index_settings(cfg: Mapping[str, Any]) -> Any:
    """The checked Milvus settings of the config's ``index`` block (``None`` for the
    embedded index), its database answering: :class:`InputError` naming ``index.uri`` /
    ``index.collection`` before the build writes anything."""
    index = cfg.get("index") or {}
    if backend_name(index) == "embedded":
        return None
    from ..index.milvus import MilvusSettings, check_answers, default_collection
    base = Path(cfg["_config_path"]).parent if cfg.get("_config_path") else None
    settings = MilvusSettings.from_config(index, default_collection=default_collection(str(cfg["name"])), base=base)
    check_answers(settings)
    return settings
