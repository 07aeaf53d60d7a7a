"""The one place where talkrec picks a compute device."""
from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def get_device(preferred: str | None = None) -> str:
    """Return ``"cuda"``, ``"mps"`` or ``"cpu"``.

    ``preferred`` (or the ``TALKREC_DEVICE`` environment variable) wins when it is available;
    otherwise the best available accelerator is used, else the CPU.
    """
    import torch

    want = preferred or os.environ.get("TALKREC_DEVICE")
    if want:
        if want.startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %r requested but CUDA is not available; using cpu", want)
            return "cpu"
        return want
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
