"""What the file-based encoders (audio, image) share: a content-hash cache, failure
reports, and the batch / folder logic that keeps one bad file from sinking a batch.

Cache layout (no pickles; one small ``.npy`` per file, written atomically)::

    <root>/<encoder key>/<sha256[:2]>/<sha256 of the file's bytes>.npy

``<encoder key>`` is a hash of the encoder's :meth:`config` (model, pooling, sample rate,
...), so changing a setting never returns vectors computed with another one. Two copies of
the same file under different names share one entry; an edited file gets a new one.
The default root is ``$TALKREC_CACHE/media`` (``~/.cache/talkrec/media``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from .base import is_single, progress_bar

log = logging.getLogger(__name__)

OnError = Literal["raise", "nan"]
CacheArg = str | os.PathLike[str] | bool | None


@dataclass(frozen=True)
class MediaFailure:
    """A file that could not be encoded, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def default_cache_root() -> Path:
    return Path(os.environ.get("TALKREC_CACHE", Path.home() / ".cache" / "talkrec")) / "media"


def file_digest(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def config_key(config: dict[str, Any]) -> str:
    """A short stable hash of an encoder configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


class MediaCache:
    """Vectors keyed by (encoder configuration, file content hash), stored as ``.npy``."""

    def __init__(self, root: str | os.PathLike[str], config: dict[str, Any], dim: int) -> None:
        self.root = Path(root)
        self.key = config_key(config)
        self.dim = dim
        self.dir = self.root / self.key
        self._config = config

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        p = self._path(digest)
        if not p.exists():
            return None
        try:
            v = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:  # a damaged entry is recomputed, never trusted
            log.warning("ignoring unreadable cache entry %s: %s", p, e)
            return None
        if v.shape != (self.dim,) or v.dtype != np.float32:
            log.warning("ignoring cache entry %s with shape %s dtype %s", p, v.shape, v.dtype)
            return None
        return v

    def put(self, digest: str, vector: np.ndarray) -> None:
        p = self._path(digest)
        p.parent.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "config.json"
        if not cfg.exists():
            _atomic_bytes(cfg, (json.dumps(self._config, sort_keys=True, indent=2, default=str) + "\n").encode())
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:8]}.", suffix=".npy", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.asarray(vector, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.npy")) if self.dir.exists() else 0


def _atomic_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_cache(cache: CacheArg, config: dict[str, Any], dim: int) -> MediaCache | None:
    """``True`` -> default root, a path -> that root, ``False``/``None`` -> no cache."""
    if cache is None or cache is False:
        return None
    root = default_cache_root() if cache is True else Path(cache)
    return MediaCache(root, config, dim)


def list_media(folder: str | os.PathLike[str], extensions: Sequence[str], *,
               recursive: bool = True) -> list[Path]:
    """Files under ``folder`` whose suffix is in ``extensions`` (case-insensitive), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", path=str(folder))
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    it = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def ids_for(paths: Sequence[Path], folder: Path) -> list[str]:
    """Item ids from file paths: the path relative to ``folder`` without its extension."""
    ids: dict[str, Path] = {}
    for p in paths:
        i = p.relative_to(folder).with_suffix("").as_posix()
        if i in ids:
            raise InputError(f"two files give the item id {i!r}: {ids[i].name} and {p.name}", path=str(folder))
        ids[i] = p
    return list(ids)


class FileEncoderMixin:
    """Batch logic for encoders whose inputs are file paths.

    Subclasses set ``modality``, ``dim``, ``EXTENSIONS``, ``cache`` (the constructor
    argument), implement ``config()``, ``_load_one(path) -> prepared input`` (decode; raise
    on bad files) and ``_embed(prepared: list) -> (n, dim) float32``.
    """

    modality: str
    EXTENSIONS: tuple[str, ...] = ()
    #: Optional modules the encoder needs, and the extra that installs them.
    REQUIRES: tuple[str, ...] = ()
    EXTRA: str = ""
    cache: CacheArg
    _cache_obj: MediaCache | None
    last_failures: list[MediaFailure]

    # -- to implement -------------------------------------------------------------------
    @property
    def dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_one(self, path: Path) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _embed(self, prepared: list[Any]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def check_available(self) -> None:
        """Raise ImportError naming the extra when an optional dependency is missing (cheap:
        nothing is imported)."""
        import importlib.util

        missing = []
        for mod in self.REQUIRES:
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(mod)
        if missing:
            raise ImportError(f"the {self.modality} encoder needs {', '.join(missing)}; install them with "
                              f"pip install 'talkrec[{self.EXTRA}]' (see docs/media.md)")

    def _get_cache(self) -> MediaCache | None:
        if getattr(self, "_cache_obj", None) is None and self.cache not in (None, False):
            self._cache_obj = make_cache(self.cache, self.config(), self.dim)
        return getattr(self, "_cache_obj", None)

    def encode(self, inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
               batch_size: int = 16, show_progress_bar: bool = False,
               on_error: OnError | None = None) -> np.ndarray:
        """Embed one file (-> 1-D float32 vector) or a list of files (-> matrix, input order).

        ``on_error``: ``"raise"`` raises :class:`~talkrec.errors.InputError` naming the first
        file that cannot be read or decoded; ``"nan"`` logs a warning per bad file, fills its
        row with NaN (talkrec's "modality missing" marker) and goes on. ``None`` (default)
        means ``"raise"`` for a single file and ``"nan"`` for a list. The failures of the last
        call are in :attr:`last_failures` either way.
        """
        single = is_single(inputs)
        paths = [inputs] if single else list(inputs)  # type: ignore[list-item]
        mode: OnError = on_error or ("raise" if single else "nan")
        if mode not in ("raise", "nan"):
            raise InputError(f"on_error must be 'raise' or 'nan', got {on_error!r}", field="on_error")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        self.last_failures = []
        self.check_available()
        cache = self._get_cache()
        out = np.full((len(paths), self.dim), np.nan, dtype=np.float32)

        def fail(i: int, reason: str) -> None:
            f = MediaFailure(str(paths[i]), reason)
            if mode == "raise":
                raise InputError(f"cannot encode {self.modality} file: {reason}", path=str(paths[i]))
            log.warning("skipping %s file %s", self.modality, f)
            self.last_failures.append(f)

        digests: list[str | None] = [None] * len(paths)
        todo: list[int] = []
        for i, p in enumerate(paths):
            if not isinstance(p, (str, os.PathLike)):
                fail(i, f"expected a file path, got {type(p).__name__}")
                continue
            try:
                digests[i] = file_digest(p)
            except OSError as e:
                fail(i, e.strerror or str(e))
                continue
            hit = cache.get(digests[i]) if cache is not None else None  # type: ignore[arg-type]
            if hit is not None:
                out[i] = hit
            else:
                todo.append(i)
        if cache is not None and len(paths) > 1:
            log.info("%s: %d of %d files from cache", self.modality, len(paths) - len(todo), len(paths))

        bar = progress_bar(total=len(todo), desc=f"{self.modality}[{getattr(self, 'model', '')}]",
                   disable=not show_progress_bar, unit="file")
        try:
            for s in range(0, len(todo), batch_size):
                chunk = todo[s:s + batch_size]
                ok: list[int] = []
                prepared: list[Any] = []
                for i in chunk:
                    try:
                        prepared.append(self._load_one(Path(paths[i])))
                        ok.append(i)
                    except (InputError, ImportError):  # a missing extra is not a bad file
                        raise
                    except Exception as e:  # noqa: BLE001 - decoders raise many types
                        fail(i, f"{type(e).__name__}: {e}".strip())
                if prepared:
                    vecs = np.asarray(self._embed(prepared), dtype=np.float32)
                    for i, v in zip(ok, vecs):
                        if not np.all(np.isfinite(v)):
                            fail(i, "the model produced non-finite values")
                            continue
                        out[i] = v
                        if cache is not None:
                            cache.put(digests[i], v)  # type: ignore[arg-type]
                bar.update(len(chunk))
        finally:
            bar.close()
        if self.last_failures:
            log.warning("%s: %d of %d files could not be encoded", self.modality,
                        len(self.last_failures), len(paths))
        return out[0] if single else out

    def encode_folder(self, folder: str | os.PathLike[str], *, recursive: bool = True,
                      batch_size: int = 16, show_progress_bar: bool = False,
                      ) -> tuple[list[str], np.ndarray, list[MediaFailure]]:
        """Embed every media file under ``folder``.

        Returns ``(ids, X, failures)``: ``ids`` are the successfully encoded files' paths
        relative to ``folder`` without extension (``"covers/123.jpg"`` -> ``"covers/123"``),
        ``X`` their vectors (``len(ids) x dim``), ``failures`` the files that were skipped.
        Two files mapping to one id (``a.mp3`` and ``a.wav``) raise :class:`InputError`.
        """
        folder = Path(folder)
        files = list_media(folder, self.EXTENSIONS, recursive=recursive)
        ids = ids_for(files, folder)
        if not files:
            log.warning("no %s files (%s) under %s", self.modality, ", ".join(self.EXTENSIONS), folder)
            return [], np.empty((0, self.dim), dtype=np.float32), []
        X = self.encode([str(p) for p in files], batch_size=batch_size,
                        show_progress_bar=show_progress_bar, on_error="nan")
        keep = ~np.isnan(X).any(axis=1)
        failures = list(self.last_failures)
        return [i for i, k in zip(ids, keep) if k], X[keep], failures


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency or raise an ImportError that names the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs the optional dependency '{module}' ({e}); install it with "
                          f"pip install 'talkrec[{extra}]' (see docs/media.md)") from e

