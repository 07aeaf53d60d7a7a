"""Media files as queries or as new items: a file goes through the encoder (and settings) the
space's modality was built with (audio: MusiCNN, image: EfficientNet-Lite0), by the one
media path of :mod:`talkrec.encoders.media`, then through the trained projection."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..encoders.media import encode_media_file
from ..encoders.media_cache import CacheArg
from ..errors import InputError
from ..index.filters import Where

if TYPE_CHECKING:
    from .core import Space
    from .hits import Hit


def content_spec(space: "Space", modality: str) -> Mapping[str, Any]:
    """The build's content spec of ``modality`` (``{}`` for text / CF / unspecified)."""
    if modality not in space.modalities:
        raise InputError(f"unknown modality {modality!r}; this space has {space.modalities}", field="modality")
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
