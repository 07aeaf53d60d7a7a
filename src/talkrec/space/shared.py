"""What a :class:`~talkrec.space.core.Space` shares with its pinned views: the models it loads
on first use (:class:`SharedState`), and :func:`consistent`, which runs a read method on one
snapshot."""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..encoders.query import QueryEncoder
    from .core import Space

__all__ = ["SharedState", "consistent"]


class SharedState:
    """What a Space loads lazily, shared with its pinned views (one lock for the loading)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.text_encoder: QueryEncoder | None = None
        self.write_encoder: QueryEncoder | None = None
        self.cf: Any = None
        self.ease: Any = None
        self.als_items: Any = None
        self.session_model: Any = None
        self.histories: dict[str, list[str]] | None = None
        self.popularity: Any = None                  # (Popularity or None,) once counted: popularity.popularity_of


def consistent(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a read method, and all it calls, on the snapshot current when it started
    (:meth:`Space.pinned`), counted in the store's reads in flight while it runs."""
    @functools.wraps(method)
    def run(self: "Space", *args: Any, **kw: Any) -> Any:
        with nullcontext() if self._pin is not None else self.store.reads:
            return method(self if self._pin is not None else self.pinned(), *args, **kw)
    return run
