"""The fusion model's network: one small MLP per modality into the shared space."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class ModalityEncoder(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear (paper 001 footnote 1: 256 hidden, 200 out, 0.3)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_encoders(input_dims: Mapping[str, int], hidden_dim: int, out_dim: int, dropout: float) -> nn.ModuleDict:
    """One :class:`ModalityEncoder` per modality, in the order of ``input_dims``."""
    return nn.ModuleDict({m: ModalityEncoder(d, hidden_dim, out_dim, dropout) for m, d in input_dims.items()})
