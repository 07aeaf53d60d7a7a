"""QA of playlists and explanations through the Python API: explanations on a space with
modality weights, continuation settings checked like the HTTP API checks them."""
from __future__ import annotations

import itertools

import pytest
from tiny_data import TINY_SPACE_CONFIG, copy_space, make_tiny_catalog

from talkrec.errors import InputError
from talkrec.space import Space


@pytest.fixture(scope="module")
def weighted(tmp_path_factory):
    """The tiny space built with ``modality_weights: {audio: 0.5}`` (as configs/lastfm.yaml)."""
    from talkrec.pipeline import build
    out = tmp_path_factory.mktemp("weighted") / "space"
    build({**TINY_SPACE_CONFIG, "output": str(out), "modality_weights": {"audio": 0.5}}, show_progress=False,
          catalog=make_tiny_catalog())
    s = Space.load(out)
    yield s
    s.close()


@pytest.fixture()
def space(tiny_space_dir, tmp_path):
    s = Space.load(copy_space(tiny_space_dir, tmp_path / "space"))
    yield s
    s.close()


def test_explain_shares_add_up_to_the_cosine_with_modality_weights(weighted):
    assert weighted.config["modality_weights"]["audio"] == 0.5
    ids = ["metal1", "metal2", "jazz1", "jazz5", "pop3", "pop4"]
    for a, b in itertools.combinations(ids, 2):
        e = weighted.explain(a, b)
        assert sum(e["modality_contributions"].values()) == pytest.approx(e["cosine"], abs=1e-4), (a, b, e)
    e = weighted.explain("jazz1", "jazz1")
    assert e["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert sum(e["modality_contributions"].values()) == pytest.approx(1.0, abs=1e-4)
    # a cold-start item is combined with the same weights
    weighted.add_items([{"item_id": "n1", "name": "N", "tags": ["jazz"], "vectors": {"audio": [0.0, 1.0, 0.0, 0.0]}}])
    e = weighted.explain("n1", "jazz1")
    assert e["modalities"]["a"] == ["audio", "text"]
    assert sum(e["modality_contributions"].values()) == pytest.approx(e["cosine"], abs=1e-4)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_per_artist_is_a_positive_integer(space, bad):
    with pytest.raises(InputError, match="max_per_artist must be a positive integer") as e:
        space.continuation(["pop1"], 3, max_per_artist=bad, artist_field="genre")
    assert e.value.field == "max_per_artist"
    with pytest.raises(InputError, match="max_per_artist must be a positive integer"):
        space.continue_playlist(["pop1"], 3, max_per=("genre", bad))


def test_max_per_artist_still_limits(space):
    got = space.continue_playlist(["pop1"], 3, max_per=("genre", 1))
    assert len({tuple(h.metadata.get("genre") or space.item(h.item_id)["genre"]) for h in got}) == 3


@pytest.mark.parametrize("kw, field", [({"recency": "0.5"}, "recency"), ({"recency": None}, "recency"),
                                       ({"recency": float("nan")}, "recency"), ({"diversity": "0.1"}, "diversity"),
                                       ({"diversity": None}, "diversity"), ({"diversity": True}, "diversity")])
def test_recency_and_diversity_must_be_numbers(space, kw, field):
    with pytest.raises(InputError, match=f"{field} must be a number") as e:
        space.continue_playlist(["pop1"], 3, **kw)
    assert e.value.field == field


def test_continuation_edges(space):
    # duplicated seeds count once, in their first place; no seed comes back
    c = space.continuation(["pop1", "pop2", "pop1"], 5)
    assert c.seeds == ["pop1", "pop2"] and not {"pop1", "pop2"} & {h.item_id for h in c.items}
    # filters that match nothing: an empty continuation, not an error
    assert space.continue_playlist(["pop1"], 5, where={"tags": "no-such-tag"}) == []
    # a seed removed since: refused by its id
    space.remove(["pop2"])
    with pytest.raises(Exception, match="unknown item 'pop2'"):
        space.continuation(["pop1", "pop2"], 3)
    assert "pop2" not in {h.item_id for h in space.continue_playlist(["pop1"], 59)}


def test_continuation_says_session_only_when_the_session_model_ranked(space, tmp_path):
    """With a session model attached, seeds it knows none of are continued by kNN: the scores
    are cosines and the response says so (it said "session" for any space with a model)."""
    import numpy as np
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    from talkrec.sessions.models import NextItemSessionModel

    items = [f"metal{j}" for j in range(10)]
    rng = np.random.default_rng(0)
    sess = [[f"metal{(a + t) % 10}" for t in range(6)] for a in rng.integers(0, 10, 200)]
    NextItemSessionModel(d_model=16, n_layers=1, n_heads=2, max_length=8, max_epochs=5, n_negatives=5,
                         learning_rate=1e-2, device="cpu", random_state=0).fit(sess, item_ids=items).save(tmp_path / "m")
    space.attach_session_model(tmp_path / "m")
    assert space.continuation(["metal3", "metal4"], 3).score_kind == "session"
    unknown = space.continuation(["pop1"], 3)
    assert unknown.score_kind == "cosine"
    assert [h.item_id for h in unknown.items] == [h.item_id for h in space.continuation(["pop1"], 3, method="knn").items]
    assert space.continuation(["metal3"], 3, method="knn").score_kind == "cosine"
    path = space.path
    space.close()
    with TestClient(create_app(path)) as c:
        for seeds, kind in ((["pop1"], "cosine"), (["metal3"], "session"), (["pop1", "metal3"], "session")):
            r = c.post("/api/playlists/continue", json={"items": seeds, "k": 3})
            assert r.status_code == 200 and r.json()["score_kind"] == kind, (seeds, r.text)
