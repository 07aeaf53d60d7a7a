"""Space's Python API named what was wrong where it raised raw Python errors (found by the
library QA pass): a space path that is no path, a non-str item reference or name, items that
are no list, a vector that is no numbers, a non-str text query; a damaged ALS factors file
read by ``recommend``; and a Space now says what it is in its repr."""
from __future__ import annotations

import pytest
from tiny_data import copy_space

from talkrec.errors import InputError
from talkrec.estimator import UnreadableModelFile
from talkrec.space import Space


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    return Space.load(tiny_space_dir)


@pytest.mark.parametrize("bad", [None, 5, ["spaces/x"]])
def test_load_names_a_path_that_is_no_path(bad):
    with pytest.raises(InputError, match="a space is a folder path"):
        Space.load(bad)


@pytest.mark.parametrize("call, field", [
    (lambda s: s.resolve(None), "item"), (lambda s: s.resolve(5), "item"), (lambda s: s.find(None), "name"),
    (lambda s: s.recommend(items=5), "items"), (lambda s: s.continue_playlist(None), "items"),
    (lambda s: s.personalized_search("jazz", items=5), "items"),
    (lambda s: s.search_by_vector("audio", "abc"), "vector"),
    (lambda s: s.search(5, mode="multi"), "query"), (lambda s: s.text_query_vector(5), "query"),
    (lambda s: s.generate_playlist(5), "query"),
])
def test_wrong_types_are_input_errors_naming_the_field(space, call, field):
    with pytest.raises(InputError) as e:
        call(space)
    assert e.value.field == field, str(e.value)


def test_a_non_str_query_says_so_rather_than_empty(space):
    with pytest.raises(InputError, match="query must be a str, got int 5"):
        space.search(5, mode="multi")


def test_repr_says_where_how_many_and_which_modalities(space, tiny_space_dir):
    r = repr(space)
    assert r.startswith("Space(") and str(tiny_space_dir) in r and f"{len(space.index)} items" in r
    assert all(m in r for m in space.modalities)


def test_a_damaged_als_factors_file_is_named_by_recommend(tiny_space_dir, tmp_path):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    f = d / "cf" / "factors.npz"
    if not f.exists():
        pytest.fail("the tiny space has no cf/factors.npz: this test needs one")
    f.write_bytes(f.read_bytes()[:100])
    s = Space.load(d)
    cfg = s.config.get("recommend", {})
    if cfg.get("strategy") != "blend":
        s.config["recommend"] = {**cfg, "strategy": "blend"}
    with pytest.raises(UnreadableModelFile) as e:
        s.recommend(items=["metal1"], k=3)
    assert e.value.path == str(f)
    s.close()
