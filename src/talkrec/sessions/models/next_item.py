"""RTA-style causal next-item model trained against sampled negatives (paper 002 section 4.3)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...estimator import Interval
from .base import _SessionModel
from .net import OFFSET, PAD


class NextItemSessionModel(_SessionModel):
    """RTA-style causal next-item model trained against sampled negatives.

    Extra hyperparameter ``n_negatives`` (default 100): uniformly sampled items per session
    and step; samples that belong to the session are ignored in the loss.
    """

    family = "next_item"
    causal = True
    _constraints = {**_SessionModel._constraints, "n_negatives": Interval(int, 1)}

    def __init__(self, *, n_negatives: int = 100, **kw: Any) -> None:
        super().__init__(**kw)
        self.n_negatives = n_negatives

    def _bias_offset(self) -> float:
        """-log(n_negatives): the summed sigmoid of the negatives starts near 1 instead of
        n_negatives / 2, so the first epoch does not spend itself (and a content
        initialization's structure) on pushing every score down."""
        return -float(np.log(self.n_negatives))

    def _batch_loss(self, tokens: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        h = self.net_(tokens)[:, :-1]                           # prefixes p_{:i}
        tgt = tokens[:, 1:]                                     # next items
        valid = tgt != PAD
        n_items = self.net_.items.num_embeddings
        E, b = self.net_.items.weight, self.net_.bias
        pos_score = (h * E[(tgt - OFFSET).clamp(min=0)]).sum(-1) + b[(tgt - OFFSET).clamp(min=0)]
        neg = torch.randint(0, n_items, (tokens.shape[0], int(self.n_negatives)), generator=gen).to(tokens.device)
        in_session = (neg.unsqueeze(-1) == (tokens - OFFSET).unsqueeze(1)).any(-1)   # (B, n_neg)
        neg_score = torch.einsum("bld,bnd->bln", h, E[neg]) + b[neg].unsqueeze(1)
        neg_loss = (F.softplus(neg_score) * (~in_session).unsqueeze(1)).sum(-1)    # -log s(-x) = softplus(x)
        loss = F.softplus(-pos_score) + neg_loss
        return (loss * valid).sum() / valid.sum().clamp(min=1)

    def _inputs(self, ctx: list[int]) -> list[int]:
        return ctx[-self.max_length:]
