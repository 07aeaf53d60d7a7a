"""Exceptions raised for bad user input. Each names the file, row and field at fault; a
misspelt name also gets the nearest known one (:func:`did_you_mean`)."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class TalkrecError(Exception):
    """Base class for errors talkrec reports to users."""


class InputError(TalkrecError, ValueError):
    """Bad input data: names the source file, the (1-based data) row and the field."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 field: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        self.path, self.row, self.field, self.message = path, row, field, message
        super().__init__(": ".join([*where, message]))

    def at(self, path: str | None) -> "InputError":
        """This error naming ``path`` as its source, where it names none (a setting checked
        after its config file was read)."""
        if self.path is not None or path is None:
            return self
        return InputError(self.message, path=path, row=self.row, field=self.field)


class NotFoundError(TalkrecError, KeyError):
    """An item, user or artifact that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "not found"


class NotFittedError(TalkrecError, RuntimeError):
    """A model or encoder used before ``fit`` (or ``load``) gave it its learned state."""


def shown(value: Any) -> str:
    """``repr`` of a value read from a user's file or passed by a user, as they wrote it: a
    numpy scalar (what pandas' ``iloc`` gives) as its Python value (``999``, ``'zz'``), not
    ``np.int64(999)``."""
    return repr(value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value)


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to ``name``: the same letters in another case first, then
    :func:`difflib.get_close_matches`; ``None`` when none is near."""
    names = sorted(map(str, known))
    same = [k for k in names if k.lower() == str(name).lower()]
    near = same or difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    return near[0] if near else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for :func:`nearest`, or ``""`` when none is near."""
    near = nearest(name, known)
    return f"; did you mean '{near}'?" if near else ""
