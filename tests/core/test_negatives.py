"""Negative examples in recommend (what Qdrant and Weaviate users ask for: recommend by
positive and negative ids, negatives alone): ``Space.recommend(negative=, negative_weight=)``,
the same options in ``POST /api/recommend`` and ``talkrec recommend``. Every term of the
ranking weighs the negatives against the history (Rocchio): the fused query is
``normalize(p - gamma n)``, EASE's scores ``x+ B / |+| - gamma x- B / |-|``, ALS's the mean
factors' difference; the negatives are never recommended."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.errors import InputError
from talkrec.pipeline import build
from talkrec.space import Space

from tiny_data import TINY_SPACE_CONFIG, make_tiny_catalog

STRATEGIES = [{"strategy": "blend"}, {"strategy": "rrf"}, {"strategy": "knn"}]


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    s = Space.load(tiny_space_dir)
    yield s
    s.close()


def _genres(hits):
    return [h.item_id.rstrip("0123456789") for h in hits]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda x: x["strategy"])
def test_negatives_steer_away_and_are_never_recommended(space, strategy):
    default = dict(space.config["recommend"])
    space.config["recommend"] = {**default, **strategy}
    try:
        mixed = space.recommend(items=["metal1", "metal2", "jazz1", "jazz2"], k=12)
        assert {"metal", "jazz"} <= set(_genres(mixed))                    # both clusters without negatives
        neg = ["jazz3", "jazz4", "jazz5"]
        away = space.recommend(items=["metal1", "metal2", "jazz1", "jazz2"], negative=neg, negative_weight=1.0, k=12)
        assert _genres(away).count("jazz") < _genres(mixed).count("jazz")
        assert _genres(away)[:6] == ["metal"] * 6
        kept = space.recommend(items=["metal1"], negative=neg, negative_weight=0.0, exclude_seen=False, k=60)
        assert not set(neg) & {h.item_id for h in kept}                    # left out even with exclude_seen off
        alone = space.recommend(items=[], negative=["pop1", "pop2", "pop3"], negative_weight=1.0, k=15)
        assert "pop" not in _genres(alone)                                 # negatives alone: the least like them
    finally:
        space.config["recommend"] = default


def test_weight_zero_only_leaves_the_negatives_out(space):
    """As seen items are: the fused space's list is the plain one without them; the blend's
    z-scores are taken over the candidates left, so its order may move a little."""
    default = dict(space.config["recommend"])
    try:
        for strategy, exact in (("knn", True), ("blend", False)):
            space.config["recommend"] = {**default, "strategy": strategy}
            plain = [h.item_id for h in space.recommend(items=["pop1", "jazz1"], k=30)]
            neg = plain[:3]
            got = [h.item_id for h in space.recommend(items=["pop1", "jazz1"], negative=neg, negative_weight=0.0, k=27)]
            want = [i for i in plain if i not in neg][:27]
            assert got == want if exact else len(set(got) & set(want)) >= 24 and not set(got) & set(neg)
    finally:
        space.config["recommend"] = default


def test_the_blend_terms_are_rocchio_by_hand(space):
    """The fused term's query: normalize(p - gamma n), p and n the normalized means."""
    from talkrec.space.vectors import mean_vector, signed_vector
    p, n = mean_vector(space.index, ["metal1", "metal2"]), mean_vector(space.index, ["metal3"])
    q = signed_vector(space.index, ["metal1", "metal2"], ["metal3"], 0.5)
    want = (p - 0.5 * n) / np.linalg.norm(p - 0.5 * n)
    assert np.allclose(q, want, atol=1e-6)
    assert np.allclose(signed_vector(space.index, ["metal1", "metal2"], [], 0.5), p)
    assert np.allclose(signed_vector(space.index, [], ["metal3"], 2.0), -n, atol=1e-6)


def test_without_negatives_nothing_changes(space):
    a = space.recommend(items=["metal1", "pop2"], k=20)
    b = space.recommend(items=["metal1", "pop2"], negative=None, negative_weight=3.0, k=20)
    assert [(h.item_id, h.score) for h in a] == [(h.item_id, h.score) for h in b]


