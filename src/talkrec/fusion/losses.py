"""Contrastive losses of papers 001 (section 2.1) and 004 (section 2.1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1, *, symmetric: bool = False) -> torch.Tensor:
    r"""InfoNCE between two modalities of the same M items, with 2M-1 in-batch negatives.

    For row i (formula of paper 004, section 2.1; mean over i instead of the sum, which only
    rescales the gradient):

    .. math::
        \mathcal{L}_{a,b} = \frac{1}{M}\sum_{i=1}^{M} -\log
            \frac{\Xi(a^i, b^i)}{\sum_{k=1}^{2M} \mathbb{1}_{[k \neq i]}\, \Xi(a^i, \zeta^k)},
        \qquad \Xi(x, y) = \exp(\cos(x, y) / \tau),

    where :math:`\zeta^k = a^k` for :math:`k \le M` and :math:`b^{k-M}` otherwise: the
    denominator holds the positive :math:`b^i`, the M-1 other items of modality a and the
    M-1 other items of modality b. ``symmetric=True`` adds the same loss anchored on b.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    m = a.shape[0]
    an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)

    def one_side(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zeta = torch.cat([x, y], dim=0)                      # (2M, d)
        logits = x @ zeta.T / temperature                    # (M, 2M)
        logits.diagonal().fill_(float("-inf"))               # k == i excluded
        idx = torch.arange(m, device=x.device)
        return F.cross_entropy(logits, idx + m)              # positive at column M + i

    loss = one_side(an, bn)
    if symmetric:
        loss = 0.5 * (loss + one_side(bn, an))
    return loss
