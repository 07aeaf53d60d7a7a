"""Metadata filters for kNN: ``"tag=metal,year>=1990"`` or ``{"tag": "metal", "year": {">=": 1990}}``.

Clauses are AND-ed. Operators: ``=`` (for list-valued fields such as ``tags`` or
``genres``: the list contains the value; several ``=`` on one list field require all),
``!=``, ``>``, ``>=``, ``<``, ``<=`` (finite numbers only), ``~`` (case-insensitive
substring; for lists: any element). String comparisons ignore case; ``decade=`` compares
decades in any spelling (``90s`` = ``1990s`` = ``90's``, never the 1890s). ``tag`` is an
alias of ``tags``, ``genre`` of ``genres`` when the catalog has no singular column. A field
name that is not a plain word (``release year``, ``sub-genre``) is quoted in the string form:
``'"release year">=1990'`` or ``'`sub-genre`=shoegaze'``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, did_you_mean

_OPS = (">=", "<=", "!=", ">", "<", "=", "~")
# FIELD OP VALUE; a field that is not a plain name (a space, a hyphen: a catalog's own column
# names) is written in double quotes or backticks: "release year">=1990, `sub-genre`=shoegaze
_CLAUSE = re.compile(r"""^\s*(?:([A-Za-z_][\w.]*)|"([^"]+)"|`([^`]+)`)\s*(>=|<=|!=|>|<|=|~|:)\s*(.+?)\s*$""")
ALIASES = {"tag": "tags", "genre": "genres"}

Where = str | Mapping[str, Any] | None
#: masks kept per filter engine: at most 256, and at most 64 MB of them (one byte per item)
_MASKS_KEPT, _MASK_BYTES_KEPT = 256, 64 << 20


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: Any


# a clause ends at a comma or AND outside quotes and brackets: a field name in double quotes or
# backticks ("Year, of release"), a value in double quotes or brackets ("Crosby, Stills", [1, 2]).
# A quote opens only where a name or a value starts, so one inside a value is a character (12"
# single, 7" vinyl), as is an apostrophe anywhere ("guns n' roses")
_AND = re.compile(r"\s+AND\s+")
_CLOSES = {"name": {'"': '"', "`": "`"}, "value": {'"': '"', "[": "]"}}
_OP_START = re.compile(r">=|<=|!=|>|<|=|~|:")


def _clauses(where: str) -> list[str]:
    """``where`` split at its top-level commas and ``AND``s (the rule above)."""
    out, start, i = [], 0, 0
    state = "name"            # before the operator: name, field; after it: value, rest (quotes open at name, value)
    while i < len(where):
        ch, m = where[i], _AND.match(where, i)
        if ch == "," or m:
            out.append(where[start:i])
            i = start = m.end() if m else i + 1
            state = "name"
        elif state in _CLOSES and ch.isspace():
            i += 1
        elif state in _CLOSES and ch in _CLOSES[state] and (j := where.find(_CLOSES[state][ch], i + 1)) > i:
            i, state = j + 1, "field" if state == "name" else "rest"
        elif state in ("name", "field") and (op := _OP_START.match(where, i)):
            i, state = op.end(), "value"
        else:
            i, state = i + 1, {"name": "field", "value": "rest"}.get(state, state)
    return out + [where[start:]]


def _unquoted(v: str) -> str:
    """A value without the double or single quotes around the whole of it."""
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'" else v


def parse_where(where: Where) -> list[Clause]:
    """Parse a filter string or dict into clauses; raises :class:`InputError` on bad syntax."""
    if where is None or where == "" or where == {}:
        return []
    out: list[Clause] = []
    if isinstance(where, str):
        for part in [p for p in _clauses(where) if p.strip()]:
            m = _CLAUSE.match(part)
            if not m:
                raise InputError(f"cannot parse filter clause {part!r}; expected FIELD OP VALUE with OP one of "
                                 f"{' '.join(_OPS)} (e.g. 'tag=metal' or 'year>=1990'; a field name with spaces "
                                 "in double quotes or backticks: '\"release year\">=1990')", field="where")
            plain, dq, bq, op, v = m.groups()
            f = plain or dq or bq
            if v[:1] in "<>=!~":
                raise InputError(f"cannot parse filter clause {part!r}: the value starts with an operator",
                                 field="where")
            out.append(Clause(f, "=" if op == ":" else op, _unquoted(v)))
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


