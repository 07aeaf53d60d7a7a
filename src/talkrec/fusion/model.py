"""The multimodal contrastive fusion model (paper 001 section 2, paper 004 section 2.1).

One small MLP encoder per modality maps pretrained, frozen modality embeddings into one
shared space; training minimises the sum of pairwise InfoNCE losses over all modality
pairs. An item's multimodal embedding is the L2-normalized mean of the (normalized)
encoder outputs of the modalities it has, so an item missing modalities still gets one.

Inputs are ``{modality: matrix}`` with one row per item, in the same item order for every
modality; a row of NaN marks a missing modality. A modality may also be given as a list
of matrices, several *views* of it (TEMPLATE and GEN descriptions: paper 001's
TEMPLATE+GEN); training samples one present view per item and batch, inference averages
the views' projections.
"""
from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_dir
from ..device import get_device, torch_threads
from .losses import info_nce

log = logging.getLogger(__name__)

ModalityInput = np.ndarray | Sequence[np.ndarray]


class ModalityEncoder(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear (paper 001 footnote 1: 256 hidden, 200 out, 0.3)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _views(x: ModalityInput, name: str) -> list[np.ndarray]:
    vs = [x] if isinstance(x, np.ndarray) else list(x)
    if not vs:
        raise ValueError(f"modality '{name}': no views given")
    out = []
    for v in vs:
        v = np.asarray(v, dtype=np.float32)
        if v.ndim != 2:
            raise ValueError(f"modality '{name}': expected a 2-D matrix, got shape {v.shape}")
        out.append(v)
    if len({v.shape for v in out}) != 1:
        raise ValueError(f"modality '{name}': all views must have the same shape")
    return out


def present_mask(v: np.ndarray) -> np.ndarray:
    """Rows that hold a vector (no NaN)."""
    return ~np.isnan(v).any(axis=1)


class ContrastiveFusion:
    """Contrastive multimodal fusion, scikit-learn style.

    Parameters (keyword-only, stored unchanged; checked in :meth:`fit`)
    ----------
    hidden_dim, out_dim, dropout:
        Encoder shape (paper: 256, 200, 0.3).
    temperature:
        InfoNCE temperature tau (paper: 0.1).
    learning_rate, batch_size:
        Adam step size and batch size (paper: 1e-4, 512).
    max_epochs, patience:
        Train at most ``max_epochs``; stop when the held-out loss has not improved for
        ``patience`` epochs and restore the best weights.
    validation_fraction:
        Share of trainable items held out for early stopping.
    symmetric:
        Also anchor each pair's loss on the second modality (the paper anchors on the first).
    standardize:
        Z-score each modality's inputs with statistics of the training rows.
    pairs:
        Restrict the loss to these modality pairs (default: all pairs).
    device, n_threads, random_state, verbose:
        Torch device (``None``: :func:`talkrec.device.get_device`), CPU threads while training
        (see :func:`talkrec.device.torch_threads`), seed, progress logging.

    Attributes
    ----------
    modalities_ : list[str]
    input_dims_ : dict[str, int]
    encoders_ : torch.nn.ModuleDict
    history_ : list[dict]  (epoch, train_loss, val_loss, seconds)
    best_epoch_ : int
    """

    def __init__(self, *, hidden_dim: int = 256, out_dim: int = 200, dropout: float = 0.3,
                 temperature: float = 0.1, learning_rate: float = 1e-4, batch_size: int = 512,
                 max_epochs: int = 300, patience: int = 20, validation_fraction: float = 0.1,
                 symmetric: bool = False, standardize: bool = True,
                 pairs: Sequence[tuple[str, str]] | None = None, device: str | None = None,
                 n_threads: int | None = 1, random_state: int | None = 0, verbose: bool = False) -> None:
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.dropout = dropout
        self.temperature = temperature
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.symmetric = symmetric
        self.standardize = standardize
        self.pairs = pairs
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "hidden_dim", "out_dim", "dropout", "temperature", "learning_rate", "batch_size",
            "max_epochs", "patience", "validation_fraction", "symmetric", "standardize", "pairs",
            "device", "n_threads", "random_state", "verbose")}

    def set_params(self, **params: Any) -> "ContrastiveFusion":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    def _check_params(self) -> None:
        for k in ("hidden_dim", "out_dim", "batch_size", "max_epochs"):
            v = getattr(self, k)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (in-batch negatives)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience!r}")

    # ------------------------------------------------------------------ fit
    def fit(self, X: Mapping[str, ModalityInput], y: None = None) -> "ContrastiveFusion":
        """Train the per-modality encoders on aligned modality matrices (NaN row = missing)."""
        self._check_params()
        with torch_threads(self.n_threads):
            return self._fit(X)

    def _fit(self, X: Mapping[str, ModalityInput]) -> "ContrastiveFusion":
        if len(X) < 2:
            raise ValueError(f"fusion needs at least two modalities, got {list(X)}")
        views = {m: _views(v, m) for m, v in X.items()}
        n = {m: v[0].shape[0] for m, v in views.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"all modalities must have one row per item; got row counts {n}")
        n_items = next(iter(n.values()))
        modalities = list(views)
        pairs = [tuple(p) for p in (self.pairs or itertools.combinations(modalities, 2))]
        for a, b in pairs:
            if a not in views or b not in views or a == b:
                raise ValueError(f"pair {(a, b)} must name two different given modalities {modalities}")
        present = {m: np.stack([present_mask(v) for v in vs], axis=1) for m, vs in views.items()}  # (n, views)
        has = {m: p.any(axis=1) for m, p in present.items()}
        trainable = np.zeros(n_items, dtype=bool)
        for a, b in pairs:
            trainable |= has[a] & has[b]
        idx = np.flatnonzero(trainable)
        if len(idx) < 2:
            raise ValueError("fewer than two items have two or more modalities; nothing to train on")
        rng = np.random.default_rng(self.random_state)
        torch_gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        rng.shuffle(idx)
        n_val = int(round(len(idx) * self.validation_fraction))
        n_val = min(n_val, len(idx) - 2)
        val_idx, train_idx = np.sort(idx[:n_val]), np.sort(idx[n_val:])

        self.modalities_ = modalities
        self.pairs_ = pairs
        self.input_dims_ = {m: int(vs[0].shape[1]) for m, vs in views.items()}
        self.mean_, self.std_ = {}, {}
        for m, vs in views.items():
            rows = np.concatenate([v[train_idx][present_mask(v[train_idx])] for v in vs])
            if self.standardize and len(rows):
                mu, sd = rows.mean(axis=0), rows.std(axis=0)
                sd = np.where(sd < 1e-6, 1.0, sd)
            else:
                mu, sd = np.zeros(self.input_dims_[m]), np.ones(self.input_dims_[m])
            self.mean_[m], self.std_[m] = mu.astype(np.float32), sd.astype(np.float32)

        dev = get_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            self.encoders_ = nn.ModuleDict({m: ModalityEncoder(d, self.hidden_dim, self.out_dim, self.dropout)
                                            for m, d in self.input_dims_.items()}).to(dev)
        # Inputs on device once, standardized, NaN kept as a presence mask.
        data = {m: [torch.from_numpy(np.nan_to_num((v - self.mean_[m]) / self.std_[m])).to(dev) for v in vs]
                for m, vs in views.items()}
        pres = {m: torch.from_numpy(p).to(dev) for m, p in present.items()}
        opt = torch.optim.Adam(self.encoders_.parameters(), lr=self.learning_rate)

        def batch_loss(rows: torch.Tensor, sample: bool) -> torch.Tensor | None:
            out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            for m in modalities:
                p = pres[m][rows]                                  # (B, V)
                if p.shape[1] == 1 or not sample:
                    choice = torch.argmax(p.to(torch.int8), dim=1)  # first present view
                else:
                    w = p.float() + 1e-9
                    choice = torch.multinomial(w, 1, generator=None).squeeze(1)
                stacked = torch.stack([d[rows] for d in data[m]], dim=1)  # (B, V, d)
                x = stacked[torch.arange(len(rows), device=dev), choice]
                out[m] = (x, p.any(dim=1))
            # Encode each modality once on the rows that have it, then score every pair.
            z: dict[str, torch.Tensor] = {}
            where: dict[str, torch.Tensor] = {}
            for m in modalities:
                x, ok = out[m]
                where[m] = torch.cumsum(ok.to(torch.long), 0) - 1     # row -> position among present rows
                z[m] = self.encoders_[m](x[ok]) if bool(ok.any()) else x[:0]
            total: torch.Tensor | None = None
            for a, b in pairs:
                both = out[a][1] & out[b][1]
                if int(both.sum()) < 2:
                    continue
                za = z[a][where[a][both]]
                zb = z[b][where[b][both]]
                loss = info_nce(za, zb, self.temperature, symmetric=self.symmetric)
                total = loss if total is None else total + loss
            return total

        def val_loss() -> float:
            if not len(val_idx):
                return float("nan")
            self.encoders_.eval()
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                losses = []
                for s in range(0, len(val_idx), self.batch_size):
                    rows = torch.from_numpy(val_idx[s:s + self.batch_size]).to(dev)
                    if len(rows) < 2:
                        continue
                    ls = batch_loss(rows, sample=False)
                    if ls is not None:
                        losses.append(float(ls) * len(rows))
            return sum(losses) / len(val_idx) if losses else float("nan")

        self.history_: list[dict[str, float]] = []
        best, best_state, bad = float("inf"), None, 0
        self.best_epoch_ = 0
        for epoch in range(1, self.max_epochs + 1):
            t0 = time.perf_counter()
            self.encoders_.train()
            perm = train_idx[rng.permutation(len(train_idx))]
            tl, seen = 0.0, 0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**31)))
                for s in range(0, len(perm), self.batch_size):
                    rows_np = perm[s:s + self.batch_size]
                    if len(rows_np) < 2:
                        continue
                    rows = torch.from_numpy(rows_np).to(dev)
                    loss = batch_loss(rows, sample=True)
                    if loss is None:
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    tl += float(loss.detach()) * len(rows_np)
                    seen += len(rows_np)
            vl = val_loss()
            self.history_.append({"epoch": epoch, "train_loss": tl / max(seen, 1), "val_loss": vl,
                                  "seconds": time.perf_counter() - t0})
            if self.verbose and (epoch % 10 == 0 or epoch == 1):
                log.info("fusion epoch %d train %.4f val %.4f", epoch, tl / max(seen, 1), vl)
            score = vl if np.isfinite(vl) else tl / max(seen, 1)
            if score < best - 1e-5:
                best, bad, self.best_epoch_ = score, 0, epoch
                best_state = {k: v.detach().clone() for k, v in self.encoders_.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if best_state is not None:
            self.encoders_.load_state_dict(best_state)
        self.encoders_.eval()
        self.n_train_items_, self.n_val_items_ = int(len(train_idx)), int(len(val_idx))
        del torch_gen
        return self

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "encoders_"):
            raise RuntimeError("this ContrastiveFusion is not fitted yet; call fit() or load() first")

    def project(self, modality: str, X: np.ndarray) -> np.ndarray:
        """Map raw vectors of one modality into the shared space (rows L2-normalized).

        Rows with NaN give NaN rows. Accepts one vector (-> 1-D) or a matrix.
        """
        self._check_fitted()
        if modality not in self.input_dims_:
            raise KeyError(f"unknown modality {modality!r}; the model has {self.modalities_}")
        X = np.asarray(X, dtype=np.float32)
        single = X.ndim == 1
        X2 = X[None, :] if single else X
        if X2.ndim != 2 or X2.shape[1] != self.input_dims_[modality]:
            raise ValueError(f"modality {modality!r} expects vectors of dimension {self.input_dims_[modality]}, "
                             f"got shape {X.shape}")
        ok = present_mask(X2)
        out = np.full((len(X2), self.out_dim), np.nan, dtype=np.float32)
        if ok.any():
            dev = next(self.encoders_.parameters()).device
            with torch.no_grad():
                z = (X2[ok] - self.mean_[modality]) / self.std_[modality]
                res = []
                for s in range(0, len(z), 8192):
                    t = torch.from_numpy(np.ascontiguousarray(z[s:s + 8192])).to(dev)
                    res.append(torch.nn.functional.normalize(self.encoders_[modality](t), dim=1).cpu().numpy())
                out[ok] = np.concatenate(res)
        return out[0] if single else out

    def project_views(self, modality: str, X: ModalityInput) -> np.ndarray:
        """Project every view of a modality and average the present ones (NaN if none)."""
        vs = [self.project(modality, v) for v in _views(X, modality)]
        stack = np.stack(vs)                                  # (V, n, d)
        cnt = (~np.isnan(stack).any(axis=2)).sum(axis=0)      # (n,)
        s = np.nansum(stack, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / cnt[:, None]
        mean[cnt == 0] = np.nan
        return mean.astype(np.float32)

    def modality_outputs(self, X: Mapping[str, ModalityInput]) -> dict[str, np.ndarray]:
        """Per-modality projections of aligned inputs (NaN rows where missing)."""
        self._check_fitted()
        unknown = set(X) - set(self.input_dims_)
        if unknown:
            raise KeyError(f"unknown modalities {sorted(unknown)}; the model has {self.modalities_}")
        return {m: self.project_views(m, v) for m, v in X.items()}

    def transform(self, X: Mapping[str, ModalityInput], weights: Mapping[str, float] | None = None) -> np.ndarray:
        """Multimodal embedding: L2-normalized (weighted) mean of the present modalities'
        projections. Rows with no modality come back as NaN."""
        outs = self.modality_outputs(X)
        return combine(outs, weights)

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        cfg = self.get_params()
        cfg["pairs"] = [list(p) for p in cfg["pairs"]] if cfg["pairs"] else None
        return cfg

    def save(self, path: str | Path) -> None:
        """Write ``model.safetensors`` and ``config.json`` into folder ``path`` atomically."""
        from safetensors.torch import save_file

        self._check_fitted()
        with atomic_dir(path) as tmp:
            tensors = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in self.encoders_.state_dict().items()}
            for m in self.modalities_:
                tensors[f"mean.{m}"] = torch.from_numpy(self.mean_[m])
                tensors[f"std.{m}"] = torch.from_numpy(self.std_[m])
            save_file(tensors, str(tmp / "model.safetensors"))
            meta = {"params": self.config(), "modalities": self.modalities_, "input_dims": self.input_dims_,
                    "pairs": [list(p) for p in self.pairs_], "history": self.history_, "best_epoch": self.best_epoch_,
                    "n_train_items": self.n_train_items_, "n_val_items": self.n_val_items_, "format": 1}
            (tmp / "config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "ContrastiveFusion":
        from safetensors.torch import load_file

        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        params = dict(meta["params"])
        if params.get("pairs"):
            params["pairs"] = [tuple(p) for p in params["pairs"]]
        if device is not None:
            params["device"] = device
        self = cls(**params)
        self.modalities_ = list(meta["modalities"])
        self.input_dims_ = {k: int(v) for k, v in meta["input_dims"].items()}
        self.pairs_ = [tuple(p) for p in meta["pairs"]]
        self.history_ = meta["history"]
        self.best_epoch_ = meta["best_epoch"]
        self.n_train_items_, self.n_val_items_ = meta["n_train_items"], meta["n_val_items"]
        tensors = load_file(str(path / "model.safetensors"))
        self.mean_ = {m: tensors[f"mean.{m}"].numpy() for m in self.modalities_}
        self.std_ = {m: tensors[f"std.{m}"].numpy() for m in self.modalities_}
        dev = get_device(self.device)
        self.encoders_ = nn.ModuleDict({m: ModalityEncoder(d, self.hidden_dim, self.out_dim, self.dropout)
                                        for m, d in self.input_dims_.items()})
        self.encoders_.load_state_dict({k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")})
        self.encoders_.to(dev).eval()
        return self


def combine(outputs: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """L2-normalized weighted mean over the modalities present in each row (NaN = absent)."""
    if not outputs:
        raise ValueError("no modality outputs to combine")
    names = list(outputs)
    stack = np.stack([outputs[m] for m in names])                 # (M, n, d)
    w = np.array([1.0 if weights is None else float(weights.get(m, 0.0)) for m in names], dtype=np.float32)
    ok = ~np.isnan(stack).any(axis=2)                              # (M, n)
    wz = (ok * w[:, None])[:, :, None]
    s = (np.nan_to_num(stack) * wz).sum(axis=0)
    norm = np.linalg.norm(s, axis=1, keepdims=True)
    out = np.full_like(s, np.nan)
    good = (wz.sum(axis=0)[:, 0] > 0) & (norm[:, 0] > 1e-12)
    out[good] = s[good] / norm[good]
    return out.astype(np.float32)
