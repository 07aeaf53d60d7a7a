"""The ONNX Runtime backend of the text encoder: sentence-transformers models without torch.

A sentence-transformers folder whose modules are a Hugging Face transformer, a mean or CLS
:class:`Pooling` and optionally ``Normalize`` is exported once (:func:`export_text_model`,
which needs torch, transformers and onnx) into a folder of its own::

    model.onnx                 fp32 graph: token ids -> pooled sentence embedding (standard ops)
    model.opt.onnx             the same graph after ONNX Runtime's portable ("extended")
                               optimizations: what queries load (half the session start-up)
    model.int8.onnx            dynamic-int8 graph (optional; :func:`quantize_int8`)
    tokenizer.json             the fast tokenizer (Hugging Face ``tokenizers``)
    talkrec_text_model.json    pooling, inputs, pad token, max length, lower-casing, dim

:class:`OnnxTextModel` runs such a folder with ``onnxruntime`` and ``tokenizers`` only: the
query path of a built space never imports torch. Tokenization matches sentence-transformers
(same special tokens, truncation to ``max_length`` tokens, right padding to the longest
text of a batch); the export checks its graph against the torch module it came from.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_dir
from ..errors import InputError
from ..estimator import UnreadableModelFile, read_model_file

log = logging.getLogger(__name__)

__all__ = ["FP32_FILE", "INT8_FILE", "OPT_FILE", "OnnxTextModel", "UnsupportedModel", "cached_export",
           "export_in_child", "export_text_model", "is_exported", "quantize_int8"]

FORMAT = 2
CONFIG_FILE = "talkrec_text_model.json"
FP32_FILE = "model.onnx"
OPT_FILE = "model.opt.onnx"
INT8_FILE = "model.int8.onnx"
WHAT = "text model export"
#: Texts the export checks its graph on: short, long (truncated), non-ASCII, empty, batched.
PROBES = ["dark gothic rock", "", "female singer-songwriter with acoustic guitar and a melancholic voice",
          "Ünïcödé — 日本語のロック, café crème", "80s synth pop " * 60,
          "The name of this artist is Röyksopp and is described by the following tags: Genre: electronic."]


class UnsupportedModel(Exception):
    """A sentence-transformers model this backend cannot run (other modules or pooling)."""


def is_exported(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder written by :func:`export_text_model`."""
    return (Path(path) / CONFIG_FILE).is_file()


def _session(path: Path, n_threads: int, *, optimized_path: Path | None = None) -> Any:
    """An ONNX Runtime CPU session of ``path`` (``optimized_path``: also save the graph
    after the portable optimizations there)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if optimized_path is not None:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(optimized_path)
    so.intra_op_num_threads = max(1, int(n_threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Busy-waiting worker threads steal the CPU from everyone else on a shared machine.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxTextModel:
    """An exported model folder run by ONNX Runtime: ``encode(texts)`` -> pooled
    embeddings (rows not normalized; :class:`~talkrec.encoders.text.TextEncoder` does that).

    Parameters
    ----------
    path:
        The folder written by :func:`export_text_model`.
    max_length:
        Truncate texts to this many tokens (``None``: the model's own limit).
    n_threads:
        ONNX Runtime intra-op threads.
    int8_passages:
        Encode ``kind="passage"`` texts with ``model.int8.onnx``.
    int8_queries:
        Encode ``kind="query"`` texts with ``model.int8.onnx``.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_length: int | None = None, n_threads: int = 1,
                 int8_passages: bool = False, int8_queries: bool = False) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.meta: dict[str, Any] = read_model_file(self.path / CONFIG_FILE, lambda f: json.loads(f.read_text()), WHAT)
        if not isinstance(self.meta, dict):
            raise UnreadableModelFile(f"not an exported text model's settings (a JSON {type(self.meta).__name__})",
                                      path=str(self.path / CONFIG_FILE))
        if self.meta.get("format") != FORMAT:
            raise UnsupportedModel(f"{self.path}: text model format {self.meta.get('format')}, expected {FORMAT}")
        lacking = [k for k in ("max_length", "pad_id", "pad_token", "dim", "inputs") if k not in self.meta]
        if lacking:
            raise UnreadableModelFile(f"lacks {lacking}", path=str(self.path / CONFIG_FILE))
        self.max_length = int(max_length or self.meta["max_length"])
        self.n_threads = n_threads
        self._tok = read_model_file(self.path / "tokenizer.json", lambda f: Tokenizer.from_file(str(f)), WHAT)
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)
        self._tok.enable_padding(pad_id=int(self.meta["pad_id"]), pad_token=str(self.meta["pad_token"]),
                                 pad_type_id=0)
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()   # the tokenizer is not shared between threads at once
        self.int8_passages, self.int8_queries = int8_passages, int8_queries
        self._fp32 = OPT_FILE if (self.path / OPT_FILE).is_file() else FP32_FILE   # looked up once, not per call
        if (int8_passages or int8_queries) and not (self.path / INT8_FILE).is_file():
            raise FileNotFoundError(f"{self.path / INT8_FILE} is missing (quantize_int8 writes it)")

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def _get(self, name: str) -> Any:
        with self._lock:
            s = self._sessions.get(name)
            if s is None:
                s = self._sessions[name] = read_model_file(self.path / name, lambda f: _session(f, self.n_threads),
                                                           WHAT)
        return s

    def feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph inputs of a batch: token ids, attention mask (and token types)."""
        if self.meta.get("lower_case"):
            texts = [t.lower() for t in texts]
        with self._tok_lock:
            enc = self._tok.encode_batch(list(texts))
        out = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
               "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
        if "token_type_ids" in self.meta["inputs"]:
            out["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        return out

    def graph(self, kind: str) -> str:
        """The graph file ``kind`` texts (``"query"`` or ``"passage"``) run through."""
        return INT8_FILE if (self.int8_queries if kind == "query" else self.int8_passages) else self._fp32

    def encode(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        """Pooled embeddings of ``texts`` (one forward pass; batch them yourself). Safe to
        call from several threads at once: their forward passes run in parallel, each on
        its caller's thread (and ``n_threads - 1`` helpers)."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        out = self._get(self.graph(kind)).run(None, self.feeds(texts))[0]
        return np.asarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------------- export
