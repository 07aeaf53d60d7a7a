"""The one place where talkrec picks a compute device."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator

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


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads (``None``: leave torch's setting).

    Small MLPs gain little from a second thread and lose badly to oversubscription on a
    busy machine (measured here: 70 ms/step with 1 thread vs 600-2000 ms with 2 under load),
    so talkrec's trainers default to one thread on CPU.
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)
