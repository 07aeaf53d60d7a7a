"""What the session-model families share: parameters, fitting, scoring, persistence.

Scikit-learn style (:class:`talkrec.estimator.Estimator`): keyword-only hyperparameters
stored unchanged and checked in ``fit``, ``fit`` returns self, learned attributes end in
``_``. The checkpoint with the best validation NDCG@20 is kept (``history_`` has the
learning curve). Models are saved as safetensors + JSON.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..._atomic import atomic_dir, strict_json
from ...device import get_device
from ...errors import InputError
from ...estimator import Estimator, Instance, Interval, Options
from ..evaluate import SessionTask, evaluate_scores
from ..init import init_table, random_table
from ..sessionize import SessionSet
from .net import OFFSET, SessionNet

log = logging.getLogger(__name__)


def _as_lists(sessions: SessionSet | Sequence[Sequence[str]]) -> list[list[str]]:
    items = sessions.items if isinstance(sessions, SessionSet) else sessions
    out = [[str(x) for x in s] for s in items]
    return out


class _SessionModel(Estimator):
    """Shared fitting, scoring and persistence of the families (subclasses set ``family``
    and ``causal`` and implement ``_batch_loss`` and ``_inputs``)."""

    family = "base"
    causal = False
    _constraints = {
        "embedding_dim": Interval(int, 1, none=True), "d_model": Interval(int, 1, none=True),
        "n_layers": Interval(int, 1), "n_heads": Interval(int, 1), "dim_feedforward": Interval(int, 1, none=True),
        "dropout": Interval(float, 0, 1, "left"), "max_length": Interval(int, 2),
        "learning_rate": Interval(float, 0, closed="neither"), "weight_decay": Interval(float, 0),
        "batch_size": Interval(int, 1), "max_epochs": Interval(int, 1), "patience": Interval(int, 0),
        "freeze_embeddings": Instance(bool), "standardize_init": Instance(bool),
        "popularity_bias_init": Instance(bool), "windows": Options("sample", "all"),
        "device": Instance(str, none=True), "random_state": Interval(int, 0, none=True),
        "verbose": Instance((bool, int)),
    }

    def __init__(self, *, embedding_dim: int | None = None, d_model: int | None = 64, n_layers: int = 2,
                 n_heads: int = 2, dim_feedforward: int | None = None, dropout: float = 0.2,
                 max_length: int = 50, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int = 128, max_epochs: int = 10, patience: int = 3,
                 freeze_embeddings: bool = False, standardize_init: bool = True,
                 popularity_bias_init: bool = True, windows: str = "sample",
                 device: str | None = None, random_state: int | None = 0, verbose: bool = False) -> None:
        self.embedding_dim = embedding_dim
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.max_length = max_length
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.freeze_embeddings = freeze_embeddings
        self.standardize_init = standardize_init
        self.popularity_bias_init = popularity_bias_init
        self.windows = windows
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, sessions: SessionSet | Sequence[Sequence[str]], y: None = None, *,
            item_ids: Sequence[str] | None = None, init: tuple[Sequence[str], np.ndarray] | None = None,
            validation: SessionTask | None = None) -> "_SessionModel":
        """Train on ``sessions`` (lists of item ids in order).

        item_ids:
            The item vocabulary (default: every item of ``sessions``). Validation tasks must
            be built over ``item_ids_`` (see :meth:`vocabulary`).
        init:
            ``(ids, matrix)`` to initialise the item table (missing items: random rows);
            None for the random baseline at ``embedding_dim`` (default ``d_model``).
        validation:
            A :class:`SessionTask` over the same vocabulary; the epoch with the best mean
            NDCG@20 on it is kept, and training stops after ``patience`` epochs without gain.
        """
        self._check_params()
        seqs = _as_lists(sessions)
        if not seqs:
            raise InputError("no training sessions", field="sessions")
        if item_ids is None:
            item_ids = list(dict.fromkeys(x for s in seqs for x in s))
        self.item_ids_ = np.asarray([str(i) for i in item_ids])
        pos = {k: i for i, k in enumerate(self.item_ids_.tolist())}
        if len(pos) != len(self.item_ids_):
            raise InputError("item_ids must be unique", field="item_ids")
        enc = [[pos[x] + OFFSET for x in s if x in pos] for s in seqs]
        enc = [s for s in enc if len(s) >= 2]
        if not enc:
            raise InputError("no training session has two items of the vocabulary", field="sessions")
        n = len(self.item_ids_)
        if init is not None:
            table, self.init_coverage_ = init_table(init[0], init[1], self.item_ids_,
                                                    standardize=self.standardize_init,
                                                    random_state=self.random_state)
            if self.embedding_dim is not None and table.shape[1] != self.embedding_dim:
                raise InputError(f"init has dimension {table.shape[1]} but embedding_dim={self.embedding_dim}",
                                 field="embedding_dim")
        else:
            d = self.embedding_dim or self.d_model
            if d is None:
                raise InputError("give embedding_dim or d_model for a random initialization", field="embedding_dim")
            table, self.init_coverage_ = random_table(n, int(d), random_state=self.random_state), 0.0
        self.embedding_dim_ = int(table.shape[1])
        self.d_model_ = int(self.d_model or self.embedding_dim_)
        if self.d_model_ % self.n_heads:
            raise InputError(f"d_model {self.d_model_} is not divisible by n_heads {self.n_heads}", field="n_heads")
        self.device_ = get_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if self.random_state is None else int(self.random_state))
            self.net_ = self._make_net(n)
            with torch.no_grad():
                self.net_.items.weight.copy_(torch.from_numpy(table))
                bias = np.full(n, self._bias_offset(), dtype=np.float64)
                if self.popularity_bias_init:
                    cnt = np.bincount(np.concatenate([np.asarray(s) for s in enc]) - OFFSET, minlength=n)
                    lb = np.log1p(cnt)
                    bias += lb - lb.mean()
                self.net_.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
            self.net_.items.weight.requires_grad_(not self.freeze_embeddings)
            self.net_.to(self.device_)
            self._train(enc, validation)
        return self

    def _make_net(self, n_items: int) -> SessionNet:
        ff = self.dim_feedforward or 4 * self.d_model_
        return SessionNet(n_items, self.embedding_dim_, self.d_model_, self.n_layers, self.n_heads, ff,
                          float(self.dropout), self.max_length, self.causal)

    def _windows(self, enc: list[list[int]], rng: np.random.Generator) -> list[list[int]]:
        """The training sequences of one epoch.

        ``windows="all"``: every session cut into consecutive windows of ``max_length``
        (the last window ends the session). ``"sample"``: one window of ``max_length`` per
        session at a random offset, redrawn every epoch (an epoch costs one pass over the
        sessions, not over all events; long sessions are covered across epochs).
        """
        L = self.max_length
        out = []
        for s in enc:
            if len(s) <= L:
                out.append(s)
            elif self.windows == "sample":
                a = int(rng.integers(0, len(s) - L + 1))
                out.append(s[a:a + L])
            else:
                for end in range(len(s), 1, -L):
                    w = s[max(0, end - L):end]
                    if len(w) >= 2:
                        out.append(w)
        return out

    def _pad(self, seqs: list[list[int]]) -> torch.Tensor:
        L = max(len(s) for s in seqs)
        t = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, s in enumerate(seqs):
            t[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        return t.to(self.device_)

    def _batch_loss(self, tokens: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _bias_offset(self) -> float:
        """Constant added to the initial item bias (0 for a softmax model)."""
        return 0.0

    def _train(self, enc: list[list[int]], validation: SessionTask | None) -> None:
        params = [p for p in self.net_.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=float(self.learning_rate), weight_decay=float(self.weight_decay))
        gen = torch.Generator().manual_seed(0 if self.random_state is None else int(self.random_state))
        rng = np.random.default_rng(self.random_state)
        self.history_: list[dict[str, float]] = []
        best, best_state, bad = -1.0, None, 0
        self.best_epoch_ = 0
        t0 = time.perf_counter()
        if validation is not None:
            v0 = self._val_score(validation)
            self.history_.append({"epoch": 0, "train_loss": float("nan"), "val_ndcg@20": v0, "seconds": 0.0})
            best, best_state = v0, copy.deepcopy(self.net_.state_dict())
        for epoch in range(1, self.max_epochs + 1):
            self.net_.train()
            windows = self._windows(enc, rng)
            order = rng.permutation(len(windows))
            # length-bucketed batches: sort a shuffled chunk by length to cut padding
            total, count = 0.0, 0
            chunks = [order[i:i + self.batch_size * 20] for i in range(0, len(order), self.batch_size * 20)]
            for ch in chunks:
                ch = sorted(ch, key=lambda j: len(windows[j]))
                batches = [ch[i:i + self.batch_size] for i in range(0, len(ch), self.batch_size)]
                for bi in rng.permutation(len(batches)):
                    tokens = self._pad([windows[j] for j in batches[bi]])
                    loss = self._batch_loss(tokens, gen)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 5.0)
                    opt.step()
                    total += float(loss.detach()) * tokens.shape[0]
                    count += tokens.shape[0]
            rec = {"epoch": epoch, "train_loss": total / max(count, 1), "seconds": time.perf_counter() - t0}
            if validation is not None:
                rec["val_ndcg@20"] = self._val_score(validation)
                if rec["val_ndcg@20"] > best:
                    best, bad, self.best_epoch_ = rec["val_ndcg@20"], 0, epoch
                    best_state = copy.deepcopy(self.net_.state_dict())
                else:
                    bad += 1
            else:
                self.best_epoch_ = epoch
            self.history_.append(rec)
            log.log(logging.INFO if self.verbose else logging.DEBUG, "%s epoch %d: %s", self.family, epoch, rec)
            if validation is not None and bad > self.patience:
                break
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        self.fit_seconds_ = time.perf_counter() - t0
        self.net_.eval()

    def _val_score(self, task: SessionTask) -> float:
        pq = evaluate_scores(self.score_indices, task, ks=(20,))
        return float(np.mean(pq["ndcg@20"]))

    # -- inference -------------------------------------------------------------------------
    def vocabulary(self) -> np.ndarray:
        self._check_fitted()
        return self.item_ids_

    def _inputs(self, ctx: list[int]) -> list[int]:
        raise NotImplementedError

    @torch.no_grad()
    def score_indices(self, contexts: list[list[int]]) -> np.ndarray:
        """Scores (n, n_items) of every vocabulary item after each context (vocabulary indices)."""
        self._check_fitted()
        was = self.net_.training
        self.net_.eval()
        seqs = [self._inputs([c + OFFSET for c in ctx]) for ctx in contexts]
        tokens = self._pad(seqs)
        h = self.net_(tokens)
        last = torch.tensor([len(s) - 1 for s in seqs], device=tokens.device)
        hl = h[torch.arange(len(seqs), device=tokens.device), last]
        S = self.net_.scores(hl).float().cpu().numpy()
        self.net_.train(was)
        return S

    def score(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        """Scores of every item in ``vocabulary()`` after each session of item ids (unknown ids skipped)."""
        self._check_fitted()
        pos = {k: i for i, k in enumerate(self.item_ids_.tolist())}
        ctx = [[pos[str(x)] for x in s if str(x) in pos] for s in sessions]
        if any(not c for c in ctx):
            raise InputError("a session has no item of the model's vocabulary", field="item_ids")
        return self.score_indices(ctx)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``model.safetensors`` and ``config.json`` into the folder ``path`` atomically."""
        from safetensors.torch import save_file
        self._check_fitted()
        with atomic_dir(path) as tmp:
            state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            meta = {"family": self.family, "params": self.get_params(), "item_ids": self.item_ids_.tolist(),
                    "embedding_dim": self.embedding_dim_, "d_model": self.d_model_,
                    "history": self.history_, "best_epoch": self.best_epoch_,
                    "init_coverage": self.init_coverage_}
            # strict JSON (NaN, e.g. epoch 0's training loss, is written as null and read back as NaN)
            (tmp / "config.json").write_text(json.dumps(strict_json(meta), indent=1, allow_nan=False) + "\n",
                                             encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "_SessionModel":
        """A model written by :meth:`save`. A folder that is not one (no or a broken
        ``config.json``, a missing or corrupt ``model.safetensors``, weights that do not fit
        the config) is an :class:`InputError` naming the file."""
        p = Path(path)
        if not p.is_dir():
            raise InputError("not a saved session model (not a folder)", path=str(p))
        meta = _read_meta(p / "config.json")
        from . import FAMILIES  # the families' modules import this one

        klass = FAMILIES.get(meta.get("family", ""))
        if klass is None:
            raise InputError(f"unknown session model family {meta.get('family')!r}", path=str(p / "config.json"),
                             field="family")
        if cls is not _SessionModel and klass is not cls:
            raise InputError(f"saved model is a {klass.__name__}, not a {cls.__name__}", path=str(p))
        try:
            params = dict(meta["params"])
            if device is not None:
                params["device"] = device
            self = klass(**params)
            self.item_ids_ = np.asarray(meta["item_ids"], dtype=str)
            self.embedding_dim_, self.d_model_ = int(meta["embedding_dim"]), int(meta["d_model"])
            self.history_ = [{k: float("nan") if v is None else v for k, v in h.items()} for h in meta["history"]]
            self.best_epoch_ = meta["best_epoch"]
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"not a saved session model's config ({type(e).__name__}: {e})",
                             path=str(p / "config.json")) from None
        self.init_coverage_ = meta.get("init_coverage", 0.0)
        self.device_ = get_device(self.device)
        self.net_ = self._make_net(len(self.item_ids_))
        try:
            self.net_.load_state_dict(_read_weights(p / "model.safetensors"))
        except RuntimeError as e:   # missing / unexpected tensors, wrong shapes
            detail = next((x.strip() for x in str(e).splitlines()[1:] if x.strip()), str(e))
            raise InputError(f"the weights do not fit config.json ({detail})",
                             path=str(p / "model.safetensors")) from None
        self.net_.to(self.device_).eval()
        return self


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        inside = sorted(d.name for d in path.parent.iterdir() if (d / "config.json").is_file())
        hint = f"; it holds the models {', '.join(inside)}: give one of them" if inside else ""
        raise InputError(f"not a saved session model (no config.json){hint}", path=str(path.parent)) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"not a saved session model's config (unreadable JSON: {e})", path=str(path)) from None
    if not isinstance(meta, dict):
        raise InputError("not a saved session model's config (not a JSON object)", path=str(path))
    return meta


def _read_weights(path: Path) -> dict:
    from safetensors.torch import load_file
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise InputError("not a saved session model (no model.safetensors)", path=str(path.parent)) from None
    except Exception as e:  # safetensors raises its own SafetensorError for a corrupt or truncated file
        raise InputError(f"corrupt model weights ({type(e).__name__}: {e})", path=str(path)) from None
