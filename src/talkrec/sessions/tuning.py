"""The "tuned" initialization of paper 002 section 4.1 (MusiCNN-tuned).

A shallow MLP is fed the pretrained item embeddings and trained with a contrastive loss
that treats two items of the same training session as a positive pair and the other
items of the batch as negatives (InfoNCE of :func:`talkrec.fusion.losses.info_nce`,
cosine similarity, temperature 0.1, 2M-1 in-batch negatives). After training, one forward
pass gives the tuned embeddings, which then initialise the session model's item table.

Pairs: every epoch, each item occurrence of each training session is paired with another
item of the same session drawn at random (items without a pretrained vector are skipped).
Items of the batch that happen to co-occur are still treated as negatives (the usual
in-batch approximation).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..device import get_device
from ..errors import InputError
from ..fusion.losses import info_nce

log = logging.getLogger(__name__)


class SessionContrastiveTuner:
    """Adapt item embeddings to session co-occurrence with a shallow contrastive MLP.

    Parameters (keyword-only, stored unchanged): ``hidden_dim`` (256), ``out_dim`` (None:
    the input dimension, so tuned and untuned embeddings compare at the same d),
    ``dropout`` (0.1), ``temperature`` (0.1), ``learning_rate`` (1e-3), ``batch_size``
    (512), ``epochs`` (3), ``device``, ``random_state``.

    Learned: ``mean_``, ``std_`` (input standardization), ``net_``, ``history_`` (mean loss
    per epoch), ``n_pairs_``.
    """

    def __init__(self, *, hidden_dim: int = 256, out_dim: int | None = None, dropout: float = 0.1,
                 temperature: float = 0.1, learning_rate: float = 1e-3, batch_size: int = 512, epochs: int = 3,
                 device: str | None = None, random_state: int | None = 0) -> None:
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.dropout = dropout
        self.temperature = temperature
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.device = device
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("hidden_dim", "out_dim", "dropout", "temperature", "learning_rate",
                                              "batch_size", "epochs", "device", "random_state")}

    def fit(self, ids: Sequence[str] | np.ndarray, X: np.ndarray, sessions: Sequence[Sequence[str]]) -> "SessionContrastiveTuner":
        """Train on the sessions' item pairs; ``X`` rows (NaN = missing) belong to ``ids``."""
        X = np.asarray(X, dtype=np.float32)
        ids = np.asarray(ids).astype(str)
        if X.ndim != 2 or len(ids) != len(X):
            raise InputError(f"expected {len(ids)} rows of a 2-D matrix, got shape {X.shape}", field="X")
        if self.epochs < 1 or self.batch_size < 2:
            raise InputError("epochs must be >= 1 and batch_size >= 2", field="epochs")
        present = np.isfinite(X).all(axis=1)
        pos = {k: i for i, k in enumerate(ids.tolist()) if present[i]}
        enc = [[pos[x] for x in s if x in pos] for s in sessions]
        enc = [np.asarray(s) for s in enc if len(s) >= 2]
        if not enc:
            raise InputError("no session has two items with a vector: nothing to tune on", field="sessions")
        self.mean_ = X[present].mean(axis=0)
        self.std_ = X[present].std(axis=0) + 1e-6
        d = X.shape[1]
        out = self.out_dim or d
        dev = get_device(self.device)
        rng = np.random.default_rng(self.random_state)
        Z = torch.from_numpy(np.nan_to_num((X - self.mean_) / self.std_)).to(dev)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if self.random_state is None else int(self.random_state))
            self.net_ = nn.Sequential(nn.Linear(d, self.hidden_dim), nn.ReLU(), nn.Dropout(self.dropout),
                                      nn.Linear(self.hidden_dim, out)).to(dev)
            opt = torch.optim.Adam(self.net_.parameters(), lr=self.learning_rate)
            self.history_: list[float] = []
            for _ in range(self.epochs):
                a = np.concatenate(enc)
                b = np.concatenate([s[(np.arange(len(s)) + rng.integers(1, len(s), size=len(s))) % len(s)]
                                    for s in enc])
                order = rng.permutation(len(a))
                self.n_pairs_ = int(len(a))
                self.net_.train()
                tot, cnt = 0.0, 0
                for i in range(0, len(order) - 1, self.batch_size):
                    j = order[i:i + self.batch_size]
                    if len(j) < 2:
                        continue
                    ja, jb = torch.from_numpy(a[j]).to(dev), torch.from_numpy(b[j]).to(dev)
                    loss = info_nce(self.net_(Z[ja]), self.net_(Z[jb]), self.temperature, symmetric=True)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    tot += float(loss.detach()) * len(j)
                    cnt += len(j)
                self.history_.append(tot / max(cnt, 1))
                log.debug("tuner epoch %d: loss %.4f", len(self.history_), self.history_[-1])
        self.net_.eval()
        return self

    @torch.no_grad()
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Tuned embeddings; rows that were NaN stay NaN (missing stays missing)."""
        if not hasattr(self, "net_"):
            raise RuntimeError("SessionContrastiveTuner is not fitted")
        X = np.asarray(X, dtype=np.float32)
        present = np.isfinite(X).all(axis=1)
        dev = next(self.net_.parameters()).device
        Z = torch.from_numpy(np.nan_to_num((X - self.mean_) / self.std_)).to(dev)
        Y = self.net_(Z).cpu().numpy().astype(np.float32)
        Y[~present] = np.nan
        return Y
