"""The Python API of a built space, on the tiny three-cluster catalog (known answers)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from talkrec import Space
from talkrec.errors import InputError, NotFoundError


@pytest.fixture()
def space(tiny_space_dir, tmp_path):
    d = tmp_path / "space"
    shutil.copytree(tiny_space_dir, d)
    return Space.load(d)


def _cluster(i: str) -> str:
    return i.rstrip("0123456789")


def test_similar_and_recommend_stay_in_cluster(space):
    hits = space.similar("jazz3", k=5)
    assert len(hits) == 5 and "jazz3" not in [h.item_id for h in hits]
    assert sum(_cluster(h.item_id) == "jazz" for h in hits) >= 4
    rec = space.recommend(items=["metal1", "metal2"], k=5)
    assert {"metal1", "metal2"}.isdisjoint(h.item_id for h in rec)
    assert sum(_cluster(h.item_id) == "metal" for h in rec) >= 4
    user = space.interactions["user_id"].iloc[0]
    seen = set(space.user_history(user))
    assert seen.isdisjoint(h.item_id for h in space.recommend(user=user, k=10))


def test_search_modes_and_filters(space):
    for mode in ("multi", "text", "hybrid", "lexical"):
        hits = space.search("jazz", k=5, mode=mode)
        assert sum(_cluster(h.item_id) == "jazz" for h in hits) >= 4, mode
    hits = space.search("music", k=10, where="year>=2000")
    assert hits and all(h.metadata["year"] >= 2000 for h in hits)
    with pytest.raises(InputError):
        space.search("   ")
    with pytest.raises(InputError):
        space.search("jazz", mode="bogus")
    assert [h.item_id for h in space.search("jazz", k=3, offset=2)] == [h.item_id for h in space.search("jazz", k=5)][2:5]


def test_personalized_search_moves_towards_user(space):
    plain = space.search("band", k=10, mode="multi")
    pers = space.personalized_search("band", items=["pop1", "pop2", "pop3"], alpha=0.8, k=10)
    assert sum(_cluster(h.item_id) == "pop" for h in pers) > sum(_cluster(h.item_id) == "pop" for h in plain)


def test_query_by_vector_and_errors(space):
    hits = space.search_by_vector("audio", np.array([0, 1.0, 0, 0]), k=5)
    assert sum(_cluster(h.item_id) == "jazz" for h in hits) >= 4
    with pytest.raises(InputError, match="dimension 4"):
        space.search_by_vector("audio", np.ones(7))
    with pytest.raises(InputError, match="unknown modality"):
        space.search_by_vector("smell", np.ones(4))
    with pytest.raises(NotFoundError):
        space.similar("nope")


def test_cold_start_items_are_served_and_persist(space):
    out = space.add_items([{"item_id": "new-jazz", "name": "Fresh Trio", "tags": ["jazz"]},
                           {"item_id": "new-audio", "name": "Unknown", "vectors": {"audio": [0, 0, 1.0, 0]}}])
    assert out[0]["modalities"] == ["text"] and out[1]["modalities"] == ["text", "audio"]
    assert "new-jazz" in [h.item_id for h in space.search("jazz", k=25, mode="multi")]
    near = space.similar("new-audio", k=5)
    assert sum(_cluster(h.item_id) == "pop" for h in near) >= 3
    again = Space.load(space.path)
    assert again.item("new-jazz")["name"] == "Fresh Trio"
    with pytest.raises(InputError, match="row 1.*item_id"):
        space.add_items([{"name": "x"}])
    with pytest.raises(InputError, match=r"vectors.audio.*4 finite"):
        space.add_items([{"item_id": "z", "name": "z", "vectors": {"audio": [1, 2]}}])


def test_playlists_and_explain(space):
    pl = space.continue_playlist(["metal1", "metal2", "metal3"], k=5)
    assert len({h.item_id for h in pl}) == 5 and {"metal1", "metal2", "metal3"}.isdisjoint(h.item_id for h in pl)
    hits, stats = space.generate_playlist("jazz", n=8)
    assert len(hits) == 8 and len({h.item_id for h in hits}) == 8
    assert stats["coherence"] >= stats["coherence_plain_topn"] - 1e-6
    ex = space.explain("metal1", "metal2")
    assert "metal" in ex["shared_tags"]
    assert ex["cosine"] == pytest.approx(sum(ex["modality_contributions"].values()), abs=1e-4)


def test_mixed_queries(space):
    q = space.mixed_query_vector(text="band", vectors={"audio": np.array([1.0, 0, 0, 0])}, weights={"text": 0.2})
    hits = space.index.search(q, 5)
    assert sum(_cluster(i) == "metal" for i, _ in hits) >= 4
    user = "ujazz0"
    for src in ("items", "cf"):
        v = space.user_vector(user, source=src)
        near = space.index.search(v, 5)
        assert sum(_cluster(i) == "jazz" for i, _ in near) >= 4, src
    with pytest.raises(InputError, match="weights for parts not given"):
        space.mixed_query_vector(text="x", weights={"user": 1.0})
    with pytest.raises(NotFoundError):
        space.user_vector("nobody")


def test_session_model_backs_continuation(space, tmp_path):
    from talkrec.sessions.models import NextItemSessionModel

    # Sessions that always walk metal0 -> metal1 -> ... -> metal9 (cyclic): a model that
    # learns it continues "metal3, metal4" with metal5; kNN would not know that order.
    items = [f"metal{j}" for j in range(10)] + ["jazz0"]
    rng = np.random.default_rng(0)
    sess = [[f"metal{(a + t) % 10}" for t in range(6)] for a in rng.integers(0, 10, 300)]
    m = NextItemSessionModel(d_model=16, n_layers=1, n_heads=2, max_length=8, max_epochs=20, n_negatives=5,
                             learning_rate=1e-2, device="cpu", random_state=0).fit(sess, item_ids=items)
    m.save(tmp_path / "sess")
    with pytest.raises(InputError, match="no session model"):
        space.continue_playlist(["metal3"], k=3, method="session")
    space.attach_session_model(tmp_path / "sess")
    out = space.continue_playlist(["metal3", "metal4"], k=3, method="session")
    assert out[0].item_id == "metal5"
    assert len({h.item_id for h in out}) == 3 and {"metal3", "metal4"}.isdisjoint(h.item_id for h in out)
    # seeds the model does not know fall back to kNN; filters apply to session results too
    assert len(space.continue_playlist(["pop1"], k=4, method="session")) == 4
    assert all(h.metadata["year"] >= 1985 for h in space.continue_playlist(["metal3", "metal4"], k=3, where="year>=1985"))
    assert Space.load(space.path).session_model() is not None


def test_hybrid_search_fuses_bm25_over_descriptions(space):
    # a made-up word only BM25 can match literally; the new item has no other modality
    space.add_items([{"item_id": "odd", "name": "Qwzzyx Ensemble", "tags": ["jazz"]}])
    assert [h.item_id for h in space.search("qwzzyx", k=1, mode="lexical")] == ["odd"]
    assert space.search("qwzzyx", k=1, mode="lexical")[0].score > 0
    assert "odd" in [h.item_id for h in space.search("qwzzyx", k=3, mode="hybrid")]
    assert space.search("zzzz nothing matches", k=5, mode="lexical") == []
    # filters apply to the lexical list too
    assert all(h.metadata["year"] >= 2000 for h in space.search("jazz band", k=10, mode="lexical", where="year>=2000"))
    space.config["search"]["hybrid_bm25_weight"] = 50.0
    assert [h.item_id for h in space.search("qwzzyx", k=1, mode="hybrid")] == ["odd"]
    # weight 0 leaves the lexical list out of the fusion altogether
    space.config["search"]["hybrid_bm25_weight"] = 0.0

    def no_lexical(*args):
        raise AssertionError("the lexical list was used with weight 0")

    space._lexical_scores = no_lexical
    assert len(space.search("jazz band", k=10, mode="hybrid")) == 10


def test_a_batch_with_one_item_id_twice_is_refused_and_the_space_stays_loadable(space):
    """Issue 10 finding 1: two records with one item_id used to store two index rows, after
    which every write failed and the space no longer loaded."""
    n = len(space.index)
    dup = [{"item_id": "d", "name": "A", "tags": ["rock"]}, {"item_id": "d", "name": "B", "tags": ["jazz"]}]
    with pytest.raises(InputError, match=r"row 2.*item_id.*'d' already appears in row 1"):
        space.add_items(dup)
    assert len(space.index) == n and space.index.position("d") is None
    again = Space.load(space.path)                  # nothing was written
    assert len(again.index) == n
    assert again.add_items([dup[1]])[0]["item_id"] == "d"   # later writes still work
    assert len(Space.load(space.path).index) == n + 1
    with pytest.raises(InputError, match="duplicate ids"):
        space.index.copy().upsert(["x", "x"], np.ones((2, space.index.dim)), space.index.meta.iloc[:2])


def test_cli_add_refuses_a_duplicate_batch_and_info_still_answers(space, tmp_path):
    """The reproduction of issue 10 finding 1, through the CLI."""
    import json

    from typer.testing import CliRunner

    from talkrec.cli import app

    f = tmp_path / "dup.jsonl"
    f.write_text('{"item_id":"d","name":"A","tags":["rock"]}\n{"item_id":"d","name":"B","tags":["jazz"]}\n')
    runner = CliRunner()
    r = runner.invoke(app, ["add", str(f), "--space", str(space.path)])
    assert r.exit_code != 0 and "already appears in row 1" in r.output
    r = runner.invoke(app, ["info", "--space", str(space.path)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["items"] == len(space.index)
