"""Exceptions raised for bad user input. Each names the file, row and field at fault."""
from __future__ import annotations


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
        self.path, self.row, self.field = path, row, field
        super().__init__(": ".join([*where, message]))


class NotFoundError(TalkrecError, KeyError):
    """An item, user or artifact that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "not found"


class NotFittedError(TalkrecError, RuntimeError):
    """A model or encoder used before ``fit`` (or ``load``) gave it its learned state."""
