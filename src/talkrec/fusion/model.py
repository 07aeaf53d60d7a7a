"""The multimodal contrastive fusion model (paper 001 section 2, paper 004 section 2.1).

One small MLP encoder per modality (:mod:`talkrec.fusion.encoders`) maps pretrained, frozen
modality embeddings into one shared space; training (:mod:`talkrec.fusion.training`)
minimises the sum of pairwise InfoNCE losses over all modality pairs. An item's multimodal
embedding is the L2-normalized mean of the (normalized) encoder outputs of the modalities
it has, so an item missing modalities still gets one.

Inputs are ``{modality: matrix}`` with one row per item, in the same item order for every
modality; a row of NaN marks a missing modality. A modality may also be given as a list
of matrices, several *views* of it (TEMPLATE and GEN descriptions: paper 001's
TEMPLATE+GEN); training samples one present view per item and batch, inference averages
the views' projections.

torch is imported only to train, save and load the estimator; :class:`Projection` is the
inference both it and the torch-free :class:`~talkrec.fusion.projector.FusionProjector`
(what a served space loads) run.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_dir
from ..device import get_device, torch_threads
from ..errors import InputError, NotFittedError
from ..estimator import (Estimator, Instance, Interval, Predicate, UnreadableModelFile, read_model_file,
                         saved_params)
from .data import (ModalityInput, as_float32, as_views, check_inputs, presence, present_mask, split_items,
                   standardization)


class UnknownModalityError(InputError, KeyError):
    """A modality the model was not trained on: an :class:`InputError`, and the ``KeyError``
    it was before."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown modality"


def _check_rows(outputs: Mapping[str, np.ndarray]) -> None:
    """Every modality has one row per item: the same row count."""
    n = {m: len(v) for m, v in outputs.items()}
    if len(set(n.values())) > 1:
        raise InputError(f"all modalities must have one row per item; got row counts {n}", field="X")


def modality_weight(weights: Mapping[str, float] | None, m: str) -> float:
    """Modality ``m``'s weight in an item's fused mean: 1 without ``weights``, else its entry
    (0 for a modality the weights leave out)."""
    return 1.0 if weights is None else float(weights.get(m, 0.0))


