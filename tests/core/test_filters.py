"""The filter translation CLI and HTTP share (index/filters.py): decades in every spelling
and only the decade asked for, finite numbers only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.index.filters import FilterEngine, FilterSpec, canonical_decade, parse_range

META = pd.DataFrame({
    "item_id": [f"i{j}" for j in range(8)],
    "decade": [["1890s"], ["1990s"], ["90s"], ["80s", "rock"], ["1980's"], ["2000s"], ["10s"], []],
    "year": [1895, 1994, 1991, 1985, 1983, 2004, 2013, 1960],
    "listeners": [1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, np.nan],
})


def _matching(spec: FilterSpec, meta: pd.DataFrame = META) -> list[str]:
    m = FilterEngine(meta).mask(spec.to_where(meta))
    return meta["item_id"][m].tolist()


@pytest.mark.parametrize("decade,want", [
    ("80s", ["i3", "i4"]), ("1980s", ["i3", "i4"]), ("80's", ["i3", "i4"]),
    ("1890s", ["i0"]), ("90s", ["i1", "i2"]), ("1990s", ["i1", "i2"]),
    ("2000s", ["i5"]), ("00s", ["i5"]), ("10s", ["i6"]), ("2010s", ["i6"]),
])
def test_decade_matches_that_decade_only(decade, want):
    assert _matching(FilterSpec(decade=decade)) == want


@pytest.mark.parametrize("decade,want", [("1890s", ["i0"]), ("90s", ["i1", "i2"]), ("10s", ["i6"])])
def test_decade_on_a_year_field(decade, want):
    assert _matching(FilterSpec(decade=decade), META.drop(columns=["decade"])) == want


def test_decade_in_a_where_expression_is_canonical_too():
    assert _matching(FilterSpec(where="decade=1990s")) == ["i1", "i2"]
    assert _matching(FilterSpec(where="decade=1890s")) == ["i0"]


@pytest.mark.parametrize("bad", ["nineties", "19th century", "1700s", "s", "1990ss"])
def test_bad_decades_are_refused(bad):
    with pytest.raises(InputError, match="decade"):
        FilterSpec(decade=bad).to_where(META)


def test_canonical_decade():
    for raw, want in [("80s", "1980s"), ("80's", "1980s"), ("1980s", "1980s"), ("1985", "1980s"),
                      ("1890s", "1890s"), ("00s", "2000s"), ("2000s", "2000s"), ("10s", "2010s"), ("60s", "1960s")]:
        assert canonical_decade(raw) == want, raw
    assert canonical_decade("seen live") is None and canonical_decade("1337 h4x") is None


@pytest.mark.parametrize("where", ["listeners>=nan", "listeners<inf", "listeners>-inf", "year<=NaN"])
def test_comparisons_need_finite_numbers(where):
    with pytest.raises(InputError, match="finite"):
        FilterEngine(META).mask(where)
    with pytest.raises(InputError, match="finite"):
        FilterEngine(META).mask({where.split("<")[0].split(">")[0]: {">=": float("nan")}})


def test_ranges_need_finite_numbers_as_before():
    with pytest.raises(InputError, match="finite"):
        parse_range("listeners:nan:")


def test_a_clause_mask_is_kept_and_never_handed_out_to_be_changed():
    meta = pd.DataFrame({"item_id": list("abcd"), "tags": [["rock"], ["jazz", "rock"], [], ["Rock"]],
                         "year": [1985, 1999, 2001, 1989]})
    eng = FilterEngine(meta)
    first = eng.mask("tag=rock")
    assert first.tolist() == [True, True, False, True]
    first[:] = False                                           # the caller's copy, not the kept mask
    assert eng.mask("tag=rock").tolist() == [True, True, False, True]
    assert eng.mask({"tag": "rock", "year": {"<": 1990}}).tolist() == [True, False, False, True]
    assert eng.mask("year=1999").tolist() == [False, True, False, False]
    assert eng.mask({"year": 1999}).tolist() == [False, True, False, False]   # int and str values alike
    with pytest.raises(InputError):
        eng.mask("colour=red")                                 # errors are not kept
    with pytest.raises(InputError):
        eng.mask("colour=red")


def test_a_range_on_a_field_that_is_not_numeric_is_refused():
    """``--range country:1:3`` on a text field matched nothing, without a word (QA, 2026-12-03)."""
    meta = META.assign(country=["se"] * 8, tags=[["a"]] * 8)
    for name, kind in (("country", "text"), ("tags", "list")):
        with pytest.raises(InputError, match=f"a range needs a numeric field, not the {kind} field '{name}'"):
            FilterSpec(ranges={name: (1.0, 3.0)}).to_where(meta)
    with pytest.raises(InputError, match="unknown range field 'nope'; numeric fields: .*listeners"):
        FilterSpec(ranges={"nope": (1.0, None)}).to_where(meta)
    assert _matching(FilterSpec(ranges={"listeners": (10.0, 30.0)}), meta) == ["i2", "i3", "i4"]


def test_a_field_name_with_spaces_or_hyphens_is_quoted():
    from talkrec.index.filters import Clause, parse_where
    assert parse_where('"release year">=1990, `sub-genre`=shoe gaze,tag:rock') == [
        Clause("release year", ">=", "1990"), Clause("sub-genre", "=", "shoe gaze"), Clause("tag", "=", "rock")]
    meta = META.assign(**{"release year": META["year"]})
    assert FilterEngine(meta).mask('"release year"<1990').tolist() == FilterEngine(META).mask("year<1990").tolist()
    with pytest.raises(InputError, match="double quotes or backticks"):
        parse_where("release year>=1990")
    # a comma or AND inside double quotes, backticks or brackets does not end the clause; an
    # apostrophe is no quote
    assert parse_where('"Year, of release">=1990 AND name="Crosby, Stills" AND `a,b`~x') == [
        Clause("Year, of release", ">=", "1990"), Clause("name", "=", "Crosby, Stills"), Clause("a,b", "~", "x")]
    assert parse_where("name=guns n' roses,tag=rock 'n' roll") == [
        Clause("name", "=", "guns n' roses"), Clause("tag", "=", "rock 'n' roll")]


def test_a_quote_inside_a_value_is_a_character():
    """A double quote opens a quoted span only where a field name or a value starts: inside a
    value (12" single) it is a character, so two of them in two clauses do not swallow the comma
    between them (they did: one clause, value '12",b=7'), and a value is unquoted only when the
    quotes are around the whole of it."""
    from talkrec.index.filters import Clause, parse_where
    assert parse_where('format=12",size=7"') == [Clause("format", "=", '12"'), Clause("size", "=", '7"')]
    assert parse_where('title=12" single, tag=rock AND note=7" mix') == [
        Clause("title", "=", '12" single'), Clause("tag", "=", "rock"), Clause("note", "=", '7" mix')]
    assert parse_where('name = "Crosby, Stills" , x=[1, 2],y="3') == [
        Clause("name", "=", "Crosby, Stills"), Clause("x", "=", "[1, 2]"), Clause("y", "=", '"3')]
    meta = pd.DataFrame({"item_id": ["a", "b"], "format": ['12"', '7"']})
    assert FilterEngine(meta).mask('format=12",format!=7"').tolist() == [True, False]
