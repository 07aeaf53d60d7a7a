"""Input limits shared by the library, the CLI and the HTTP API (kept free of module-level
imports, so that the CLI reads them without loading the service's models)."""
from __future__ import annotations

__all__ = ["K_MAX", "NEGATIVE_WEIGHT_MAX", "OFFSET_MAX", "PLAYLIST_MAX", "check_page", "is_number"]

#: the most results one query returns, in the API and the CLI alike
K_MAX = 200

#: the most results one query skips (``offset``), in the API and the CLI alike
OFFSET_MAX = 10_000

#: the longest playlist one request makes or continues, in the API and the CLI alike
PLAYLIST_MAX = 200

#: the largest weight of negative examples in ``Space.recommend`` (they outweigh the history tenfold)
NEGATIVE_WEIGHT_MAX = 10.0


def check_page(k: object, offset: object = 0, *, k_field: str = "k") -> None:
    """Raise :class:`~talkrec.errors.InputError` unless ``k`` is an integer >= 1 and ``offset``
    an integer >= 0 (``bool`` is not a count; numpy integers are). The Python API has no
    upper bound on ``k``; the CLI and HTTP API cap it at :data:`K_MAX`."""
    import numbers

    from .errors import InputError

    for name, v, low in ((k_field, k, 1), ("offset", offset, 0)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise InputError(f"{name} must be an integer >= {low}, got {v!r}", field=name)


def is_number(v: object) -> bool:
    """An int or a float (numpy's too), not a bool (nor text, nor ``None``)."""
    import numpy as np
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
