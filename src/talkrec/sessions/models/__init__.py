"""Transformer session models on PyTorch's own layers (paper 002 sections 4.2 and 4.3).

Both families share one network (:class:`SessionNet`):

* an item table ``E`` (n_items x d_emb), initialised at random or from any embedding
  (:mod:`talkrec.sessions.init`), frozen or trainable, plus two trainable special rows
  ([PAD], [MASK]) kept apart so that a frozen table still has a learnable mask;
* when ``d_emb != d_model`` a ``Linear(d_emb, d_model) + ReLU`` input projection
  (paper 002 section 4.2.1) and a ``Linear(d_model, d_emb)`` output projection;
* learned absolute position embeddings, then ``torch.nn.TransformerEncoder`` layers
  (pre-norm, GELU). Paper 002 uses XLNet-style relative positions inside T4Rec; PyTorch's
  layers have none, so absolute positions are the documented deviation;
* weight tying: an item's score is ``<W_out h, E_item> + b_item``, the same ``E`` as the input.

:class:`MaskedSessionModel` (BERT4Rec / Transformers4Rec, bidirectional attention) is
trained by masked-item prediction with a full softmax (paper 002 eq. 4.2.1) and predicts
the next item from an appended [MASK]. :class:`NextItemSessionModel` (RTA, causal
attention) is trained so that the representation of every prefix scores the true next
item above ``n_negatives`` uniformly sampled items outside the session:
``L = -log s(f(p_i, x_{i+1})) - sum_neg log s(-f(p_i, x^-))`` (eqs. 4.3.1-2 with the
usual sign of the negative term), and predicts from its last position.

Both are :class:`talkrec.estimator.Estimator` subclasses: keyword-only hyperparameters
stored unchanged, ``fit`` returns self, learned attributes end in ``_``. The checkpoint
with the best validation NDCG@20 is kept (``history_`` has the learning curve). Models are
saved as safetensors + JSON.

Modules: :mod:`.net` (the network), :mod:`.base` (what the families share),
:mod:`.masked` and :mod:`.next_item` (one family each).
"""
from __future__ import annotations

from .base import _SessionModel
from .masked import MaskedSessionModel, mask_tokens
from .net import MASK, OFFSET, PAD, SessionNet
from .next_item import NextItemSessionModel

#: family name (saved with a model) -> class
FAMILIES: dict[str, type[_SessionModel]] = {"masked": MaskedSessionModel, "next_item": NextItemSessionModel}

__all__ = ["FAMILIES", "MASK", "OFFSET", "PAD", "MaskedSessionModel", "NextItemSessionModel", "SessionNet",
           "mask_tokens"]
