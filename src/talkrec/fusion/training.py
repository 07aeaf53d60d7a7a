"""The fusion training loop: the sum of pairwise InfoNCE losses over the modality pairs,
trained with Adam, early stopping on a held-out loss (paper 001 section 2, paper 004 2.1).

One step at a time: :func:`batch_loss` (one batch), :func:`validation_loss`,
:func:`train_epoch`, :class:`EarlyStopping`, and :func:`train`, the epoch loop. Every
random draw comes from the caller's ``numpy`` generator, so a ``random_state`` fixes the run.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .losses import info_nce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """The hyperparameters the loop uses (see :class:`~talkrec.fusion.ContrastiveFusion`)."""

    batch_size: int
    temperature: float
    symmetric: bool
    learning_rate: float
    max_epochs: int
    patience: int
    verbose: bool
    neighbor_weight: float = 0.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "TrainSettings":
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls) if f.name in params})


@dataclass(frozen=True)
class FusionData:
    """Training inputs on the device: standardized views (NaN -> 0) and presence masks."""

    views: dict[str, list[torch.Tensor]]
    present: dict[str, torch.Tensor]           # (n_items, n_views) bool
    pairs: list[tuple[str, str]]
    device: str
    neighbors: torch.Tensor | None = None      # (n_items, K) item rows, valid entries first, -1 after
    n_neighbors: torch.Tensor | None = None    # (n_items,) valid entries per row

    @classmethod
    def build(cls, views: Mapping[str, list[np.ndarray]], present: Mapping[str, np.ndarray],
              mean: Mapping[str, np.ndarray], std: Mapping[str, np.ndarray], pairs: list[tuple[str, str]],
              device: str, neighbors: np.ndarray | None = None) -> "FusionData":
        data = {m: [torch.from_numpy(np.nan_to_num((v - mean[m]) / std[m])).to(device) for v in vs]
                for m, vs in views.items()}
        nb = cnt = None
        if neighbors is not None:
            nb = torch.from_numpy(np.ascontiguousarray(neighbors, dtype=np.int64)).to(device)
            cnt = (nb >= 0).sum(dim=1)
        return cls(data, {m: torch.from_numpy(p).to(device) for m, p in present.items()}, list(pairs), device,
                   nb, cnt)


def _pick_views(data: FusionData, rows: torch.Tensor, sample: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per modality: one view's rows (a random present view when ``sample``, else the first
    present one) and which rows have any view."""
    out = {}
    for m, views in data.views.items():
        p = data.present[m][rows]                              # (B, V)
        if len(views) == 1:                                    # one view: no choice to make
            out[m] = (views[0][rows], p[:, 0])
            continue
        if not sample:
            choice = torch.argmax(p.to(torch.int8), dim=1)     # first present view
        else:
            choice = torch.multinomial(p.float() + 1e-9, 1, generator=None).squeeze(1)
        stacked = torch.stack([d[rows] for d in views], dim=1)  # (B, V, d)
        out[m] = (stacked[torch.arange(len(rows), device=rows.device), choice], p.any(dim=1))
    return out


def _fused(picked: Mapping[str, tuple[torch.Tensor, torch.Tensor]], z: Mapping[str, torch.Tensor],
           n: int) -> torch.Tensor:
    """Sum of the normalized encoder outputs of the modalities each row has (unnormalized)."""
    total: torch.Tensor | None = None
    for m, (_, ok) in picked.items():
        if int(ok.sum()):
            part = torch.zeros(n, z[m].shape[1], device=z[m].device, dtype=z[m].dtype).index_add(
                0, torch.nonzero(ok).squeeze(1), nn.functional.normalize(z[m], dim=1))
            total = part if total is None else total + part
    return total if total is not None else torch.zeros(n, 1, device=next(iter(z.values())).device)