def combine(outputs: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """L2-normalized weighted mean over the modalities present in each row (NaN = absent)."""
    if not outputs:
        raise InputError("no modality outputs to combine", field="outputs")
    _check_rows(outputs)
    names = list(outputs)
    stack = np.stack([outputs[m] for m in names])                 # (M, n, d)
    w = np.array([modality_weight(weights, m) for m in names], dtype=np.float32)
    ok = ~np.isnan(stack).any(axis=2)                              # (M, n)
    wz = (ok * w[:, None])[:, :, None]
    s = (np.nan_to_num(stack) * wz).sum(axis=0)
    norm = np.linalg.norm(s, axis=1, keepdims=True)
    out = np.full_like(s, np.nan)
    good = (wz.sum(axis=0)[:, 0] > 0) & (norm[:, 0] > 1e-12)
    out[good] = s[good] / norm[good]
    return out.astype(np.float32)


#: what a saved fusion model's ``config.json`` holds
_META_KEYS = ("params", "modalities", "input_dims", "pairs", "history", "best_epoch", "n_train_items", "n_val_items")


def read_model(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(config.json, tensors)`` of a saved fusion model, the tensors as numpy arrays;
    :class:`~talkrec.estimator.UnreadableModelFile` naming the file that is missing, cannot be
    read or lacks what :meth:`ContrastiveFusion.save` writes."""
    from safetensors.numpy import load_file

    path = Path(path)
    what = "ContrastiveFusion model"
    meta = read_model_file(path / "config.json", lambda f: json.loads(f.read_text()), what)
    lacking = [k for k in _META_KEYS if k not in meta] if isinstance(meta, dict) else list(_META_KEYS)
    if lacking or not isinstance(meta["params"], dict) or "out_dim" not in meta["params"] \
            or not isinstance(meta["modalities"], list) or not isinstance(meta["input_dims"], dict):
        raise UnreadableModelFile(f"not a saved {what}'s config (lacking {lacking or 'params / modalities'})",
                                  path=str(path / "config.json"))
    tensors = read_model_file(path / "model.safetensors", lambda f: load_file(str(f)), what)
    names = [f"{s}.{m}" for m in meta["modalities"] for s in ("mean", "std")]
    if any(n not in tensors for n in names) or not any(k.startswith("encoder.") for k in tensors):
        raise UnreadableModelFile(f"not the tensors of this config's modalities {meta['modalities']}",
                                  path=str(path / "model.safetensors"))
    return meta, tensors


class Projection:
    """Inference shared by the torch estimator and the numpy projector.

    Subclasses set ``modalities_``, ``input_dims_``, ``mean_``, ``std_``, ``out_dim`` and
    implement ``_forward``.
    """

    modalities_: list[str]
    input_dims_: dict[str, int]
    mean_: dict[str, np.ndarray]
    std_: dict[str, np.ndarray]
    out_dim: int

    def _check_fitted(self) -> None:
        if not hasattr(self, "input_dims_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load() first")

    def _forward(self, modality: str, Z: np.ndarray) -> np.ndarray:
        """Standardized rows of one modality -> L2-normalized outputs."""
        raise NotImplementedError

    def _set_model(self, meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> None:
        """The learned state of a saved model (``config.json`` and its tensors)."""
        self.modalities_ = list(meta["modalities"])
        self.input_dims_ = {k: int(v) for k, v in meta["input_dims"].items()}
        self.pairs_ = [tuple(p) for p in meta["pairs"]]
        self.history_ = meta["history"]
        self.best_epoch_ = meta["best_epoch"]
        self.n_train_items_, self.n_val_items_ = meta["n_train_items"], meta["n_val_items"]
        self.mean_ = {m: np.asarray(tensors[f"mean.{m}"]) for m in self.modalities_}
        self.std_ = {m: np.asarray(tensors[f"std.{m}"]) for m in self.modalities_}

    def project(self, modality: str, X: np.ndarray) -> np.ndarray:
        """Map raw vectors of one modality into the shared space (rows L2-normalized).

        Rows with NaN give NaN rows. Accepts one vector (-> 1-D) or a matrix.
        """
        self._check_fitted()
        if modality not in self.input_dims_:
            raise UnknownModalityError(f"unknown modality {modality!r}; the model has {self.modalities_}",
                                       field="modality")
        X = as_float32(X, modality)
        single = X.ndim == 1
        X2 = X[None, :] if single else X
        if X2.ndim != 2 or X2.shape[1] != self.input_dims_[modality]:
            raise InputError(f"modality {modality!r} expects vectors of dimension {self.input_dims_[modality]}, "
                             f"got shape {X.shape}", field="X")
        ok = present_mask(X2)
        out = np.full((len(X2), self.out_dim), np.nan, dtype=np.float32)
        if ok.any():
            out[ok] = self._forward(modality, (X2[ok] - self.mean_[modality]) / self.std_[modality])
        return out[0] if single else out

    def project_views(self, modality: str, X: ModalityInput) -> np.ndarray:
        """Project every view of a modality and average the present ones (NaN if none)."""
        vs = [self.project(modality, v) for v in as_views(X, modality)]
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
        if not isinstance(X, Mapping):
            raise InputError(f"expected a mapping {{modality: matrix (n_items, dim)}}, got {type(X).__name__}",
                             field="X")
        unknown = [m for m in X if m not in self.input_dims_]
        if unknown:
            raise UnknownModalityError(f"unknown modality {', '.join(map(repr, unknown))}; the model has "
                                       f"{self.modalities_}", field="modality")
        out = {m: self.project_views(m, v) for m, v in X.items()}
        _check_rows(out)
        return out

    def transform(self, X: Mapping[str, ModalityInput], weights: Mapping[str, float] | None = None) -> np.ndarray:
        """Multimodal embedding: L2-normalized (weighted) mean of the present modalities'
        projections. Rows with no modality come back as NaN."""
        return combine(self.modality_outputs(X), weights)



def _is_pairs(v: Any) -> bool:
    return v is None or (isinstance(v, Sequence) and not isinstance(v, str)
                         and all(isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2
                                 and all(isinstance(m, str) for m in p) for p in v))


class ContrastiveFusion(Projection, Estimator):
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
    neighbor_weight, n_neighbors:
        Weight of the interaction-positive term (0: off, the paper) and how many of each
        item's neighbours (``fit(..., neighbors=)``, e.g. its EASE list) it draws from:
        each epoch an item draws one neighbour, and the InfoNCE between the two items' fused
        vectors is added (:func:`~talkrec.fusion.training.neighbor_loss`).
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

    _constraints = {
        "hidden_dim": Interval(int, 1), "out_dim": Interval(int, 1), "dropout": Interval(float, 0, 1, "left"),
        "temperature": Interval(float, 0, closed="neither"), "learning_rate": Interval(float, 0, closed="neither"),
        "batch_size": Interval(int, 2), "max_epochs": Interval(int, 1), "patience": Interval(int, 1),
        "validation_fraction": Interval(float, 0, 1, "left"), "symmetric": Instance(bool),
        "standardize": Instance(bool), "pairs": Predicate(_is_pairs, "None or a list of modality-name pairs"),
        "neighbor_weight": Interval(float, 0), "n_neighbors": Interval(int, 1),
        "device": Instance(str, none=True), "n_threads": Interval(int, 1, none=True),
        "random_state": Interval(int, 0, none=True), "verbose": Instance((bool, int)),
    }

    def __init__(self, *, hidden_dim: int = 256, out_dim: int = 200, dropout: float = 0.3,
                 temperature: float = 0.1, learning_rate: float = 1e-4, batch_size: int = 512,
                 max_epochs: int = 300, patience: int = 20, validation_fraction: float = 0.1,
                 symmetric: bool = False, standardize: bool = True,
                 pairs: Sequence[tuple[str, str]] | None = None, neighbor_weight: float = 0.0,
                 n_neighbors: int = 10, device: str | None = None,
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
        self.neighbor_weight = neighbor_weight
        self.n_neighbors = n_neighbors
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X: Mapping[str, ModalityInput], y: None = None, *,
            neighbors: np.ndarray | None = None) -> "ContrastiveFusion":
        """Train the per-modality encoders on aligned modality matrices (NaN row = missing).
        ``neighbors``: ``(n_items, K)`` item rows, strongest first, ``-1`` for none (used when
        ``neighbor_weight > 0``)."""
        self._check_params()
        with torch_threads(self.n_threads):
            return self._fit(X, neighbors)

    def _check_neighbors(self, neighbors: np.ndarray | None, n: int) -> np.ndarray | None:
        """The first ``n_neighbors`` valid entries of each row, compacted (None when off)."""
        if neighbors is None or not self.neighbor_weight:
            return None
        nb = np.asarray(neighbors)
        if nb.ndim != 2 or nb.shape[0] != n or not np.issubdtype(nb.dtype, np.integer) or (nb >= n).any():
            raise InputError(f"neighbors must be an (n_items={n}, K) integer array of item rows (-1: none), "
                             f"got shape {nb.shape}", field="neighbors")
        out = np.full((n, int(self.n_neighbors)), -1, dtype=np.int64)
        for i, row in enumerate(nb):
            v = row[(row >= 0) & (row != i)][: int(self.n_neighbors)]
            out[i, :len(v)] = v
        return out

    def _fit(self, X: Mapping[str, ModalityInput], neighbors: np.ndarray | None = None) -> "ContrastiveFusion":
        import torch

        from .encoders import build_encoders
        from .training import FusionData, TrainSettings, train

        views, pairs = check_inputs(X, self.pairs)
        present = presence(views)
        rng = np.random.default_rng(self.random_state)
        rng.integers(2**31)  # a draw that once seeded an unused generator: kept, so a seed trains as before
        train_idx, val_idx = split_items(present, pairs, self.validation_fraction, rng)
        self.modalities_ = list(views)
        self.pairs_ = pairs
        self.input_dims_ = {m: int(vs[0].shape[1]) for m, vs in views.items()}
        self.mean_, self.std_ = standardization(views, train_idx, self.standardize)
        dev = get_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            self.encoders_ = build_encoders(self.input_dims_, self.hidden_dim, self.out_dim, self.dropout).to(dev)
        nb = self._check_neighbors(neighbors, len(next(iter(present.values()))))
        data = FusionData.build(views, present, self.mean_, self.std_, pairs, dev, nb)
        self.history_, self.best_epoch_ = train(self.encoders_, data, train_idx, val_idx, rng,
                                                TrainSettings.from_params(self.get_params()))
        self.n_train_items_, self.n_val_items_ = int(len(train_idx)), int(len(val_idx))
        return self

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        Estimator._check_fitted(self)

    def _forward(self, modality: str, Z: np.ndarray) -> np.ndarray:
        import torch

        dev = next(self.encoders_.parameters()).device
        res = []
        with torch.no_grad():
            for s in range(0, len(Z), 8192):
                t = torch.from_numpy(np.ascontiguousarray(Z[s:s + 8192])).to(dev)
                res.append(torch.nn.functional.normalize(self.encoders_[modality](t), dim=1).cpu().numpy())
        return np.concatenate(res)

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """The hyperparameters as JSON (``pairs`` as lists), as ``save`` writes them."""
        cfg = self.get_params()
        cfg["pairs"] = [list(p) for p in cfg["pairs"]] if cfg["pairs"] else None
        return cfg

    def save(self, path: str | Path) -> None:
        """Write ``model.safetensors`` and ``config.json`` into folder ``path`` atomically."""
        import torch
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
        """A model saved by :meth:`save` (``device``: where it runs, instead of the saved one);
        :class:`~talkrec.estimator.UnreadableModelFile` naming a file missing or unreadable."""
        import torch

        from .encoders import build_encoders

        meta, tensors = read_model(path)
        params = saved_params(cls, meta["params"], Path(path) / "config.json")
        if params.get("pairs"):
            params["pairs"] = [tuple(p) for p in params["pairs"]]
        if device is not None:
            params["device"] = device
        self = cls(**params)
        self._set_model(meta, tensors)
        dev = get_device(self.device)
        self.encoders_ = build_encoders(self.input_dims_, self.hidden_dim, self.out_dim, self.dropout)
        state = {k[len("encoder."):]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("encoder.")}
        read_model_file(Path(path) / "model.safetensors", lambda f: self.encoders_.load_state_dict(state),
                        "ContrastiveFusion model")
        self.encoders_.to(dev).eval()
        return self