def _pooling(model_path: Path) -> tuple[str, bool]:
    """``(pooling, normalize)`` from a sentence-transformers ``modules.json``; raises
    :class:`UnsupportedModel` for anything but Transformer -> mean/CLS Pooling [-> Normalize]."""
    mfile = model_path / "modules.json"
    if not mfile.is_file():
        raise UnsupportedModel(f"{model_path} has no modules.json")
    kinds = [(m["type"].rsplit(".", 1)[-1], m.get("path", "")) for m in json.loads(mfile.read_text())]
    names = [k for k, _ in kinds]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) or kinds[0][1]:
        raise UnsupportedModel(f"{model_path}: modules {names} (supported: Transformer, Pooling[, Normalize])")
    cfg = json.loads((model_path / kinds[1][1] / "config.json").read_text())
    mode = cfg.get("pooling_mode")
    if mode is None:
        on = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
        mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(on[0]) if len(on) == 1 else None
    if mode not in ("mean", "cls"):
        raise UnsupportedModel(f"{model_path}: pooling {cfg} (supported: mean, cls)")
    return str(mode), len(names) == 3


def _max_length(model_path: Path, model: Any, tok: Any) -> int:
    """The token limit sentence-transformers uses: ``sentence_bert_config.json``, else the
    smaller of the tokenizer's and the position embeddings' limits."""
    sb = model_path / "sentence_bert_config.json"
    if sb.is_file():
        v = json.loads(sb.read_text()).get("max_seq_length")
        if v:
            return int(v)
    limits = [int(x) for x in (getattr(model.config, "max_position_embeddings", None),
                               getattr(tok, "model_max_length", None)) if x and int(x) < 10**6]
    return min(limits) if limits else 512


def _lower_case(model_path: Path) -> bool:
    sb = model_path / "sentence_bert_config.json"
    return bool(sb.is_file() and json.loads(sb.read_text()).get("do_lower_case"))