def neighbor_loss(encoders: nn.ModuleDict, data: FusionData, rows: torch.Tensor, settings: TrainSettings,
                  sample: bool, picked: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                  z: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    r"""The interaction-positive term (issue 12): each row with a neighbour list draws one
    neighbour ``j`` uniformly; symmetric InfoNCE between the fused vectors
    :math:`f_i = \sum_m \hat z_{i,m}` and :math:`f_j` with in-batch negatives (gradients
    through both items' encoders). None when fewer than two rows have neighbours."""
    if data.neighbors is None or data.n_neighbors is None:
        return None
    cnt = data.n_neighbors[rows]
    has = cnt > 0
    if int(has.sum()) < 2:
        return None
    pick = (torch.rand(int(has.sum()), device=rows.device) * cnt[has]).long()
    j = data.neighbors[rows[has], pick]
    fi = _fused(picked, z, len(rows))[has]
    pj = _pick_views(data, j, sample)
    zj = {m: encoders[m](x[ok]) for m, (x, ok) in pj.items() if int(ok.sum())}
    fj = _fused({m: v for m, v in pj.items() if m in zj}, zj, len(j))
    return info_nce(fi, fj, settings.temperature, symmetric=True)


def batch_loss(encoders: nn.ModuleDict, data: FusionData, rows: torch.Tensor, settings: TrainSettings,
               sample: bool) -> torch.Tensor | None:
    """Sum of the InfoNCE losses of the pairs on one batch, plus ``neighbor_weight`` times
    :func:`neighbor_loss` when neighbours are given (None: no term has two rows)."""
    picked = _pick_views(data, rows, sample)
    # Encode each modality once on the rows that have it, then score every pair. Every pair
    # gathers its rows (also when all are there): the gradients then add up in the same
    # order, to the last bit, as they always did.
    z: dict[str, torch.Tensor] = {}
    where: dict[str, torch.Tensor] = {}
    for m, (x, ok) in picked.items():
        n_ok = int(ok.sum())
        where[m] = torch.cumsum(ok.to(torch.long), 0) - 1         # row -> position among present rows
        z[m] = encoders[m](x if n_ok == len(ok) else x[ok]) if n_ok else x[:0]
    total: torch.Tensor | None = None
    for a, b in data.pairs:
        both = picked[a][1] & picked[b][1]
        if int(both.sum()) < 2:
            continue
        loss = info_nce(z[a][where[a][both]], z[b][where[b][both]], settings.temperature, symmetric=settings.symmetric)
        total = loss if total is None else total + loss
    if data.neighbors is not None and settings.neighbor_weight > 0:
        nl = neighbor_loss(encoders, data, rows, settings, sample, picked, z)
        if nl is not None:
            nl = settings.neighbor_weight * nl
            total = nl if total is None else total + nl
    return total


def validation_loss(encoders: nn.ModuleDict, data: FusionData, val_idx: np.ndarray, settings: TrainSettings) -> float:
    """Mean loss over the held-out items (first present views; NaN when there are none)."""
    if not len(val_idx):
        return float("nan")
    encoders.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        losses = []
        for s in range(0, len(val_idx), settings.batch_size):
            rows = torch.from_numpy(val_idx[s:s + settings.batch_size]).to(data.device)
            if len(rows) < 2:
                continue
            ls = batch_loss(encoders, data, rows, settings, sample=False)
            if ls is not None:
                losses.append(float(ls) * len(rows))
    return sum(losses) / len(val_idx) if losses else float("nan")


def train_epoch(encoders: nn.ModuleDict, opt: torch.optim.Optimizer, data: FusionData, train_idx: np.ndarray,
                rng: np.random.Generator, settings: TrainSettings) -> float:
    """One pass over the training items in a random order; returns the mean batch loss."""
    encoders.train()
    perm = train_idx[rng.permutation(len(train_idx))]
    total, seen = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        for s in range(0, len(perm), settings.batch_size):
            rows_np = perm[s:s + settings.batch_size]
            if len(rows_np) < 2:
                continue
            loss = batch_loss(encoders, data, torch.from_numpy(rows_np).to(data.device), settings, sample=True)
            if loss is None:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(rows_np)
            seen += len(rows_np)
    return total / max(seen, 1)


class EarlyStopping:
    """Keeps the weights of the best epoch (lowest score, by more than 1e-5) and says when
    ``patience`` epochs in a row brought no improvement."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best, self.best_epoch, self.bad = float("inf"), 0, 0
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, score: float, module: nn.Module) -> bool:
        """Record an epoch's score; True when training should stop."""
        if score < self.best - 1e-5:
            self.best, self.bad, self.best_epoch = score, 0, epoch
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, module: nn.Module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


def train(encoders: nn.ModuleDict, data: FusionData, train_idx: np.ndarray, val_idx: np.ndarray,
          rng: np.random.Generator, settings: TrainSettings) -> tuple[list[dict[str, float]], int]:
    """Train ``encoders`` in place, leave them in eval mode with the best epoch's weights;
    returns ``(history, best_epoch)``. The score is the validation loss, or the training
    loss when no item is held out."""
    opt = torch.optim.Adam(encoders.parameters(), lr=settings.learning_rate)
    history: list[dict[str, float]] = []
    stop = EarlyStopping(settings.patience)
    for epoch in range(1, settings.max_epochs + 1):
        t0 = time.perf_counter()
        tl = train_epoch(encoders, opt, data, train_idx, rng, settings)
        vl = validation_loss(encoders, data, val_idx, settings)
        history.append({"epoch": epoch, "train_loss": tl, "val_loss": vl, "seconds": time.perf_counter() - t0})
        if settings.verbose and (epoch % 10 == 0 or epoch == 1):
            log.info("fusion epoch %d train %.4f val %.4f", epoch, tl, vl)
        if stop.update(epoch, vl if np.isfinite(vl) else tl, encoders):
            break
    stop.restore(encoders)
    encoders.eval()
    return history, stop.best_epoch
