"""A space built with two text views (its TEMPLATE description and ``descriptions.second``, a
text column such as MovieLens' TMDB overview) writes items as the build embeds them
(``talkrec.space.textviews``): ``description_<view>`` in a record is embedded as that view, a
metadata update keeps an item's stored views, and a view the space lacks is an error. Before,
``add_items`` embedded the description alone and stored the other view's text as metadata, so
a re-added item moved away from its built vector and a metadata update dropped its overview."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_data import TINY_SPACE_CONFIG, copy_space, make_tiny_catalog

from talkrec.errors import InputError
from talkrec.pipeline import build
from talkrec.space import Space
from talkrec.space.coldscores import content_rows

MOODS = {"metal": "loud distorted guitars and screamed vocals", "jazz": "swinging saxophone improvisation",
         "pop": "catchy radio choruses"}


@pytest.fixture(scope="module")
def two_view_dir(tmp_path_factory):
    cat = make_tiny_catalog()
    cat.texts = {"overview": pd.Series({i: f"{n}: {MOODS[i.rstrip('0123456789')]}, album {k}"
                                        for k, (i, n) in enumerate(zip(cat.items["item_id"], cat.items["name"]))})}
    out = tmp_path_factory.mktemp("views") / "space"
    build({**TINY_SPACE_CONFIG, "output": str(out), "descriptions": {"template": {"header": "artist"},
                                                                     "second": "overview"}},
          show_progress=False, catalog=cat)
    return out


@pytest.fixture()
def space(two_view_dir, tmp_path):
    s = Space.load(copy_space(two_view_dir, tmp_path / "copy"))
    yield s
    s.close()


def _vector(s: Space, item_id: str) -> np.ndarray:
    return np.asarray(s.index.rows([s.index.position(item_id)])[0], dtype=np.float64)


def test_the_space_has_two_text_views(space):
    assert space.config["descriptions"]["views"] == ["template", "overview"]
    p = space.index.position("jazz3")
    assert space.index.input_row(space.config["input_files"]["text"], p).shape[0] == 2
    assert space.index.value(p, "description_overview").startswith("Jazz Band 3: swinging")


def test_an_item_written_again_with_both_views_keeps_its_built_vector(space):
    p = space.index.position("jazz4")                       # no audio (every 4th item): text is its content
    c = content_rows(space, space.index)[p].astype(np.float64)       # its vector without its CF
    before = c / np.linalg.norm(c)
    rec = {"item_id": "new-jazz", "name": "Jazz Band 4", "description": space.index.value(p, "description"),
           "tags": ["jazz", "band"]}
    space.add_items([{**rec, "description_overview": space.index.value(p, "description_overview")},
                     {**rec, "item_id": "new-jazz-no-overview"}])
    both, one = _vector(space, "new-jazz"), _vector(space, "new-jazz-no-overview")
    assert float(both @ before) > 0.999                     # the build's content vector: the same views
    assert float(one @ before) < float(both @ before) - 1e-3
    key = space.config["input_files"]["text"]
    row = space.index.input_row(key, space.index.position("new-jazz"))
    assert row.shape[0] == 2 and np.isfinite(row).all()
    assert np.isnan(space.index.input_row(key, space.index.position("new-jazz-no-overview"))[1]).all()
    assert space.index.value(space.index.position("new-jazz"), "description_overview").startswith("Jazz Band 4")


def test_a_metadata_update_keeps_the_items_other_views(space):
    for iid in ("pop4", "metal8"):                 # pop4: no audio (every 4th item), so text is all its content
        before = _vector(space, iid)
        space.add_items([{"item_id": iid, "name": space.index.value(space.index.position(iid), "name"), "year": 1999}])
        assert float(_vector(space, iid) @ before) > 0.999
        assert np.isfinite(space.index.input_row(space.config["input_files"]["text"],
                                                 space.index.position(iid))).all()


def test_a_new_overview_moves_the_item_and_is_stored(space):
    before = _vector(space, "metal1")
    space.add_items([{"item_id": "metal1", "name": "Metal Band 1", "description_overview": MOODS["jazz"]}])
    p = space.index.position("metal1")
    assert space.index.value(p, "description_overview") == MOODS["jazz"]
    assert float(_vector(space, "metal1") @ before) < 0.9999


def test_a_view_the_space_lacks_or_a_non_string_is_an_error(space):
    with pytest.raises(InputError) as e:
        space.add_items([{"item_id": "x", "name": "X", "description_plot": "a plot"}])
    assert e.value.field == "description_plot" and e.value.row == 1
    assert "no text view 'plot'" in str(e.value) and "description_overview" in str(e.value)
    with pytest.raises(InputError) as e:
        space.add_items([{"item_id": "x", "name": "X"}, {"item_id": "y", "name": "Y", "description_overview": 3}])
    assert e.value.field == "description_overview" and e.value.row == 2
    assert space.index.position("x") is None              # nothing written


def test_a_one_view_space_refuses_description_views(tiny_space_dir, tmp_path):
    s = Space.load(copy_space(tiny_space_dir, tmp_path / "one"))
    try:
        with pytest.raises(InputError, match="its other views: none"):
            s.add_items([{"item_id": "x", "name": "X", "description_overview": "text"}])
    finally:
        s.close()


def test_the_http_api_gives_a_view_in_metadata(two_view_dir, tmp_path):
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    path = copy_space(two_view_dir, tmp_path / "http")
    with TestClient(create_app(path)) as c:
        r = c.post("/api/items", json={"items": [{"item_id": "h1", "name": "H One", "tags": ["jazz"],
                                                  "metadata": {"description_overview": MOODS["jazz"]}}]})
        assert r.status_code == 200, r.text
        r = c.post("/api/items", json={"items": [{"item_id": "h2", "name": "H Two",
                                                  "metadata": {"description_plot": "x"}}]})
        assert r.status_code == 422 and "description_plot" in r.text, r.text
    s = Space.load(path)
    try:
        row = s.index.input_row(s.config["input_files"]["text"], s.index.position("h1"))
        assert np.isfinite(row).all()                          # both views embedded
        assert s.index.value(s.index.position("h1"), "description_overview") == MOODS["jazz"]
    finally:
        s.close()
