"""The shape every modality encoder shares.

Like sentence-transformers' ``encode``: one input gives a 1-D vector, a list gives a 2-D
matrix (rows in input order), computed in batches, with an optional progress bar.
Inputs are whatever the modality takes: texts, item ids (CF), file paths (audio, image).
Every encoder is a :class:`talkrec.estimator.Estimator`: hyperparameters stored unchanged,
``get_params`` / ``set_params`` / ``clone``, bad parameters raise
:class:`~talkrec.errors.InputError` naming them. The ones that learn from data (CF,
precomputed vectors) check them in ``fit`` (which returns ``self``; learned state ends in
``_``); the pretrained ones (text, audio, image) on first use.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError


@runtime_checkable
class Encoder(Protocol):
    """A modality encoder: ``encode(x)`` -> vector, ``encode([x, ...])`` -> matrix."""

    #: Modality name, e.g. ``"text"``, ``"cf"``, ``"audio"``, ``"image"``.
    modality: str

    @property
    def dim(self) -> int: ...

    def encode(self, inputs: Any, *, batch_size: int = 64, show_progress_bar: bool = False) -> np.ndarray: ...

    def config(self) -> dict[str, Any]: ...


def is_single(inputs: Any) -> bool:
    """True when ``inputs`` is one input (a str / path / id, or a 0-d numpy array holding one)
    rather than a sequence of them."""
    return isinstance(inputs, (str, bytes)) or not isinstance(inputs, (Sequence, np.ndarray, Iterable)) \
        or hasattr(inputs, "__fspath__") or (isinstance(inputs, np.ndarray) and inputs.ndim == 0)


def as_list(inputs: Any) -> list[Any]:
    """``inputs`` as a list of inputs: one input (:func:`is_single`; a 0-d array's value) in a
    list of one, a sequence, array or generator as its items, in order."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 0:
        return [inputs.item()]
    return [inputs] if is_single(inputs) else list(inputs)


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` when it is an integer >= 1 (not a bool), else :class:`InputError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}", field="batch_size")
    return int(batch_size)


def check_weights(weights: Any, n: int) -> np.ndarray:
    """``weights`` as a float64 array when they are ``n`` finite numbers (one per item), else
    :class:`InputError` (field ``weights``; NaN would spread through every score)."""
    if isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, np.ndarray)):
        raise InputError(f"weights must be a list of {n} numbers, got {type(weights).__name__}", field="weights")
    if len(weights) != n:
        raise InputError(f"{len(weights)} weights for {n} items", field="weights")
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        w = np.array([np.nan])
    if w.shape != (n,) or not np.isfinite(w).all():
        raise InputError(f"weights must be {n} finite numbers (one per item), got {weights!r:.200}", field="weights")
    return w


def check_id_list(item_ids: Any) -> list[Any]:
    """``item_ids`` as a list; one bare string (which would be read as its characters) or a
    value that is not a sequence is :class:`InputError` (field ``item_ids``)."""
    if isinstance(item_ids, (str, bytes)) or not isinstance(item_ids, (Sequence, np.ndarray, Iterable)):
        raise InputError(f"item_ids must be a list of item ids, not one {type(item_ids).__name__}: "
                         f"[{item_ids!r:.60}] rather than {item_ids!r:.60}", field="item_ids")
    return list(item_ids)


class InputTypeError(InputError, TypeError):
    """An input of the wrong type (a text that is not a ``str``): an :class:`InputError`, and the
    ``TypeError`` it was before."""


def check_texts(texts: list[Any]) -> None:
    """:class:`InputTypeError` (field ``inputs``) naming the first item that is not a ``str``, by
    its position (sentence-transformers fails deep inside its tokenizer)."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputTypeError(f"text #{i} is {type(t).__name__} {t!r:.60}, expected a str (a missing "
                                 "description? pass '' or leave the item out)", field="inputs")


def progress_bar(iterable: Any = None, **kw: Any) -> Any:
    """A ``tqdm.auto`` progress bar; tqdm is imported here, when a bar is shown (35-47 ms of
    a cold process, which a query never needs)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def batched_encode(inputs: Any, fn: Callable[[list[Any]], np.ndarray], dim: int, *, batch_size: int,
                   show_progress_bar: bool, desc: str) -> np.ndarray:
    """Run ``fn`` over ``inputs`` in batches, keep order; one input in gives a vector out."""
    single = is_single(inputs)
    items = as_list(inputs)
    batch_size = check_batch_size(batch_size)
    out = np.empty((len(items), dim), dtype=np.float32)
    starts = range(0, len(items), batch_size)      # no bar object at all without a bar: ~70 us a call
    for s in progress_bar(starts, desc=desc, unit="batch") if show_progress_bar else starts:
        out[s:s + batch_size] = fn(items[s:s + batch_size])
    return out[0] if single else out
