"""Novelty in recommend and similar (PEERS: popularity bias, Cornac #402 / recommenders #2283):
``Space.recommend(novelty=...)`` and ``Space.similar(novelty=...)`` mix each candidate's
scaled score in the top ``pool`` with its self-information among the space's users
(``space/popularity.py``), the same option in ``POST /api/recommend``, ``GET
/api/items/{id}/similar``, ``talkrec recommend --novelty`` and ``talkrec similar --novelty``;
checked against the formula written out by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.errors import InputError
from talkrec.space import Space
from talkrec.space.popularity import item_popularity
from tiny_data import TINY_NOVELTY, TINY_SPACE_CONFIG


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    s = Space.load(tiny_space_dir)
    yield s
    s.close()


def test_item_popularity_hand_values():
    df = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u2", "u2", "u3", "u3", "u4"],
                       "item_id": ["a", "a", "b", "a", "b", "a", "c", "c"],
                       "weight": [1.0, 2.0, 1.0, 3.0, 0.0, 1.0, -1.0, 0.0]})
    pop = item_popularity(df)
    # positives (weight > 0): a by u1 (twice: once), u2, u3; b by u1 -> U = 3 users with a history
    assert pop is not None and pop.counts == {"a": 3, "b": 1} and pop.n_users == 3
    # nov = log2((U + 1) / (c + 1)) / log2(U + 1) = log2(4 / (c + 1)) / 2
    assert np.allclose(pop.novelty(["a", "b", "c", "unknown"]), [0.0, 0.5, 1.0, 1.0])
    assert item_popularity(df, threshold=5.0) is None and item_popularity(None) is None


def _novelty_by_hand(space, ids):
    thr = float(space.config.get("positive_threshold", 0.0))
    inter = space.interactions
    pos = {(str(u), str(i)) for u, i, w in zip(inter["user_id"], inter["item_id"], inter["weight"]) if w > thr}
    users = {u for u, _ in pos}
    count = {i: sum(1 for _, j in pos if j == i) for i in ids}
    return [math.log2((len(users) + 1) / (count[i] + 1)) / math.log2(len(users) + 1) for i in ids]


def _by_hand(space, pool, k, novelty, d=0.0):
    """The pool in the order of (1 - n)(s - s_min) / (s_max - s_min) + n nov (first on ties);
    then rel = 1 - j / len(pool) in that order, and take argmax (1 - d) rel - d max_sim (first
    on ties; the first pick the first left)."""
    ids, s = [h.item_id for h in pool], [h.score for h in pool]
    nov = _novelty_by_hand(space, ids)
    mix = [(1 - novelty) * (s[j] - min(s)) / (max(s) - min(s)) + novelty * nov[j] for j in range(len(pool))]
    ids = [ids[j] for j in sorted(range(len(pool)), key=lambda j: (-mix[j], j))]
    rel = [1 - j / len(pool) for j in range(len(pool))]
    V = np.stack([space.index.rows([space.index.position(i)])[0] for i in ids]).astype(np.float64)
    left, taken = list(range(len(pool))), []
    while left and len(taken) < k:
        score = [(1 - d) * rel[j] - d * max(float(V[j] @ V[t]) for t in taken) for j in left] if taken and d > 0 \
            else [-j for j in left]
        j = left[int(np.argmax(score))]
        left.remove(j)
        taken.append(j)
    return [ids[j] for j in taken]


@pytest.mark.parametrize("n, d", [(0.3, 0.0), (0.7, 0.0), (0.4, 0.4)])
def test_novelty_mixes_rank_with_scaled_self_information(space, n, d):
    for src in ({"items": ["metal1", "jazz2"]}, {"user": space.users(1)[0][0]}):
        pool = space.recommend(**src, k=30)
        got = space.recommend(**src, k=8, novelty=n, diversity=d, pool=30)
        assert [h.item_id for h in got] == _by_hand(space, pool, 8, n, d)
        by_id = {h.item_id: h.score for h in pool}
        assert all(h.score == by_id[h.item_id] for h in got)        # scores stay the strategy's
    plain = space.recommend(items=["metal1", "jazz2"], k=8)
    more = space.recommend(items=["metal1", "jazz2"], k=8, novelty=0.7, pool=30)
    mean_nov = [float(np.mean(_novelty_by_hand(space, [h.item_id for h in hs]))) for hs in (plain, more)]
    assert mean_nov[1] > mean_nov[0]                                 # less popular items came up


def test_zero_novelty_is_the_plain_ranking_and_pages_do_not_overlap(space):
    a = space.recommend(items=["pop1"], k=10)
    b = space.recommend(items=["pop1"], k=10, novelty=0.0)
    assert [h.item_id for h in a] == [h.item_id for h in b]
    whole = [h.item_id for h in space.recommend(items=["pop1"], k=12, novelty=0.5, pool=40)]
    pages = [h.item_id for o in (0, 6) for h in space.recommend(items=["pop1"], k=6, offset=o, novelty=0.5, pool=40)]
    assert pages == whole


@pytest.mark.parametrize("kw, field", [({"novelty": 1.0}, "novelty"), ({"novelty": -0.1}, "novelty"),
                                       ({"novelty": "0.2"}, "novelty"), ({"novelty": float("nan")}, "novelty"),
                                       ({"novelty": 0.2, "pool": 9}, "pool")])
def test_bad_novelty_options_name_their_field(space, kw, field):
    with pytest.raises(InputError) as e:
        space.recommend(items=["metal1"], k=10, **kw)
    assert e.value.field == field


def test_the_http_api_and_the_cli_take_novelty(space, tiny_space_dir):
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    want = [h.item_id for h in space.recommend(items=["metal1"], k=5, novelty=0.5, pool=40)]
    with TestClient(create_app(tiny_space_dir)) as c:
        r = c.post("/api/recommend", json={"items": ["metal1"], "k": 5, "novelty": 0.5, "pool": 40})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["items"]] == want, r.text
        r = c.post("/api/recommend/batch", json={"requests": [{"items": ["metal1"], "k": 5, "novelty": 0.5,
                                                               "pool": 40}]})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["results"][0]["items"]] == want, r.text
        r = c.post("/api/recommend", json={"items": ["metal1"], "novelty": 1.0})
        assert r.status_code == 422 and "novelty" in r.text, r.text
        r = c.post("/api/recommend", json={"items": ["metal1"], "k": 20, "novelty": 0.1, "pool": 19})
        assert r.status_code == 422 and "pool (19) must be at least offset + k (20)" in r.text, r.text
    run = CliRunner().invoke
    r = run(app, ["recommend", "--items", "metal1", "--k", "5", "--novelty", "0.5", "--pool", "40", "--json",
                  "--space", str(tiny_space_dir)])
    assert r.exit_code == 0 and [h["item_id"] for h in json.loads(r.stdout)] == want, r.output
    r = run(app, ["recommend", "--items", "metal1", "--novelty", "1.5", "--space", str(tiny_space_dir)])
    assert r.exit_code != 0 and "novelty must be a number in [0, 1), got 1.5" in r.output, r.output


@pytest.mark.parametrize("n", [0.3, 0.7])
def test_similar_takes_novelty_the_same_way(space, n):
    pool = space.similar("metal1", k=30)
    got = space.similar("metal1", k=8, novelty=n, pool=30)
    assert [h.item_id for h in got] == _by_hand(space, pool, 8, n)
    assert [h.item_id for h in got] != [h.item_id for h in pool[:8]] or n < 0.5
    by_id = {h.item_id: h.score for h in pool}
    assert all(h.score == by_id[h.item_id] for h in got)
    assert [h.item_id for h in space.similar("metal1", k=8, novelty=0.0, pool=30)] == [h.item_id for h in pool[:8]]
    with pytest.raises(InputError) as e:
        space.similar("metal1", k=10, novelty=n, pool=9)
    assert e.value.field == "pool"


def test_the_http_api_and_the_cli_take_novelty_in_similar(space, tiny_space_dir):
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    want = [h.item_id for h in space.similar("metal1", k=5, novelty=0.6, pool=40)]
    with TestClient(create_app(tiny_space_dir)) as c:
        r = c.get("/api/items/metal1/similar", params={"k": 5, "novelty": 0.6, "pool": 40})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["items"]] == want, r.text
        r = c.get("/api/items/metal1/similar", params={"novelty": 1})
        assert r.status_code == 422 and "novelty" in r.text, r.text
        r = c.get("/api/items/metal1/similar", params={"k": 20, "novelty": 0.2, "pool": 10})
        assert r.status_code == 422 and "pool" in r.text, r.text
    run = CliRunner().invoke
    r = run(app, ["similar", "metal1", "--k", "5", "--novelty", "0.6", "--pool", "40", "--json",
                  "--space", str(tiny_space_dir)])
    assert r.exit_code == 0 and [h["item_id"] for h in json.loads(r.stdout)] == want, r.output
    r = run(app, ["similar", "metal1", "--pool", "40", "--space", str(tiny_space_dir)])
    assert r.exit_code == 2 and "--pool: applies only with --novelty" in r.output, r.output


# ---------------------------------------------------------------- a space's default novelty
@pytest.fixture(scope="module")
def novel_space(tiny_novelty_space_dir):
    s = Space.load(tiny_novelty_space_dir)
    yield s
    s.close()


def test_a_space_built_with_a_default_novelty_gives_it_to_calls_without_one(novel_space):
    """``recommend.novelty`` / ``similar.novelty`` of the build config: a call without
    ``novelty`` re-ranks with it (the hand formula over the plain pool), one with 0 gets the
    plain ranking, one with another value that value."""
    rec, sim = TINY_NOVELTY
    s = novel_space
    assert s.config["recommend"]["novelty"] == rec and s.config["similar"]["novelty"] == sim
    for src in ({"items": ["metal1", "jazz2"]}, {"user": s.users(1)[0][0]}):
        plain = s.recommend(**src, k=30, novelty=0.0)
        assert [h.item_id for h in s.recommend(**src, k=8, pool=30)] == _by_hand(s, plain, 8, rec)
        assert [h.item_id for h in s.recommend(**src, k=8, novelty=0.7, pool=30)] == _by_hand(s, plain, 8, 0.7)
        assert [h.item_id for h in s.recommend(**src, k=8, novelty=0.0)] == [h.item_id for h in plain[:8]]
    plain = s.similar("metal1", k=30, novelty=0.0)
    assert [h.item_id for h in s.similar("metal1", k=8, pool=30)] == _by_hand(s, plain, 8, sim)
    assert [h.item_id for h in s.similar("metal1", k=8)] != [h.item_id for h in plain[:8]]
    assert [h.item_id for h in s.similar("metal1", k=8, novelty=0.0)] == [h.item_id for h in plain[:8]]


def test_without_a_pool_the_candidates_are_100_or_the_page_when_more(space):
    """``pool`` left out: the top 100 re-ranked, or ``offset + k`` of them when more (a default
    novelty never refuses a deep page); a ``pool`` given below the page is still refused."""
    from talkrec.space.diversity import POOL, rerank
    asked = []

    def ranked(n):
        asked.append(n)
        return space.recommend(items=["metal1"], k=min(n, 30), novelty=0.0)
    for k, offset, want in ((10, 0, POOL), (20, 90, 110), (200, 0, 200)):
        rerank(space, ranked, k, offset, diversity=0.0, max_per_artist=None, artist_field="artist", pool=None,
               novelty=0.3)
        assert asked[-1] == want == max(100, offset + k)
    with pytest.raises(InputError) as e:
        rerank(space, ranked, 20, 90, diversity=0.0, max_per_artist=None, artist_field="artist", pool=100,
               novelty=0.3)
    assert e.value.field == "pool"


def test_the_api_the_page_and_the_cli_take_the_space_default(novel_space, tiny_novelty_space_dir):
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    rec, sim = TINY_NOVELTY
    s = novel_space
    want = {"rec": [h.item_id for h in s.recommend(items=["metal1"], k=5)],
            "rec0": [h.item_id for h in s.recommend(items=["metal1"], k=5, novelty=0.0)],
            "sim": [h.item_id for h in s.similar("metal1", k=5)],
            "sim0": [h.item_id for h in s.similar("metal1", k=5, novelty=0.0)]}
    assert want["sim"] != want["sim0"]
    ids = lambda r: [h["item_id"] for h in r.json()["items"]]          # noqa: E731
    with TestClient(create_app(tiny_novelty_space_dir)) as c:
        assert c.get("/api/version").json()["space"]["novelty"] == {"recommend": rec, "similar": sim}
        assert ids(c.post("/api/recommend", json={"items": ["metal1"], "k": 5})) == want["rec"]
        assert ids(c.post("/api/recommend", json={"items": ["metal1"], "k": 5, "novelty": 0})) == want["rec0"]
        assert ids(c.get("/api/items/metal1/similar", params={"k": 5})) == want["sim"]
        assert ids(c.get("/api/items/metal1/similar", params={"k": 5, "novelty": 0})) == want["sim0"]
        r = c.get("/api/items/metal1/similar", params={"k": 20, "offset": 90})     # pool 110: no refusal
        assert r.status_code == 200, r.text
    run = CliRunner().invoke
    for cmd, key in ((["similar", "metal1"], "sim"), (["recommend", "--items", "metal1"], "rec")):
        for extra, k in (([], key), (["--novelty", "0"], key + "0")):
            r = run(app, [*cmd, "--k", "5", "--json", *extra, "--space", str(tiny_novelty_space_dir)])
            assert r.exit_code == 0 and [h["item_id"] for h in json.loads(r.stdout)] == want[k], r.output
        r = run(app, [*cmd, "--k", "5", "--pool", "40", "--json", "--space", str(tiny_novelty_space_dir)])
        assert r.exit_code == 0, r.output                             # --pool applies: the space's novelty
        r = run(app, [*cmd, "--k", "5", "--pool", "40", "--novelty", "0", "--space", str(tiny_novelty_space_dir)])
        assert r.exit_code == 2 and "--pool: applies only with" in r.output, r.output


def test_a_default_novelty_needs_interactions_and_a_number_in_0_1(tiny_catalog, tmp_path):
    """Refused before any stage runs, naming the setting: a build whose catalog has no
    interactions above ``positive_threshold`` (nothing to count), and a value outside [0, 1)."""
    from dataclasses import replace

    from talkrec.pipeline import build
    cfg = {**TINY_SPACE_CONFIG, "output": str(tmp_path / "s")}
    for part in ("recommend", "similar"):
        for cat, why in ((replace(tiny_catalog, interactions=None), "this catalog has none"),
                         (tiny_catalog, "none above it")):
            with pytest.raises(InputError) as e:
                build({**cfg, part: {"novelty": 0.3}, "positive_threshold": 1e9}, show_progress=False, catalog=cat)
            assert e.value.field == f"{part}.novelty" and why in str(e.value), str(e.value)
        with pytest.raises(InputError) as e:
            build({**cfg, part: {"novelty": 1.0}}, show_progress=False, catalog=tiny_catalog)
        assert e.value.field == f"{part}.novelty" and "[0, 1)" in str(e.value), str(e.value)
    assert not (tmp_path / "s").exists()