def resolve_field(field: str, columns: Sequence[str] | pd.Index) -> str:
    """The metadata column a filter clause's ``field`` names (``tag`` -> ``tags``, ``genre``
    -> ``genres`` when there is no such column); :class:`InputError` for an unknown one."""
    if field in columns:
        return field
    alias = ALIASES.get(field)
    if alias and alias in columns:
        return alias
    names = sorted(str(c) for c in columns if not str(c).startswith("_"))
    hint = did_you_mean(field, [*names, *ALIASES])
    raise InputError(f"unknown filter field {field!r}{hint}{' ' if hint else '; '}filterable fields: {names}",
                     field="where")


def is_null(v: Any) -> bool:
    """A value a row does not have: ``None``, NaN or NA (a blank text cell of a file is
    :func:`talkrec.data.tables.is_missing`)."""
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _is_list_col(s: pd.Series) -> bool:
    """Whether ``s`` holds lists: any of its first 50 values that are not missing is one
    (:func:`field_kind`; a list field may be empty in its first rows)."""
    return s.dtype == object and field_kind(s) == "list"


class FilterEngine:
    """Evaluates clauses over an item metadata table to a boolean mask (cached per column)."""

    def __init__(self, meta: pd.DataFrame) -> None:
        self.meta = meta
        self._lists: dict[str, list[set[str]]] = {}
        self._masks: dict[tuple[str, str, str, str], np.ndarray] = {}
        self._is_list: dict[str, bool] = {}           # per column (one pass over it per engine)

    def _resolve(self, field: str) -> str:
        return resolve_field(field, self.meta.columns)

    def _list_sets(self, col: str) -> list[set[str]]:
        if col not in self._lists:
            self._lists[col] = [{str(x).lower() for x in v} if isinstance(v, (list, tuple, np.ndarray)) else set()
                                for v in self.meta[col].tolist()]
        return self._lists[col]

    def _decade_mask(self, col: str, want: str) -> np.ndarray:
        """Items whose ``decade`` (a list or one value, any spelling) is the decade ``want``."""
        key = f"{col}\0canonical"
        if key not in self._lists:
            self._lists[key] = [{canonical_decade(str(x)) for x in v} if isinstance(v, (list, tuple, np.ndarray))
                                else {canonical_decade(str(v))} for v in self.meta[col].tolist()]
        sets = self._lists[key]
        return np.fromiter((want in x for x in sets), bool, len(sets))

    def mask(self, where: Where) -> np.ndarray | None:
        clauses = parse_where(where)
        if not clauses:
            return None
        m = np.ones(len(self.meta), dtype=bool)
        for c in clauses:
            m &= self._cached_mask(c)
        return m

    def _cached_mask(self, c: Clause) -> np.ndarray:
        """One clause's mask, kept for the next query with the same clause (the table never
        changes under an engine; see ``_MASKS_KEPT``)."""
        key = (c.field, c.op, type(c.value).__name__, str(c.value))
        cm = self._masks.get(key)
        if cm is None:
            cm = self._clause_mask(c)
            cm.flags.writeable = False
            if len(self._masks) >= max(1, min(_MASKS_KEPT, _MASK_BYTES_KEPT // max(len(cm), 1))):
                self._masks.pop(next(iter(self._masks)), None)
            self._masks[key] = cm
        return cm

    def _clause_mask(self, c: Clause) -> np.ndarray:
        col = self._resolve(c.field)
        s = self.meta[col]
        decade = canonical_decade(str(c.value)) if col == "decade" and c.op in ("=", "!=") else None
        if decade is not None:
            cm = self._decade_mask(col, decade)
            return cm if c.op == "=" else ~cm
        if col not in self._is_list:
            self._is_list[col] = _is_list_col(s)
        if self._is_list[col]:
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
            x = _finite_number(col, c.op, c.value)
            num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                cm = {">": num > x, ">=": num >= x, "<": num < x, "<=": num <= x}[c.op]
            cm = np.nan_to_num(cm, nan=0).astype(bool)
        else:
            sv = s.astype(str).str.lower().to_numpy()
            v = str(c.value).lower()
            if c.op == "~":
                cm = np.array([isinstance(x, str) and v in x for x in sv], dtype=bool)   # NaN: missing
            else:
                num = pd.to_numeric(s, errors="coerce")
                try:
                    xv = float(c.value)
                    eq = (num.to_numpy(dtype=float) == xv) | (sv == v)
                except (TypeError, ValueError):
                    eq = sv == v
                cm = eq if c.op == "=" else ~eq
        return np.asarray(cm, dtype=bool)


# --------------------------------------------------------------------------- filter forms
#: columns that are not offered as filter fields (ids, texts, bookkeeping)
HIDDEN_FIELDS = ("item_id", "name", "description", "norm_name", "cold_start")


def field_kind(s: pd.Series) -> str:
    """``"list"`` (list-valued, e.g. tags), ``"numeric"`` (numbers, not booleans) or ``"text"``."""
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in s.dropna().head(50).tolist()):
        return "list"
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return "numeric"
    return "text"


def filter_fields(meta: pd.DataFrame) -> dict[str, str]:
    """The metadata fields offered for filtering, ``{name: field_kind}`` in column order."""
    return {str(c): field_kind(meta[c]) for c in meta.columns
            if c not in HIDDEN_FIELDS and not str(c).startswith(("description_", "_"))}


def parse_range(text: str) -> tuple[str, float | None, float | None]:
    """``"FIELD:MIN:MAX"`` (a bound may be empty: ``"listeners:1000:"``) -> ``(field, min, max)``."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0].strip():
        raise InputError(f"range must be FIELD:MIN:MAX, got {text!r}", field="range")
    try:
        lo = float(parts[1]) if parts[1].strip() else None
        hi = float(parts[2]) if parts[2].strip() else None
    except ValueError:
        raise InputError(f"range bounds must be numbers, got {text!r}", field="range") from None
    if (lo is not None and not np.isfinite(lo)) or (hi is not None and not np.isfinite(hi)):
        raise InputError(f"range bounds must be finite, got {text!r}", field="range")
    return parts[0].strip(), lo, hi


@dataclass(frozen=True)
class FilterSpec:
    """Filters as the service and the CLI take them, AND-ed: items carrying all ``tags``, a
    ``decade`` (``"80s"``, ``"1980s"``: :func:`decade_start`), numeric ``ranges``
    ``{field: (min, max)}`` (either bound may be ``None``) and a free ``where`` expression.
    :meth:`to_where` turns them into the ``where`` mapping of the Python API."""

    tags: Sequence[str] = ()
    decade: str | None = None
    ranges: Mapping[str, tuple[float | None, float | None]] = dc_field(default_factory=dict)
    where: str | None = None

    def to_where(self, meta: pd.DataFrame) -> dict[str, Any] | None:
        """The ``where`` mapping over the item metadata ``meta`` (``None``: no filter).

        A decade matches the items whose ``decade`` field, in any spelling (80s, 1980s,
        80's), names that decade, when there is such a field, else a ``year`` range;
        ``tags`` need a ``tags`` field."""
        out = _Where()
        cols = set(meta.columns)
        for t in self.tags:
            if not t.strip():
                raise InputError("empty tag in filters", field="tags")
            if "tags" not in cols:
                raise InputError("this space has no tags to filter on", field="tags")
            out.add("tags", "=", t.strip())
        if self.decade and self.decade.strip():
            _add_decade(out, self.decade.strip(), cols)
        for name, (lo, hi) in self.ranges.items():
            if lo is None and hi is None:
                continue
            if lo is not None and hi is not None and lo > hi:
                raise InputError(f"range on {name!r}: min {lo} > max {hi}", field="ranges")
            kinds = filter_fields(meta)
            if kinds.get(name) != "numeric":          # a text field's range matched nothing, without a word
                numeric = [f for f, kind in kinds.items() if kind == "numeric"]
                what = "unknown range field" if name not in cols else f"a range needs a numeric field, not the {kinds.get(name, 'text')} field"
                raise InputError(f"{what} {name!r}; numeric fields: {numeric}", field="ranges")
            if lo is not None:
                out.add(name, ">=", lo)
            if hi is not None:
                out.add(name, "<=", hi)
        if self.where and self.where.strip():
            for c in parse_where(self.where):
                out.add(c.field, c.op, c.value)
        return dict(out) or None


class _Where(dict):  # type: ignore[type-arg]
    """The ``where`` mapping being built: ``{field: [values]}`` for ``=``, ``{field: {op: value}}``."""

    def add(self, field: str, op: str, value: Any) -> None:
        cur = self.setdefault(field, {} if op != "=" else [])
        if op == "=":
            if isinstance(cur, dict):
                if "=" in cur:
                    raise InputError(f"conflicting filters on {field!r}", field="filters")
                cur["="] = value
            else:
                cur.append(value)
            return
        if isinstance(cur, list):
            if len(cur) > 1:
                raise InputError(f"conflicting filters on {field!r}", field="filters")
            self[field] = cur = ({"=": cur[0]} if cur else {})
        if op in cur:
            raise InputError(f"two '{op}' filters on {field!r}; combine them into one range", field="filters")
        cur[op] = value


def finite_float(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else ``None``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _finite_number(col: str, op: str, value: Any) -> float:
    """The number a comparison needs: finite (NaN and infinities are refused, as in ranges)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{col} {op} needs a number, got {value!r}", field="where") from None
    if not np.isfinite(x):
        raise InputError(f"{col} {op} needs a finite number, got {value!r}", field="where")
    return x


_DECADE = re.compile(r"(1[89]|20)?(\d)0'?s?")
_YEAR = re.compile(r"(1[89]|20)(\d)\d")


def decade_start(d: str) -> int | None:
    """The first year of a decade written ``80s``, ``80's``, ``1980s``, ``1980's`` or ``1980``;
    ``None`` for anything else. Two digits are 2000-2020 for ``00s``-``20s``, else the 1900s
    (``10s`` = 2010s, ``30s`` = 1930s); four digits are that decade (``1890s``, ``2000s``),
    never a century: a century is a year range (``year>=1800,year<1900``)."""
    m = _DECADE.fullmatch(d.strip().lower())
    if not m:
        return None
    century = m.group(1) or ("20" if m.group(2) in "012" else "19")
    return int(century + m.group(2) + "0")


def canonical_decade(x: str) -> str | None:
    """``'80s'``, ``"80's"``, ``'1980s'``, ``'1980'`` or a year (``'1985'``) -> ``'1980s'``;
    anything else -> ``None``."""
    start = decade_start(x)
    if start is None:
        m = _YEAR.fullmatch(x.strip())
        start = int(m.group(1) + m.group(2) + "0") if m else None
    return None if start is None else f"{start}s"


def _add_decade(out: _Where, d: str, cols: set[str]) -> None:
    full = decade_start(d)
    if full is None:
        raise InputError(f"decade must look like '80s' or '1980s' (a decade from the 1800s to the 2090s), got {d!r}",
                         field="decade")
    if "decade" in cols:
        out.add("decade", "=", f"{full}s")
    elif "year" in cols:
        out.add("year", ">=", full)
        out.add("year", "<=", full + 9)
    else:
        raise InputError("this space has no decade or year field", field="decade")
