"""``Space.recommend(strategy=...)`` per call, and the ``best_score`` strategy (Qdrant's, what its
users ask for beside the average vector): each item ranked by its largest cosine to a history
item, so a history of two tastes is served both; with negative examples Qdrant's rule (an item
nearer a negative than every history item scores minus that cosine). The same through
``POST /api/recommend`` (and its batch), ``talkrec recommend --strategy`` and the explanations."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import talkrec.space.strategies as strategies
from talkrec.cli import app
from talkrec.config import merge
from talkrec.errors import InputError, NotFoundError
from talkrec.pipeline import DEFAULTS
from talkrec.pipeline.serving import resolve_profile, serving_config
from talkrec.space import Space
from talkrec.space.strategies import RECOMMEND_STRATEGIES

from contract import cluster_of
from tiny_data import TINY_SPACE_CONFIG, copy_space


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    s = Space.load(tiny_space_dir)
    yield s
    s.close()


def _genres(hits):
    return [cluster_of(h.item_id) for h in hits]


def _by_hand(space, hist, neg=()):
    """Every live item's best_score worked out from the item vectors, one pair at a time."""
    ids = [i for i in space.index.ids.tolist()]
    V = {i: space.item_vector(i) for i in ids}
    out = {}
    for i in ids:
        p = max((float(V[i] @ V[h]) for h in hist), default=-np.inf)
        n = max((float(V[i] @ V[x]) for x in neg), default=-np.inf)
        out[i] = p if p > n else -n
    return out


def test_best_score_is_each_items_largest_cosine_to_the_history(space):
    hist = ["metal1", "jazz1"]
    got = space.recommend(items=hist, k=200, strategy="best_score")
    want = _by_hand(space, hist)
    assert {h.item_id for h in got} == set(want) - set(hist)           # every other item, seen ones out
    assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
    for h in got:
        assert h.score == pytest.approx(want[h.item_id], abs=1e-5)
    # both tastes at the top: each item is as near as its nearest history item makes it
    assert {"metal", "jazz"} <= set(_genres(got[:4]))
    mean = space.recommend(items=hist, k=200, strategy="knn")
    assert [h.item_id for h in mean] != [h.item_id for h in got]      # the mean ranks them otherwise
    page = space.recommend(items=hist, k=5, offset=5, strategy="best_score")
    assert [h.item_id for h in page] == [h.item_id for h in got[5:10]]
    seen = space.recommend(items=hist, k=2, strategy="best_score", exclude_seen=False)
    assert {h.item_id for h in seen} == set(hist)                      # cosine 1 to themselves
    only_jazz = space.recommend(items=hist, k=5, strategy="best_score", where="tag=jazz")
    assert only_jazz and set(_genres(only_jazz)) == {"jazz"}


def test_best_score_with_negative_examples_takes_qdrants_rule(space):
    hist, neg = ["metal1", "jazz1"], ["jazz2"]
    got = space.recommend(items=hist, negative=neg, k=200, strategy="best_score")
    want = _by_hand(space, hist, neg)
    assert "jazz2" not in {h.item_id for h in got}
    for h in got:
        assert h.score == pytest.approx(want[h.item_id], abs=1e-5)
    jazz = [h for h in got if h.item_id.startswith("jazz")]
    assert jazz and max(h.score for h in jazz) < max(h.score for h in got if h.item_id.startswith("metal"))
    alone = space.recommend(items=[], negative=["pop1", "pop2"], k=10, strategy="best_score")
    assert "pop" not in _genres(alone)                                 # negatives alone: least like them first
    with pytest.raises(InputError) as e:                               # the rule has no weight
        space.recommend(items=hist, negative=neg, negative_weight=0.5, strategy="best_score")
    assert e.value.field == "negative_weight"
    with pytest.raises(NotFoundError):
        space.recommend(items=["metal1", "nope"], strategy="best_score")
    with pytest.raises(InputError, match="at least one item"):
        space.recommend(items=[], strategy="best_score")


