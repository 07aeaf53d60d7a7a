"""Media files as queries or as new items: encode a file with the encoder the space's
modality was built with (audio: MusiCNN, image: EfficientNet-Lite0), then project it."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .index.filters import Where

if TYPE_CHECKING:
    from .space import Hit, Space

SOURCES = {"audio_files": "audio", "image_files": "image"}


def media_modalities(space: "Space") -> dict[str, str]:
    """``{modality: "audio" | "image"}`` for the space's modalities built from media files."""
    content = space.config.get("build_config", {}).get("content", {}) or {}
    return {m: SOURCES[spec.get("source")] for m, spec in content.items()
            if isinstance(spec, dict) and spec.get("source") in SOURCES and m in space.modalities}


@functools.lru_cache(maxsize=4)
def _encoder(kind: str, params_json: str) -> Any:
    import json
    params = json.loads(params_json)
    if kind == "audio":
        from .encoders.audio import AudioEncoder
        return AudioEncoder(**params)
    from .encoders.image import ImageEncoder
    return ImageEncoder(**params)


def encode_media(space: "Space", modality: str, path: str | Path) -> np.ndarray:
    """Raw input vector of ``modality`` for one media file (raises :class:`InputError`)."""
    import json
    kinds = media_modalities(space)
    if modality not in kinds:
        raise InputError(f"this space has no modality {modality!r} built from media files "
                         f"(media modalities: {sorted(kinds) or 'none'})", field="modality")
    spec = space.config["build_config"]["content"][modality]
    enc = _encoder(kinds[modality], json.dumps(spec.get("params", {}), sort_keys=True))
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", path=str(p))
    return np.asarray(enc.encode(str(p), on_error="raise"), dtype=np.float32)


def search_by_media(space: "Space", modality: str, path: str | Path, *, k: int = 10, where: Where = None,
                    offset: int = 0) -> list["Hit"]:
    """Query by an audio or image file through its encoder and the trained projection."""
    return space.search_by_vector(modality, encode_media(space, modality, path), k, where=where, offset=offset)
