"""BERT4Rec / Transformers4Rec-style masked-item model (paper 002 section 4.2)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...estimator import Interval
from .base import _SessionModel
from .net import MASK, OFFSET, PAD


class MaskedSessionModel(_SessionModel):
    """BERT4Rec / Transformers4Rec-style masked-item model with bidirectional attention.

    Extra hyperparameter ``mask_probability`` (default 0.2): the fraction of positions
    replaced by [MASK] in training (at least one per session).
    """

    family = "masked"
    causal = False
    _constraints = {**_SessionModel._constraints, "mask_probability": Interval(float, 0, 1, "neither")}

    def __init__(self, *, mask_probability: float = 0.2, **kw: Any) -> None:
        super().__init__(**kw)
        self.mask_probability = mask_probability

    def _mask(self, tokens: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked input and the boolean positions to predict (>= 1 per non-empty row)."""
        return mask_tokens(tokens, float(self.mask_probability), gen)

    def _batch_loss(self, tokens: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        inp, where = self._mask(tokens, gen)
        h = self.net_(inp)
        logits = self.net_.scores(h[where])
        return F.cross_entropy(logits, tokens[where] - OFFSET)

    def _inputs(self, ctx: list[int]) -> list[int]:
        return ctx[-(self.max_length - 1):] + [MASK]


def mask_tokens(tokens: torch.Tensor, p: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a random fraction ``p`` of the non-pad positions by [MASK].

    Every row with at least one item gets at least one masked position (a random one when
    the draw picked none). Returns ``(masked_tokens, positions)``; pads are never masked.
    """
    real = tokens != PAD
    u = torch.rand(tokens.shape, generator=gen).to(tokens.device)
    where = (u < p) & real
    none = ~where.any(dim=1) & real.any(dim=1)
    if none.any():
        # the real position with the smallest draw
        uu = u.masked_fill(~real, 2.0)
        pick = uu.argmin(dim=1)
        rows = torch.nonzero(none).squeeze(1)
        where[rows, pick[rows]] = True
    return tokens.masked_fill(where, MASK), where