@pytest.mark.parametrize("kwargs, field, text", [
    ({"items": [], "negative": ["pop1"], "negative_weight": 0.0}, "negative_weight", "above 0"),
    ({"items": ["pop1"], "negative": ["pop1"], "negative_weight": 1.0}, "negative", "cancel out"),
    ({"items": ["pop1"], "negative": ["pop2"], "negative_weight": -1}, "negative_weight", "[0, 10]"),
    ({"items": ["pop1"], "negative": ["pop2"], "negative_weight": 11}, "negative_weight", "[0, 10]"),
    ({"items": ["pop1"], "negative": ["pop2"], "negative_weight": True}, "negative_weight", "[0, 10]"),
    ({"items": ["pop1"], "negative": ["pop2"], "negative_weight": float("nan")}, "negative_weight", "[0, 10]"),
    ({"items": ["pop1"], "negative": "pop2"}, "negative", "not one string"),
    ({"items": [], "negative": []}, "items", "at least one item"),
])
def test_bad_negatives_are_named(space, kwargs, field, text):
    with pytest.raises(InputError) as e:
        space.recommend(k=5, **kwargs)
    assert e.value.field == field and text in str(e.value), str(e.value)


def test_an_unknown_negative_is_named(space):
    from talkrec.errors import NotFoundError
    with pytest.raises(NotFoundError, match="nope"):
        space.recommend(items=["pop1"], negative=["nope"])


def test_the_space_default_weight_comes_from_the_build_config(tmp_path):
    out = tmp_path / "s"
    build({**TINY_SPACE_CONFIG, "output": str(out), "recommend": {"negative_weight": 2.0}},
          show_progress=False, catalog=make_tiny_catalog())
    s = Space.load(out)
    try:
        a = [h.item_id for h in s.recommend(items=["metal1", "jazz1"], negative=["jazz2"], k=10)]
        b = [h.item_id for h in s.recommend(items=["metal1", "jazz1"], negative=["jazz2"], negative_weight=2.0, k=10)]
        assert a == b
    finally:
        s.close()
    with pytest.raises(InputError, match="negative_weight"):
        build({**TINY_SPACE_CONFIG, "output": str(tmp_path / "bad"), "recommend": {"negative_weight": -1}},
              show_progress=False, catalog=make_tiny_catalog())


def test_the_http_api_and_the_cli_take_the_same_options(space, tiny_space_dir):
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    want = [h.item_id for h in space.recommend(items=["metal1", "jazz1"], negative=["jazz2", "jazz3"],
                                              negative_weight=1.5, k=6)]
    alone = [h.item_id for h in space.recommend(items=[], negative=["pop1"], negative_weight=1.0, k=6)]
    with TestClient(create_app(tiny_space_dir)) as c:
        r = c.post("/api/recommend", json={"items": ["metal1", "jazz1"], "negative": ["jazz2", "jazz3"],
                                           "negative_weight": 1.5, "k": 6})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["items"]] == want, r.text
        r = c.post("/api/recommend", json={"items": [], "negative": ["pop1"], "negative_weight": 1.0, "k": 6})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["items"]] == alone, r.text
        r = c.post("/api/recommend/batch", json={"requests": [{"items": ["metal1", "jazz1"], "k": 6,
                                                               "negative": ["jazz2", "jazz3"], "negative_weight": 1.5}]})
        assert r.status_code == 200 and [h["item_id"] for h in r.json()["results"][0]["items"]] == want, r.text
        for body, text in (({"items": []}, "at least one item"),
                           ({"items": ["pop1"], "negative_weight": 1.0}, "applies only with negative"),
                           ({"items": ["pop1"], "negative": ["pop2"], "negative_weight": 11}, "less than or equal"),
                           ({"items": [], "negative": ["pop1"], "negative_weight": 0}, "above 0"),
                           ({"items": ["pop1"], "negative": ["nope"]}, "nope")):
            r = c.post("/api/recommend", json=body)
            assert r.status_code in (404, 422) and text in r.text, (body, r.text)
    cli = ["--space", str(tiny_space_dir), "--k", "6", "--json"]
    r = CliRunner().invoke(app, ["recommend", "--items", "metal1,jazz1", "--negative", "jazz2,jazz3",
                                 "--negative-weight", "1.5", *cli])
    assert r.exit_code == 0 and [h["item_id"] for h in json.loads(r.stdout)] == want, r.output
    r = CliRunner().invoke(app, ["recommend", "--items", "", "--negative", "pop1", "--negative-weight", "1", *cli])
    assert r.exit_code == 0 and [h["item_id"] for h in json.loads(r.stdout)] == alone, r.output
    r = CliRunner().invoke(app, ["recommend", "--items", "metal1", "--negative-weight", "1", *cli])
    assert r.exit_code == 2 and "--negative-weight: applies only with --negative" in r.output, r.output
