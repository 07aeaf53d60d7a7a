"""The network both session-model families share (see :mod:`talkrec.sessions.models`)."""
from __future__ import annotations

import math

import torch
from torch import nn

PAD, MASK, OFFSET = 0, 1, 2


class SessionNet(nn.Module):
    """Item table + projections + transformer encoder + tied output (see the package docstring)."""

    def __init__(self, n_items: int, d_emb: int, d_model: int, n_layers: int, n_heads: int,
                 dim_feedforward: int, dropout: float, max_length: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.items = nn.Embedding(n_items, d_emb)
        self.special = nn.Parameter(torch.randn(2, d_emb) / math.sqrt(d_emb))
        self.proj_in: nn.Module = (nn.Sequential(nn.Linear(d_emb, d_model), nn.ReLU())
                                   if d_emb != d_model else nn.Identity())
        self.pos = nn.Embedding(max_length, d_model)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.proj_out: nn.Module = nn.Linear(d_model, d_emb) if d_emb != d_model else nn.Identity()
        self.bias = nn.Parameter(torch.zeros(n_items))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        item = self.items(torch.clamp(tokens - OFFSET, min=0))
        spec = self.special[torch.clamp(tokens, max=1)]
        return torch.where((tokens >= OFFSET).unsqueeze(-1), item, spec)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, L, d_emb) after the output projection, ready to score items."""
        L = tokens.shape[1]
        x = self.proj_in(self.embed(tokens)) + self.pos(torch.arange(L, device=tokens.device))
        x = self.drop(x)
        pad = tokens == PAD
        mask = nn.Transformer.generate_square_subsequent_mask(L, device=tokens.device) if self.causal else None
        # float masks for both so that PyTorch does not warn about mixing mask types
        pad_f = torch.zeros(pad.shape, device=tokens.device).masked_fill(pad, float("-inf"))
        h = self.encoder(x, mask=mask, src_key_padding_mask=pad_f, is_causal=False)
        return self.proj_out(self.norm(h))

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden states ``h`` (..., d_emb): tied weights + bias."""
        return h @ self.items.weight.T + self.bias