def test_a_call_names_its_strategy_and_an_unknown_or_impossible_one_is_refused(space, monkeypatch):
    hist = ["metal1", "metal2"]
    for strategy in ("blend", "rrf", "knn"):
        default = dict(space.config["recommend"])
        space.config["recommend"] = {**default, "strategy": strategy}
        try:
            as_space = [h.item_id for h in space.recommend(items=hist, k=8)]
        finally:
            space.config["recommend"] = default
        assert [h.item_id for h in space.recommend(items=hist, k=8, strategy=strategy)] == as_space
    assert space.recommend(user=space.users(1)[0][0], k=3, strategy="best_score")
    default = dict(space.config["recommend"])
    space.config["recommend"] = {**default, "strategy": "best_score"}       # the space's own default
    try:
        assert space.recommend(items=hist, k=8) == space.recommend(items=hist, k=8, strategy="best_score")
    finally:
        space.config["recommend"] = default
    cfg = resolve_profile(merge(DEFAULTS, {**TINY_SPACE_CONFIG, "recommend": {"strategy": "best_score"}}))
    assert serving_config(cfg, {}, has_ease=False)["recommend"]["strategy"] == "best_score"   # kept without CF
    with pytest.raises(InputError, match="strategy must be one of blend, rrf, knn, best_score") as e:
        space.recommend(items=hist, strategy="mean")
    assert e.value.field == "strategy"
    monkeypatch.setattr(strategies, "ease_model", lambda space: None)   # a space built without interactions
    with pytest.raises(InputError, match="has none") as e:
        space.recommend(items=hist, strategy="blend")
    assert e.value.field == "strategy"
    assert space.recommend(items=hist, k=3, strategy="best_score")


def test_best_score_sees_written_and_deleted_items(tiny_space_dir, tmp_path):
    s = Space.load(copy_space(tiny_space_dir, tmp_path / "s"))
    s.add_items([{"item_id": "jazz_twin", "name": "Jazz Twin", "tags": ["jazz"],
                  "description": s.item("jazz1").get("description")}])
    got = s.recommend(items=["jazz1", "metal1"], k=200, strategy="best_score")
    want = _by_hand(s, ["jazz1", "metal1"])
    assert "jazz_twin" in {h.item_id for h in got}
    for h in got:
        assert h.score == pytest.approx(want[h.item_id], abs=1e-5)
    s.remove(["jazz2"])
    assert "jazz2" not in {h.item_id for h in s.recommend(items=["jazz1"], k=200, strategy="best_score")}
    s.close()


def test_best_score_over_http_the_batch_and_the_cli(tiny_space_dir, space, tmp_path):
    from typing import get_args

    from fastapi.testclient import TestClient

    from talkrec.service import schemas as S
    from talkrec.service.app import create_app

    with TestClient(create_app(copy_space(tiny_space_dir, tmp_path / "svc")), raise_server_exceptions=False) as client:
        _over_http(client, space)
    assert get_args(S.RecommendStrategy) == RECOMMEND_STRATEGIES
    out = CliRunner().invoke(app, ["recommend", "--items", "metal1,jazz1", "--strategy", "best_score", "--k", "6",
                                   "--json", "--space", str(tiny_space_dir)])
    assert out.exit_code == 0, out.output
    want = [h.item_id for h in space.recommend(items=["metal1", "jazz1"], k=6, strategy="best_score")]
    assert [h["item_id"] for h in json.loads(out.output)] == want
    out = CliRunner().invoke(app, ["recommend", "--items", "metal1", "--strategy", "mean", "--space",
                                   str(tiny_space_dir)])
    assert out.exit_code != 0 and "strategy must be one of" in out.output
    ex = space.explain_recommend(want[0], items=["metal1", "jazz1"], strategy="best_score")
    assert ex["rank"] == 1 and ex["strategy"] == "cosine"
    assert ex["because"][0]["cosine"] == pytest.approx(space.recommend(items=["metal1", "jazz1"], k=1,
                                                                       strategy="best_score")[0].score, abs=1e-5)


def _over_http(client, space):
    body = {"items": ["metal1", "jazz1"], "k": 6, "strategy": "best_score"}
    r = client.post("/api/recommend", json=body)
    assert r.status_code == 200, r.text
    want = [h.item_id for h in space.recommend(items=["metal1", "jazz1"], k=6, strategy="best_score")]
    assert [h["item_id"] for h in r.json()["items"]] == want and r.json()["score_kind"] == "cosine"
    r = client.post("/api/recommend", json={**body, "strategy": "mean"})
    assert r.status_code == 422 and "strategy" in r.text
    r = client.post("/api/recommend", json={**body, "negative": ["jazz2"], "negative_weight": 0.5})
    assert r.status_code == 422 and "negative_weight" in r.text
    r = client.post("/api/recommend/batch", json={"requests": [body, {**body, "strategy": "blend"}]})
    assert r.status_code == 200, r.text
    assert [x["score_kind"] for x in r.json()["results"]] == ["cosine", "blend"]
    r = client.get("/api/explain/recommend", params={"item": want[0], "items": ["metal1", "jazz1"],
                                                     "strategy": "best_score"})
    assert r.status_code == 200 and r.json()["rank"] == 1, r.text
