"""Writes that used to be acknowledged and then broke reads or compaction, and fields derived
from an item's tags and year (QA defects 1, 2, 3, 5, 6), on the tiny three-cluster space."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from talkrec import Space
from talkrec.errors import InputError
from talkrec.index.filters import FilterEngine, FilterSpec, field_kind
from tiny_data import copy_space


@pytest.fixture()
def space(tiny_space_dir, tmp_path):
    return Space.load(copy_space(tiny_space_dir, tmp_path / "space"))


def _add(space: Space, iid: str, **fields) -> None:
    space.add_items([{"item_id": iid, "name": iid.title(), **fields}])


@pytest.mark.parametrize("fields, field, message", [
    ({"year": 2 ** 64}, "year", "integer out of the 64-bit range"),
    ({"year": -(2 ** 63) - 1}, "year", "integer out of the 64-bit range"),
    ({"bignum": 99999999999999999999999}, "bignum", "integer out of the 64-bit range"),
    ({"year": float("nan")}, "year", "finite number"),
    ({"score": float("inf")}, "score", "finite number"),
    ({"obj": {"a": 1}}, "obj", "text, a number, true/false or a list of strings"),
    ({"labels": ["a", 3]}, "labels", "text, a number, true/false or a list of strings"),
])
def test_a_metadata_value_compaction_cannot_store_is_refused(space, fields, field, message):
    n = len(space.index)
    with pytest.raises(InputError, match=f"row 1: field 'metadata.{field}': .*{message}"):
        _add(space, "huge", tags=["rock"], metadata=fields)
    with pytest.raises(InputError, match=f"row 1: field '{field}': .*{message}"):
        _add(space, "huge", tags=["rock"], **fields)
    assert len(space.index) == n
    _add(space, "fine", metadata={"year": 2 ** 63 - 1, "bignum": -(2 ** 63), "score": 0.5, "labels": ["a"]})
    assert space.compact()["compacted"] and space.item("fine")["year"] == 2 ** 63 - 1


def test_a_bool_column_keeps_its_type_after_other_writes(space):
    _add(space, "b0", metadata={"has_audio": True})
    space.compact()
    _add(space, "a1", tags=["rock"])                        # its row has no has_audio: missing, not a type
    for bad in ("maybe", 12):
        with pytest.raises(InputError, match="has_audio is true/false"):
            _add(space, "ha1", metadata={"has_audio": bad})
    with pytest.raises(InputError, match="genre is a list field"):
        _add(space, "ha2", metadata={"genre": "jazz"})
    _add(space, "ha3", metadata={"has_audio": False})
    assert space.compact()["compacted"]


def test_a_list_field_written_after_many_rows_is_a_list_field(space):
    space.add_items([{"item_id": f"pad{i}", "name": f"Pad {i}", "tags": ["rock"]} for i in range(60)])
    _add(space, "late1", tags=["rock"], metadata={"labels": ["warp", "ninja tune"]})
    q = space.index.vector("late1")
    assert [i for i, _ in space.index.search(q, k=3, where="labels=warp")] == ["late1"]
    with pytest.raises(InputError, match="labels is a list field"):
        _add(space, "l2", metadata={"labels": "warp"})
    with pytest.raises(InputError, match="labels is a list field"):
        _add(space, "l3", metadata={"labels": 3})
    assert space.compact()["compacted"]
    assert [i for i, _ in space.index.search(q, k=3, where="labels=warp")] == ["late1"]


def test_a_list_column_empty_in_its_first_rows_is_filtered_as_a_list():
    meta = pd.DataFrame({"labels": [None] * 60 + [["Sony", "EMI"], ["emi"]], "n": np.arange(62)})
    engine = FilterEngine(meta)
    assert np.flatnonzero(engine.mask("labels=sony")).tolist() == [60]
    assert np.flatnonzero(engine.mask("labels=emi")).tolist() == [60, 61]
    assert field_kind(meta["labels"]) == "list"


def test_retagging_replaces_every_tag_derived_field(space):
    _add(space, "q1", tags=["shoegaze", "dream pop", "90s", "bristol"])
    assert space.item("q1")["decade"] == ["90s"] and space.item("q1")["place"] == ["bristol"]
    _add(space, "q1", tags=[])
    row = space.item("q1")
    assert row["tags"] == [] and row["genre"] == [] and row["decade"] == [] and row["place"] == []
    _add(space, "metal1", tags=["trip-hop", "bristol"])
    row = space.item("metal1")
    assert row["genre"] == ["trip-hop"] and row["place"] == ["bristol"]
    assert row["decade"] == ["1980s"]                          # none from tags: its year's (1981)
    _add(space, "metal1", metadata={"year": 1999})           # tags not given: the derived fields stay
    assert space.item("metal1")["genre"] == ["trip-hop"]


def test_new_items_get_the_decade_of_their_year_and_empty_lists(space):
    _add(space, "d0", tags=["80s"])                           # the space now has a decade field
    _add(space, "y1", tags=["rock"], year=1986)
    _add(space, "y2", metadata={"year": 1995})
    _add(space, "y3", tags=["90s"], year=1994)
    assert space.item("y1")["decade"] == ["1980s"] and space.item("y2")["decade"] == ["1990s"]
    assert space.item("y3")["decade"] == ["90s"]              # the tag names the decade already
    assert space.item("y2")["genre"] == []                    # as a built item without genre tags
    where = space.filter_where(FilterSpec(decade="80s"))
    found = {i for i, _ in space.index.search(space.index.vector("y1"), k=80, where=where)}
    assert {"d0", "y1"} <= found and "y2" not in found


def test_an_update_of_the_year_alone_moves_the_items_decade(space):
    """The decade field follows the year as a build makes it; an update that gave a year but no
    tags kept the old decade, so ``decade=`` filters found the item in its old decade."""
    _add(space, "d0", tags=["80s"])                           # the space now has a decade field
    _add(space, "y1", tags=["rock"], year=1986)
    _add(space, "y2", tags=["rock", "90s"], year=1994)
    assert space.item("y1")["decade"] == ["1980s"]
    _add(space, "y1", metadata={"year": 1995})
    assert space.item("y1")["decade"] == ["1990s"] and space.item("y1")["tags"] == ["rock"]
    _add(space, "y2", metadata={"year": 2003})                # a decade tag stays, the year's joins it
    assert space.item("y2")["decade"] == ["90s", "2000s"]
    _add(space, "y1", metadata={"plays": 7})                  # no year given: the decade stays
    assert space.item("y1")["decade"] == ["1990s"]
    where = space.filter_where(FilterSpec(decade="90s"))
    found = {i for i, _ in space.index.search(space.index.vector("y1"), k=80, where=where)}
    assert {"y1", "y2"} <= found


def test_an_update_with_a_description_but_no_tags_keeps_the_tags(space):
    """What a record does not give keeps its value (docs/service.md): a new description without
    ``tags`` wiped the item's tags and every field made from them (genre, tag filters)."""
    before = space.item("metal3")
    assert before["tags"] == ["metal", "band"] and before["genre"] == ["metal"]
    space.add_items([{"item_id": "metal3", "name": "Metal Band 3", "description": "loud guitars from a garage"}])
    row = space.item("metal3")
    assert row["description"] == "loud guitars from a garage"
    assert row["tags"] == ["metal", "band"] and row["genre"] == ["metal"]
    where = space.filter_where(FilterSpec(tags=["metal"]))
    assert "metal3" in {i for i, _ in space.index.search(space.index.vector("metal3"), k=80, where=where)}
    space.add_items([{"item_id": "metal3", "name": "Metal Band 3", "description": "quiet", "tags": []}])  # [] clears
    assert space.item("metal3")["tags"] == [] and space.item("metal3")["genre"] == []
