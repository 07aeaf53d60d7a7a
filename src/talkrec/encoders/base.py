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
    """True when ``inputs`` is one input (a str / path / id) rather than a sequence of them."""
    return isinstance(inputs, (str, bytes)) or not isinstance(inputs, (Sequence, np.ndarray, Iterable)) \
        or hasattr(inputs, "__fspath__")


def progress_bar(iterable: Any = None, **kw: Any) -> Any:
    """A ``tqdm.auto`` progress bar; tqdm is imported here, when a bar is shown (35-47 ms of
    a cold process, which a query never needs)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def batched_encode(inputs: Any, fn: Callable[[list[Any]], np.ndarray], dim: int, *, batch_size: int,
                   show_progress_bar: bool, desc: str) -> np.ndarray:
    """Run ``fn`` over ``inputs`` in batches, keep order; one input in gives a vector out."""
    single = is_single(inputs)
    items = [inputs] if single else list(inputs)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
    out = np.empty((len(items), dim), dtype=np.float32)
    starts = range(0, len(items), batch_size)      # no bar object at all without a bar: ~70 us a call
    for s in progress_bar(starts, desc=desc, unit="batch") if show_progress_bar else starts:
        out[s:s + batch_size] = fn(items[s:s + batch_size])
    return out[0] if single else out
