"""Names and histories as a user means them: an item named with a letter that pandas lowers
differently from Python (``İ``) is found by its exact name (it was "unknown item"), and a
weight of 0 or below (a dislike) is no history: it was taken as a liked item by ``recommend``
and counted by ``users`` whenever ``positive_threshold`` was 0, the default."""
from __future__ import annotations

import pandas as pd
import pytest

from talkrec import Space
from talkrec.errors import InputError
from talkrec.space import browse
from tiny_data import copy_space


def test_a_name_with_a_dotted_capital_i_resolves_and_is_found(tiny_space_dir, tmp_path):
    s = Space.load(copy_space(tiny_space_dir, tmp_path / "space"))
    try:
        s.add_items([{"item_id": "t1", "name": "PİNHANİ", "tags": ["pop"]}])
        assert s.resolve("PİNHANİ") == "t1" and s.resolve("pİnhanİ") == "t1"
        s.compact()                                       # the generation's names, not the written rows'
        assert s.resolve("PİNHANİ") == "t1"
        assert [i for i, _ in s.find("PİN")] == ["t1"]
    finally:
        s.close()
    meta = pd.DataFrame({"item_id": ["a", "b"], "name": ["İstanbul", "Ankara"]})
    assert browse.find_by_name(meta, "İst", 5) == [("a", "İstanbul")]
    assert browse.name_index(meta)["İstanbul".lower()] == "a"


def test_weights_at_or_below_zero_are_no_history():
    inter = pd.DataFrame({"user_id": ["u", "u", "u", "v", "w"], "item_id": ["a", "b", "c", "a", "b"],
                          "weight": [3.0, 0.0, -2.0, -1.0, 1.0]})
    assert browse.histories(inter) == {"u": ["a"], "w": ["b"]}
    assert browse.top_users(inter) == [("u", 1), ("w", 1)]
    assert browse.histories(inter, 2.0) == {"u": ["a"]}


def test_a_user_with_only_dislikes_gets_no_recommendations_like_them(tiny_space_dir, tmp_path):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    inter = pd.read_parquet(d / "interactions.parquet")
    user = str(inter["user_id"].iloc[0])
    inter.loc[inter["user_id"].astype(str) == user, "weight"] = -1.0
    inter.to_parquet(d / "interactions.parquet")
    s = Space.load(d)
    try:
        assert user not in dict(s.users(1000))
        with pytest.raises((InputError, LookupError)):
            s.recommend(user=user, k=5)
    finally:
        s.close()


def test_a_name_without_its_accents_resolves_and_a_mistyped_one_is_answered_with_the_nearest(tiny_space_dir,
                                                                                             tmp_path):
    """``Bjork`` is Björk when one item name is ``bjork`` without case and accents; where two
    different names are (``Café``, ``Cafe``: ``cafè``), none is taken and both are suggested; a
    mistyped name's error names the nearest names; the CLI's lists resolve the same way, and
    the name search (the page's picker) finds ``bjork`` in Björk (it found Brant Bjork only)."""
    from typer.testing import CliRunner

    from talkrec.cli import app
    from talkrec.errors import NotFoundError
    d = copy_space(tiny_space_dir, tmp_path / "space")
    s = Space.load(d)
    try:
        s.add_items([{"item_id": "b1", "name": "Björk", "tags": ["pop"]},
                     {"item_id": "s1", "name": "Sigur Rós", "tags": ["pop"]},
                     {"item_id": "c1", "name": "Café", "tags": ["jazz"]}, {"item_id": "c2", "name": "Cafe", "tags": ["jazz"]}])
        assert s.resolve("Bjork") == "b1" and s.resolve("SIGUR ROS") == "s1" and s.resolve("bjÖrk") == "b1"
        assert s.resolve("Cafe") == "c2" and s.resolve("café") == "c1"           # exact names first
        with pytest.raises(NotFoundError) as e:
            s.resolve("cafè")
        assert "did you mean 'Café' or 'Cafe'?" in str(e.value) or "did you mean 'Cafe' or 'Café'?" in str(e.value)
        with pytest.raises(NotFoundError) as e:
            s.resolve("Jaz Band 3")
        assert "(neither an id nor an exact name); did you mean 'Jazz Band 3', " in str(e.value), str(e.value)
        with pytest.raises(NotFoundError) as e:
            s.resolve("zzqqxxvv")
        assert str(e.value).endswith("(neither an id nor an exact name)"), str(e.value)
        assert [i for i, _ in s.find("bjork")] == ["b1"] and [i for i, _ in s.find("ros", 5)] == ["s1"]
        s.compact()                                                    # the generation's names too
        assert s.resolve("bjork") == "b1" and [i for i, _ in s.find("BJORK")] == ["b1"]
    finally:
        s.close()
    r = CliRunner().invoke(app, ["recommend", "--items", "bjork,Sigur Ros", "--k", "3", "--json", "--space", str(d)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["similar", "Metal Bnd 1", "--space", str(d)])
    assert r.exit_code == 2 and "did you mean 'Metal Band 1'" in r.output, r.output
