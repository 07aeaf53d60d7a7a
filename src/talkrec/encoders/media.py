"""Media files -> a modality's raw input vectors: the one path every caller takes.

A content modality built from files has a spec in the build config, e.g.
``{"source": "audio_files", "params": {"max_seconds": 30}}``. The build's content stage,
queries by example (:meth:`talkrec.Space.search_by_media`), cold-start records with
``media`` and the service's upload route all encode through :func:`encode_media_files`
(one file: :func:`encode_media_file`), so they accept the same files, use the same encoder
settings and report the same errors:

* a file whose name does not end in one of the encoder's extensions, a missing or empty
  file, or one the encoder cannot decode is a failure (an :class:`InputError` naming the
  file for one file; a NaN row and a :class:`MediaFailure` in a batch);
* a modality that was not built from media files: :class:`NotMediaModality`;
* a missing optional encoder package: :class:`MediaEncoderUnavailable` (an ImportError
  naming the extra to install).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, TalkrecError
from .audio import AudioEncoder
from .image import ImageEncoder
from .media_cache import CacheArg, MediaFailure

__all__ = ["MEDIA_SOURCES", "MediaEncoderUnavailable", "NotMediaModality", "encode_media_file",
           "encode_media_files", "media_extensions", "media_kind", "report_failures"]

log = logging.getLogger(__name__)

#: content ``source`` -> the kind of media file it encodes
MEDIA_SOURCES = {"audio_files": "audio", "image_files": "image"}
#: kind -> the file name endings its encoder takes
EXTENSIONS: dict[str, tuple[str, ...]] = {"audio": AudioEncoder.EXTENSIONS, "image": ImageEncoder.EXTENSIONS}


class NotMediaModality(InputError):
    """The modality's vectors were not computed from media files (e.g. precomputed
    descriptors), so a file cannot be encoded into it."""


class MediaEncoderUnavailable(TalkrecError, ImportError):
    """The encoder of a media modality needs optional packages that are not installed."""


def media_kind(spec: Mapping[str, Any] | None) -> str | None:
    """``"audio"`` / ``"image"`` for a content spec built from media files, else ``None``."""
    source = spec.get("source") if isinstance(spec, Mapping) else None
    return MEDIA_SOURCES.get(source) if isinstance(source, str) else None


def _encoder_class(kind: str) -> Any:
    if kind == "audio":
        from . import audio
        return audio.AudioEncoder
    from . import image
    return image.ImageEncoder


def media_extensions(kind: str) -> tuple[str, ...]:
    """File name endings the encoder of ``kind`` takes (lower case, with the dot)."""
    return EXTENSIONS[kind]


def _spec_kind(spec: Mapping[str, Any], modality: str) -> str:
    kind = media_kind(spec)
    if kind is None:
        source = spec.get("source") if isinstance(spec, Mapping) else None
        raise NotMediaModality(f"this space's {modality!r} modality was built from precomputed vectors (source: "
                               f"{source or 'vectors'}), not media files, so a file cannot be encoded into it; "
                               "query with its raw vector instead", field="modality")
    return kind


def _precheck(path: str, exts: tuple[str, ...]) -> str | None:
    """Why ``path`` cannot be encoded before decoding it, or ``None``."""
    if Path(path).suffix.lower() not in exts:
        return f"the file name must end in one of {', '.join(exts)}"
    if not os.path.isfile(path):
        return "file not found"
    if os.path.getsize(path) == 0:
        return "the file is empty"
    return None


def encode_media_files(spec: Mapping[str, Any], paths: Sequence[str | os.PathLike[str]], *, modality: str,
                       cache: CacheArg | None = None, show_progress_bar: bool = False
                       ) -> tuple[np.ndarray, list[MediaFailure]]:
    """Raw input vectors of ``modality`` for media files, with the encoder and parameters
    of the content ``spec``. Returns ``(X, failures)``: ``X`` has one row per path (NaN for
    a file that failed), ``failures`` says which and why. ``cache``: the encoder's vector
    cache (``None``: the spec's ``params``, else the encoder default)."""
    kind = _spec_kind(spec, modality)
    params = dict(spec.get("params") or {})
    if cache is not None:
        params["cache"] = cache
    enc = _encoder_class(kind)(**params)
    names = [str(p) for p in paths]
    exts = media_extensions(kind)
    failures = [MediaFailure(p, why) for p in names if (why := _precheck(p, exts)) is not None]
    bad = {f.path for f in failures}
    ok = [j for j, p in enumerate(names) if p not in bad]
    X = np.full((len(names), int(enc.dim)), np.nan, dtype=np.float32)
    if ok:
        try:
            V = enc.encode([names[j] for j in ok], show_progress_bar=show_progress_bar, on_error="nan")
        except ImportError as e:
            raise MediaEncoderUnavailable(f"the {kind} encoder needs optional packages ({e}); "
                                          f"pip install 'talkrec[{kind}]'") from None
        failures += list(enc.last_failures)
        X[ok] = np.asarray(V, dtype=np.float32)
        bad = {f.path for f in failures}
        for j in ok:
            if names[j] not in bad and not np.isfinite(X[j]).all():
                failures.append(MediaFailure(names[j], "the encoder produced non-finite values"))
                X[j] = np.nan
    return X, failures


def encode_media_file(spec: Mapping[str, Any], path: str | os.PathLike[str], *, modality: str,
                      cache: CacheArg | None = None, name: str | None = None) -> np.ndarray:
    """The raw input vector of ``modality`` for one media file (see :func:`encode_media_files`);
    raises :class:`InputError` naming the file (``name``, default: its path) when it cannot
    be encoded."""
    X, failures = encode_media_files(spec, [path], modality=modality, cache=cache)
    if failures:
        kind = media_kind(spec)
        raise InputError(f"cannot encode {kind} file: {failures[0].reason}", path=name or str(path))
    return X[0]


def report_failures(modality: str, failures: Sequence[MediaFailure], n_files: int) -> dict[str, Any]:
    """What a build says of the files of ``modality`` it could not encode: a warning naming
    the first of them and why, and the build report's ``<modality>_failed`` (how many) and
    ``<modality>_failed_files`` (the first 20, ``path: reason``). A missing, empty or misnamed
    file used to be left out without a word (only files that failed to decode were logged)."""
    info: dict[str, Any] = {f"{modality}_failed": len(failures)}
    if failures:
        info[f"{modality}_failed_files"] = [f"{f.path}: {f.reason}" for f in failures[:20]]
        more = f" (and {len(failures) - 5} more, build_report.json)" if len(failures) > 5 else ""
        log.warning("content.%s: %d of %d files could not be encoded; those items go without %s: %s%s", modality,
                    len(failures), n_files, modality, "; ".join(info[f"{modality}_failed_files"][:5]), more)
    return info