def _pooled_module(model: Any, pooling: str) -> Any:
    """A torch module: transformer + pooling, with the graph inputs as positional args."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            kw = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            h = self.m(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
            if pooling == "cls":
                return h[:, 0]
            w = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * w).sum(1) / w.sum(1).clamp(min=1e-9)

    return Pooled().eval()


def export_text_model(model_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Export the sentence-transformers folder ``model_path`` to an ONNX folder ``out``
    (atomically) and check it: the graph must give the torch module's embeddings on
    :data:`PROBES` (cosine >= 0.9999). Needs torch, transformers and onnx."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    src, out = Path(model_path), Path(out)
    pooling, _ = _pooling(src)
    tok = AutoTokenizer.from_pretrained(str(src), use_fast=True)
    if not getattr(tok, "is_fast", False):
        raise UnsupportedModel(f"{src}: no fast tokenizer")
    model = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()
    accepts = inspect.signature(model.forward).parameters
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tok.model_input_names and n in accepts]
    meta = {"format": FORMAT, "source": str(src), "pooling": pooling, "inputs": inputs,
            "max_length": _max_length(src, model, tok), "lower_case": _lower_case(src),
            "pad_id": int(tok.pad_token_id if tok.pad_token_id is not None else 0),
            "pad_token": str(tok.pad_token or "[PAD]"), "dim": int(model.config.hidden_size)}
    module = _pooled_module(model, pooling)
    batch = tok(PROBES[2:4], padding=True, return_tensors="pt")
    args = tuple(batch[n] for n in inputs)
    axes = {n: {0: "batch", 1: "sequence"} for n in inputs}
    with atomic_dir(out) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on Python-side shape checks; _check_export decides
            torch.onnx.export(module, args, str(tmp / FP32_FILE), dynamo=False, opset_version=17,
                              input_names=inputs, output_names=["sentence_embedding"],
                              dynamic_axes={**axes, "sentence_embedding": {0: "batch"}})
        tok.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        _session(tmp / FP32_FILE, 1, optimized_path=tmp / OPT_FILE)
        _check_export(tmp, module, tok, meta)
    log.info("exported %s to %s (ONNX, %s pooling)", src, out, pooling)
    return out


def _check_export(folder: Path, module: Any, tok: Any, meta: dict[str, Any]) -> None:
    import torch

    onnx_model = OnnxTextModel(folder, n_threads=1)
    got = onnx_model.encode(PROBES)
    feeds = onnx_model.feeds(PROBES)
    with torch.no_grad():
        want = module(*[torch.from_numpy(feeds[n]) for n in meta["inputs"]]).numpy()
    cos = (got * want).sum(1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1), 1e-12)
    if not (cos >= 0.9999).all():
        raise UnsupportedModel(f"the ONNX export of {meta['source']} disagrees with torch (cosine {cos.min():.5f})")


def quantize_int8(folder: str | os.PathLike[str], setting: str = "int8_passages") -> Path:
    """Write ``model.int8.onnx`` next to the fp32 graph: dynamic int8 weights, per output
    channel (per-tensor scales lose too much: cosine to fp32 about 0.96 on MiniLM).
    ``setting``: the ``text`` setting that asked for it, named by the error of a folder that
    cannot have it (a space's copy of the export without the int8 graph)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    target = folder / INT8_FILE
    if not target.is_file() and not (folder / FP32_FILE).is_file():
        why = ("its item vectors must come from the same graph" if setting == "int8_passages" else
               "the int8 graph is copied into the space at build time")
        raise InputError(f"{folder} has no {INT8_FILE} and no {FP32_FILE} to make it from: a space built with "
                         f"text.{setting}: false carries only the fp32 graph; rebuild it with "
                         f"text.{setting}: true ({why})", field=f"text.{setting}", path=str(folder))
    if not target.is_file():
        tmp = folder / f".{INT8_FILE}.{os.getpid()}"
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))  # the quantizer logs every node on the root logger
        try:
            quantize_dynamic(str(folder / FP32_FILE), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            root.setLevel(level)
        os.replace(tmp, target)
        log.info("wrote the dynamic-int8 graph %s", target)
    return target


def _fingerprint(model_path: Path) -> str:
    """Path, names, sizes and modification times of the model's files (the export's key)."""
    h = hashlib.sha256(f"{FORMAT}:{model_path.resolve()}".encode())
    for f in sorted(p for p in model_path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(model_path)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def cached_export(model_path: str | os.PathLike[str], cache: Path) -> Path:
    """The ONNX export of ``model_path`` under ``cache`` (exported on first use, by
    :func:`export_in_child`)."""
    src = Path(model_path)
    if not src.is_dir():
        raise UnsupportedModel(f"{model_path} is not a local model folder")
    target = cache / f"{src.name or 'model'}-{_fingerprint(src)}"
    if not is_exported(target):
        export_in_child(src, target)
    return target


_UNSUPPORTED = "talkrec-unsupported-model: "
_CHILD = f"""import sys
from talkrec.encoders.onnx_text import UnsupportedModel, export_text_model
try:
    export_text_model(sys.argv[1], sys.argv[2])
except UnsupportedModel as e:
    sys.stderr.write({_UNSUPPORTED!r} + str(e).replace(chr(10), ' ') + chr(10))
    sys.exit(3)
"""


def export_in_child(src: Path, target: Path) -> None:
    """:func:`export_text_model` in a Python process of its own: torch, transformers and the
    traced graph never enter the caller's memory (a first Last.fm build on a machine peaked
    ~350 MB higher with the export in-process than with it cached). The child's
    :class:`UnsupportedModel` is raised here with its message; any other failure as a
    ``RuntimeError`` with the end of the child's stderr."""
    root = str(Path(__file__).resolve().parents[2])              # the folder that holds talkrec/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(target)], env=env, capture_output=True, text=True)
    err = r.stderr.strip().splitlines()
    said = [line[len(_UNSUPPORTED):] for line in err if line.startswith(_UNSUPPORTED)]
    if said:
        raise UnsupportedModel(said[-1])
    if r.returncode or not is_exported(target):
        raise RuntimeError(f"exporting {src} to ONNX failed (exit {r.returncode}): " + " | ".join(err[-5:]))
    log.info("exported %s to %s (ONNX, in a child process: %.1f s)", src, target, time.perf_counter() - t0)


def copy_exported(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, int8: bool) -> None:
    """Copy what queries (and, with ``int8``, passages) need of an exported folder to
    ``dst`` (a new folder): the optimized fp32 graph, the tokenizer, the config.

    The graphs (~90 MB each for MiniLM) are hard-linked where ``src`` and ``dst`` share a
    file system: an export is never modified after it is written, so every space built from
    the same cache shares one copy on disk; elsewhere they are copied."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True)
    fp32 = OPT_FILE if (src / OPT_FILE).is_file() else FP32_FILE
    for name in (fp32, "tokenizer.json", CONFIG_FILE) + ((INT8_FILE,) if int8 else ()):
        if name.endswith(".onnx"):
            try:
                os.link(src / name, dst / name)
                continue
            except OSError:  # another file system, or one without hard links
                pass
        shutil.copyfile(src / name, dst / name)
