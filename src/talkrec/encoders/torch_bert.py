"""A BERT sentence encoder's forward pass in plain torch, for descriptions in bfloat16.

On a CPU with AMX (:func:`talkrec.device.has_amx_bf16`) torch multiplies bfloat16 matrices
in hardware: all-MiniLM-L6-v2 encodes a TEMPLATE description 2.6x faster than the fp32 ONNX
graph, at a cosine of 0.9999 to it (docs/building.md). The forward pass is written here,
from the model's ``config.json`` and ``model.safetensors``, rather than loaded through
sentence-transformers: importing transformers and sentence-transformers would add ~200 MB to
a build's peak memory for a six-layer encoder. Tokens come from the exported ONNX folder's
tokenizer (:meth:`OnnxTextModel.feeds`), so descriptions and queries are cut the same way.
In float32 the pass equals the ONNX graph (1.4e-6 measured, 1e-4 tested); only BERT models
(``model_type: bert``, absolute positions, GELU) are supported.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..device import bound_onednn_cache, torch_threads
from .onnx_text import OnnxTextModel, UnsupportedModel

__all__ = ["TorchBert"]


class TorchBert:
    """``encode(texts) -> (n, dim)`` float32 pooled embeddings (not normalized), computed in
    ``dtype`` (``"bfloat16"`` or ``"float32"``) on ``n_threads`` CPU threads. A batch is padded
    to a multiple of ``pad_to`` tokens (masked: the same vectors): every new sequence length
    makes oneDNN build and cache kernels, hundreds of MB over a catalog's lengths."""

    def __init__(self, model_path: str | Path, tokens: OnnxTextModel, *, n_threads: int = 1,
                 dtype: str = "bfloat16", pad_to: int = 8) -> None:
        bound_onednn_cache()                 # before the first bfloat16 product builds a kernel
        import torch
        from safetensors.torch import load_file

        path = Path(model_path)
        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("model_type") != "bert" or cfg.get("position_embedding_type", "absolute") != "absolute" \
                or cfg.get("hidden_act") != "gelu" or not (path / "model.safetensors").is_file():
            raise UnsupportedModel(f"{path}: not a BERT model with safetensors weights (bfloat16 path)")
        self.tokens, self.n_threads, self.pad_to = tokens, n_threads, max(1, int(pad_to))
        self.dim = int(cfg["hidden_size"])
        self.heads, self.layers, self.eps = int(cfg["num_attention_heads"]), int(cfg["num_hidden_layers"]), \
            float(cfg["layer_norm_eps"])
        self.pooling = str(tokens.meta["pooling"])
        dt = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
        raw = load_file(str(path / "model.safetensors"))
        self.w: dict[str, Any] = {k.removeprefix("bert."): v.to(dt) for k, v in raw.items()
                                  if not k.endswith("position_ids")}

    def encode(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        f = self.tokens.feeds(texts)
        pad = -f["input_ids"].shape[1] % self.pad_to       # a few sequence lengths: few oneDNN kernels
        ids, mask = (torch.from_numpy(np.pad(f[k], ((0, 0), (0, pad)), constant_values=v))
                     for k, v in (("input_ids", int(self.tokens.meta["pad_id"])), ("attention_mask", 0)))
        types = torch.from_numpy(np.pad(f["token_type_ids"], ((0, 0), (0, pad)))) if "token_type_ids" in f \
            else torch.zeros_like(ids)
        w, eps = self.w, self.eps
        B, L = ids.shape
        H, D = self.heads, self.dim // self.heads
        with torch_threads(self.n_threads), torch.inference_mode():
            x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:L] \
                + w["embeddings.token_type_embeddings.weight"][types]
            x = F.layer_norm(x, (self.dim,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
            keep = mask[:, None, None, :].bool()                     # attend to real tokens only
            for i in range(self.layers):
                p = f"encoder.layer.{i}."

                def heads(name: str) -> Any:
                    y = F.linear(x, w[p + f"attention.self.{name}.weight"], w[p + f"attention.self.{name}.bias"])
                    return y.view(B, L, H, D).transpose(1, 2)
                a = F.scaled_dot_product_attention(heads("query"), heads("key"), heads("value"), attn_mask=keep)
                a = F.linear(a.transpose(1, 2).reshape(B, L, self.dim), w[p + "attention.output.dense.weight"],
                             w[p + "attention.output.dense.bias"])
                x = F.layer_norm(x + a, (self.dim,), w[p + "attention.output.LayerNorm.weight"],
                                 w[p + "attention.output.LayerNorm.bias"], eps)
                h = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
                h = F.linear(h, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
                x = F.layer_norm(x + h, (self.dim,), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                                 eps)
            x = x.float()
            if self.pooling == "cls":
                out = x[:, 0]
            else:
                m = mask[:, :, None].float()
                out = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return out.numpy()
