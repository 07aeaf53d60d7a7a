"""Filters (:mod:`talkrec.index.filters`) as Milvus boolean expressions.

Milvus holds the filterable metadata as the embedded filter compares it
(:mod:`talkrec.index.milvus_schema`): text and list elements lowercased, numbers as
DOUBLE, missing values as null, and the ``decade`` field's decades canonical (``1980s``) in
a field of their own. Each clause becomes::

    list field   tags=rock       array_contains(tags, "rock")
                 tags!=rock      not array_contains(tags, "rock")
    decade       decade=80s      array_contains(decade_canonical, "1980s")   (any spelling)
    number       year>=1990      year >= 1990.0       (also >, <, <=)
                 year=1990       year == 1990.0
                 year!=1990      (not (year == 1990.0) or year is null)
    text         country=UK      country == "uk"
                 country!=UK     (not (country == "uk") or country is null)
                 name~beat       name like "%beat%"

String values are double-quoted, with backslashes, quotes, newlines and tabs escaped. A
clause Milvus cannot say exactly as the embedded filter means it is left to the caller
(:meth:`~talkrec.index.snapshot.Snapshot.search` fetches more and filters locally):
``~`` on a list or a number, comparisons on text, ``=`` / ``!=`` of a number on a text
field or of a non-number on a numeric one (the embedded filter compares both ways), values
that spell a missing value (``none``, ``nan``), LIKE wildcards and escapes (``%``, ``_``,
``\\``) or control characters in a value, fields Milvus does not hold (descriptions,
fields only cold-start items have).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .filters import Where, canonical_decade, finite_float, parse_where, resolve_field

__all__ = ["DECADE_FIELD", "clause_expr", "literal", "milvus_expr"]

#: the field with each item's canonical decades (``["1980s"]``), for the decade rule
DECADE_FIELD = "decade_canonical"
#: how ``str(v).lower()`` spells a missing value in the embedded filter's text comparisons
_MISSING = ("none", "nan", "<na>", "nat")
#: the longest string value (UTF-8 bytes) a VARCHAR field / an array element holds
TEXT_BYTES, ELEMENT_BYTES = 65535, 1024
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str | None:
    """``text`` as a quoted Milvus string literal (``None``: a control character that
    Milvus strings cannot hold)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            return None
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _number(x: float) -> str:
    return repr(float(x))


def _text(value: Any, limit: int) -> str | None:
    """The lowercased string value of a clause, when Milvus can compare it exactly."""
    v = str(value).lower()
    return v if len(v.encode("utf-8")) <= limit else None


def ids_expr(ids: Sequence[str], key: str) -> str | None:
    """``key in [...]``: a filter by primary key, which Milvus answers from its key index
    (an ``array_contains`` over a list field is a scan: Milvus Lite cannot index ARRAY
    fields); ``None`` when an id cannot be written as a Milvus string."""
    quoted = [literal(str(i)) for i in ids]
    return None if any(q is None for q in quoted) else f"{key} in [" + ", ".join(quoted) + "]"  # type: ignore[arg-type]


def milvus_expr(where: Where, columns: Sequence[str], fields: Mapping[str, str]) -> tuple[str, bool]:
    """The Milvus expression for ``where`` over a space with metadata ``columns`` whose
    collection has ``fields`` (``{field: kind}``: ``list``, ``number``, ``text``,
    ``decade``), and whether it says the whole filter (``False``: some clauses are left
    out and must be applied locally). Unknown fields raise :class:`InputError` as the
    embedded filter does."""
    parts, complete = [], True
    for c in parse_where(where):
        e = clause_expr(resolve_field(c.field, columns), c.op, c.value, fields)
        if e is None:
            complete = False
        else:
            parts.append(e)
    if len(parts) == 1:
        return parts[0], complete
    return " and ".join(f"({p})" for p in parts), complete


def clause_expr(col: str, op: str, value: Any, fields: Mapping[str, str]) -> str | None:
    """One clause (column ``col`` resolved) as a Milvus expression, or ``None``."""
    kind = fields.get(col)
    if kind is None:
        return None
    if col == "decade" and op in ("=", "!=") and DECADE_FIELD in fields:
        d = canonical_decade(str(value))
        if d is not None:
            e = f"array_contains({DECADE_FIELD}, {literal(d)})"
            return e if op == "=" else f"not {e}"
    if kind == "list":
        return _list_expr(col, op, value)
    if kind == "number":
        return _number_expr(col, op, value)
    if kind == "text":
        return _text_expr(col, op, value)
    return None


def _list_expr(col: str, op: str, value: Any) -> str | None:
    v = _text(value, ELEMENT_BYTES)
    lit = None if v is None else literal(v)
    if op not in ("=", "!=") or lit is None:
        return None          # "~" (a substring of any element) is not expressible; other ops are errors, raised locally
    e = f"array_contains({col}, {lit})"
    return e if op == "=" else f"not {e}"


def _number_expr(col: str, op: str, value: Any) -> str | None:
    x = finite_float(value)
    if x is None or op == "~":
        return None
    if op in (">", ">=", "<", "<="):
        return f"{col} {op} {_number(x)}"
    eq = f"{col} == {_number(x)}"
    return eq if op == "=" else f"not ({eq}) or {col} is null"


def _text_expr(col: str, op: str, value: Any) -> str | None:
    v = _text(value, TEXT_BYTES)
    if v is None or op not in ("=", "!=", "~"):
        return None          # comparisons (numbers read from text) stay local
    if any(v in m for m in _MISSING) if op == "~" else v in _MISSING:
        return None          # the embedded filter sees a missing value as the text "none" / "nan"
    if op == "~":
        pattern = None if any(c in v for c in "%_\\") else literal("%" + v + "%")
        return None if pattern is None else f"{col} like {pattern}"
    if _reads_as_number(v):
        return None          # "=" also compares as numbers ("1990" = "1990.0")
    lit = literal(v)
    if lit is None:
        return None
    eq = f"{col} == {lit}"
    return eq if op == "=" else f"not ({eq}) or {col} is null"


def _reads_as_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
