"""Media files as queries or as new items: a file goes through the encoder (and settings) the
space's modality was built with (audio: MusiCNN, image: EfficientNet-Lite0), by the one
media path of :mod:`talkrec.encoders.media`, then through the trained projection."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..encoders.media import NotMediaModality, encode_media_file
from ..encoders.media_cache import CacheArg
from ..errors import InputError
from ..index.filters import Where

if TYPE_CHECKING:
    from .core import Space
    from .hits import Hit


def content_spec(space: "Space", modality: str) -> Mapping[str, Any]:
    """The build's content spec of a content ``modality`` (``{}`` where unspecified). Text and
    CF are never encoded from files: an :class:`InputError` (text: send the text) or a
    :class:`NotMediaModality` (CF: its vectors come from interactions) says so."""
    if modality not in space.modalities:
        raise InputError(f"unknown modality {modality!r}; this space has {space.modalities}", field="modality")
    if modality == "text":
        raise InputError("the text modality is encoded from text, not from files: send the text as q "
                         "(GET /api/search?q=...), or call Space.search(text)", field="modality")
    if modality == "cf":
        raise NotMediaModality("this space's 'cf' modality comes from interactions (ALS item factors), not media "
                               "files, so a file cannot be encoded into it; query with a raw CF vector instead",
                               field="modality")
    content = space.config.get("build_config", {}).get("content") or {}
    spec = content.get(modality) or {}
    return spec if isinstance(spec, Mapping) else {}


def encode_media(space: "Space", modality: str, path: str | Path, *, cache: CacheArg | None = None,
                 name: str | None = None) -> np.ndarray:
    """The raw input vector of ``modality`` for one media file (errors name the file as
    ``name``, default its path)."""
    return encode_media_file(content_spec(space, modality), path, modality=modality, cache=cache, name=name)


def search_by_media(space: "Space", modality: str, path: str | Path, k: int = 10, *, where: Where = None,
                    offset: int = 0, cache: CacheArg | None = None, name: str | None = None) -> list["Hit"]:
    """Query by an audio or image file: encoded, projected, searched."""
    x = encode_media(space, modality, path, cache=cache, name=name)
    return space.search_by_vector(modality, x, k, where=where, offset=offset)
