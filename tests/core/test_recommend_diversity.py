"""Diverse recommendations (what Qdrant and Weaviate users asked for: MMR and a cap per
artist inside recommend): ``Space.recommend(diversity=, max_per_artist=, artist_field=,
pool=)``, the same options in ``POST /api/recommend`` and ``talkrec recommend``. The
re-ranking is the playlist continuation's (``space/diversity.py``), checked here against the
formula written out by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.errors import InputError
from talkrec.space import Space


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    return Space.load(tiny_space_dir)


def _mmr_by_hand(space, pool, k, d, max_per=None):
    """MMR as the docstring states it: rel = 1 - j / len(pool); take argmax (1-d) rel - d max_sim
    (first on ties), the highest cosine to the items taken; skip a capped field value."""
    V = np.stack([space.index.rows([space.index.position(h.item_id)])[0] for h in pool]).astype(np.float64)
    rel = [1 - j / len(pool) for j in range(len(pool))]
    left, taken, counts = list(range(len(pool))), [], {}
    while left and len(taken) < k:
        if taken and d > 0:
            score = [(1 - d) * rel[j] - d * max(float(V[j] @ V[t]) for t in taken) for j in left]
            j = left[int(np.argmax(score))]
        else:
            j = left[0]
        left.remove(j)
        if max_per is not None:
            v = tuple(pool[j].metadata.get(max_per[0]) or ())
            if counts.get(v, 0) >= max_per[1]:
                continue
            counts[v] = counts.get(v, 0) + 1
        taken.append(j)
    return [pool[j].item_id for j in taken]


@pytest.mark.parametrize("d", [0.3, 0.7])
def test_diverse_list_is_mmr_over_the_top_pool(space, d):
    for src in ({"items": ["metal1", "jazz2"]}, {"user": space.users(1)[0][0]}):
        pool = space.recommend(**src, k=30)
        got = space.recommend(**src, k=8, diversity=d, pool=30)
        assert [h.item_id for h in got] == _mmr_by_hand(space, pool, 8, d)
        by_id = {h.item_id: h.score for h in pool}
        assert all(h.score == by_id[h.item_id] for h in got)         # scores stay the strategy's
        if d >= 0.7:                                                  # strong enough to change the list
            assert [h.item_id for h in got] != [h.item_id for h in space.recommend(**src, k=8)]


def test_zero_diversity_is_the_plain_ranking(space):
    a = space.recommend(items=["pop1"], k=10)
    b = space.recommend(items=["pop1"], k=10, diversity=0.0, max_per_artist=100, artist_field="genre", pool=10)
    assert [h.item_id for h in a] == [h.item_id for h in b]


def test_max_per_artist_caps_each_value_of_the_field(space):
    pool = space.recommend(items=["pop1"], k=60)
    got = space.recommend(items=["pop1"], k=6, max_per_artist=1, artist_field="genre", pool=60)
    genres = [tuple(h.metadata["genre"]) for h in got]
    assert len(genres) == len(set(genres)) and [h.item_id for h in got] == _mmr_by_hand(space, pool, 6, 0.0, ("genre", 1))
    # a space without the field is a catalog of artists: each item its own, nothing capped
    same = space.recommend(items=["pop1"], k=6, max_per_artist=1, pool=60)
    assert [h.item_id for h in same] == [h.item_id for h in pool[:6]]


def test_pages_of_a_diverse_list_do_not_overlap(space):
    whole = [h.item_id for h in space.recommend(items=["metal1"], k=12, diversity=0.5, pool=40)]
    pages = [h.item_id for o in (0, 4, 8) for h in space.recommend(items=["metal1"], k=4, offset=o, diversity=0.5,
                                                                   pool=40)]
    assert pages == whole


@pytest.mark.parametrize("kw, field", [({"diversity": 1.0}, "diversity"), ({"diversity": -0.1}, "diversity"),
                                       ({"max_per_artist": 0}, "max_per_artist"),
                                       ({"diversity": 0.2, "pool": 9}, "pool"),
                                       ({"diversity": 0.2, "pool": 12, "offset": 5}, "pool")])
def test_bad_diversity_options_name_their_field(space, kw, field):
    with pytest.raises(InputError) as e:
        space.recommend(items=["metal1"], k=10, **kw)
    assert e.value.field == field


def test_the_http_api_and_the_cli_take_the_same_options(space, tiny_space_dir):
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    want = [h.item_id for h in space.recommend(items=["metal1"], k=5, diversity=0.4, max_per_artist=2,
                                              artist_field="genre", pool=50)]
    with TestClient(create_app(tiny_space_dir)) as c:
        r = c.post("/api/recommend", json={"items": ["metal1"], "k": 5, "diversity": 0.4, "max_per_artist": 2,
                                           "artist_field": "genre", "pool": 50})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["items"]] == want, r.text
        r = c.post("/api/recommend", json={"items": ["metal1"], "k": 20, "offset": 5, "diversity": 0.4, "pool": 24})
        assert r.status_code == 422 and "pool (24) must be at least offset + k (25)" in r.text, r.text
    r = CliRunner().invoke(app, ["recommend", "--items", "metal1", "--k", "5", "--diversity", "0.4", "--max-per-artist",
                                 "2", "--artist-field", "genre", "--pool", "50", "--json", "--space", str(tiny_space_dir)])
    assert r.exit_code == 0 and [h["item_id"] for h in json.loads(r.stdout)] == want, r.output
    r = CliRunner().invoke(app, ["recommend", "--items", "metal1", "--pool", "50", "--space", str(tiny_space_dir)])
    assert r.exit_code == 2 and "--pool: applies only with --diversity, --novelty (or the space's recommend.novelty) or " \
        "--max-per-artist" in r.output, \
        r.output
