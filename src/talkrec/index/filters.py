"""Metadata filters for kNN: ``"tag=metal,year>=1990"`` or ``{"tag": "metal", "year": {">=": 1990}}``.

Clauses are AND-ed. Operators: ``=`` (for list-valued fields such as ``tags`` or
``genres``: the list contains the value; several ``=`` on one list field require all),
``!=``, ``>``, ``>=``, ``<``, ``<=`` (numbers), ``~`` (case-insensitive substring; for lists:
any element). String comparisons ignore case. ``tag`` is an alias of ``tags``, ``genre``
of ``genres`` when the catalog has no singular column.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

_OPS = (">=", "<=", "!=", ">", "<", "=", "~")
_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|>|<|=|~|:)\s*(.+?)\s*$")
ALIASES = {"tag": "tags", "genre": "genres"}

Where = str | Mapping[str, Any] | None


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: Any


def parse_where(where: Where) -> list[Clause]:
    """Parse a filter string or dict into clauses; raises :class:`InputError` on bad syntax."""
    if where is None or where == "" or where == {}:
        return []
    out: list[Clause] = []
    if isinstance(where, str):
        for part in [p for p in re.split(r",(?![^\[]*\])|\s+AND\s+", where) if p.strip()]:
            m = _CLAUSE.match(part)
            if not m:
                raise InputError(f"cannot parse filter clause {part!r}; expected FIELD OP VALUE with OP one of "
                                 f"{' '.join(_OPS)} (e.g. 'tag=metal' or 'year>=1990')", field="where")
            f, op, v = m.groups()
            if v[:1] in "<>=!~":
                raise InputError(f"cannot parse filter clause {part!r}: the value starts with an operator",
                                 field="where")
            out.append(Clause(f, "=" if op == ":" else op, v.strip().strip("'\"")))
        return out
    if isinstance(where, Mapping):
        for f, v in where.items():
            if isinstance(v, Mapping):
                for op, x in v.items():
                    op = {"gte": ">=", "lte": "<=", "gt": ">", "lt": "<", "eq": "=", "ne": "!=", "contains": "~"}.get(op, op)
                    if op not in _OPS:
                        raise InputError(f"unknown operator {op!r} for field {f!r}; expected one of {_OPS}", field="where")
                    out.append(Clause(str(f), op, x))
            elif isinstance(v, (list, tuple)):
                out.extend(Clause(str(f), "=", x) for x in v)
            else:
                out.append(Clause(str(f), "=", v))
        return out
    raise InputError(f"filter must be a string or an object, got {type(where).__name__}", field="where")


def _is_list_col(s: pd.Series) -> bool:
    for v in s.head(50):
        if isinstance(v, (list, tuple, np.ndarray)):
            return True
    return False


class FilterEngine:
    """Evaluates clauses over an item metadata table to a boolean mask (cached per column)."""

    def __init__(self, meta: pd.DataFrame) -> None:
        self.meta = meta
        self._lists: dict[str, list[set[str]]] = {}

    def _resolve(self, field: str) -> str:
        if field in self.meta.columns:
            return field
        alias = ALIASES.get(field)
        if alias and alias in self.meta.columns:
            return alias
        raise InputError(f"unknown filter field {field!r}; filterable fields: "
                         f"{sorted(c for c in self.meta.columns if not c.startswith('_'))}", field="where")

    def _list_sets(self, col: str) -> list[set[str]]:
        if col not in self._lists:
            self._lists[col] = [{str(x).lower() for x in v} if isinstance(v, (list, tuple, np.ndarray)) else set()
                                for v in self.meta[col].tolist()]
        return self._lists[col]

    def mask(self, where: Where) -> np.ndarray | None:
        clauses = parse_where(where)
        if not clauses:
            return None
        m = np.ones(len(self.meta), dtype=bool)
        for c in clauses:
            col = self._resolve(c.field)
            s = self.meta[col]
            if _is_list_col(s):
                sets = self._list_sets(col)
                v = str(c.value).lower()
                if c.op == "=":
                    cm = np.fromiter((v in x for x in sets), bool, len(sets))
                elif c.op == "!=":
                    cm = np.fromiter((v not in x for x in sets), bool, len(sets))
                elif c.op == "~":
                    cm = np.fromiter((any(v in t for t in x) for x in sets), bool, len(sets))
                else:
                    raise InputError(f"operator {c.op!r} does not apply to list field {col!r}; use = != or ~",
                                     field="where")
            elif c.op in (">", ">=", "<", "<="):
                try:
                    x = float(c.value)
                except (TypeError, ValueError):
                    raise InputError(f"{col} {c.op} needs a number, got {c.value!r}", field="where") from None
                num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
                with np.errstate(invalid="ignore"):
                    cm = {">": num > x, ">=": num >= x, "<": num < x, "<=": num <= x}[c.op]
                cm = np.nan_to_num(cm, nan=0).astype(bool)
            else:
                sv = s.astype(str).str.lower().to_numpy()
                v = str(c.value).lower()
                if c.op == "~":
                    cm = np.array([v in x for x in sv], dtype=bool)
                else:
                    num = pd.to_numeric(s, errors="coerce")
                    try:
                        xv = float(c.value)
                        eq = (num.to_numpy(dtype=float) == xv) | (sv == v)
                    except (TypeError, ValueError):
                        eq = sv == v
                    cm = eq if c.op == "=" else ~eq
            m &= cm
        return m
