"""The popularity prior of items without interactions (``recommend.cold_prior``, issue 12):
its features, its value worked out by hand, what it does to the blend, and its settings."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.pipeline import build
from talkrec.space import Space
from talkrec.space.priors import cold_prior, prior_features


def test_prior_features_by_hand():
    X = prior_features([3, None, "x", -2, 0, np.nan, "7"])
    # log(1 + max(x, 0)), NaN where missing (cold_prior fills it); then the indicator of a missing value
    assert np.allclose(X[:, 0], [np.log(4), np.nan, np.nan, 0, 0, np.nan, np.log(8)], equal_nan=True)
    assert X[:, 1].tolist() == [0, 1, 1, 0, 0, 1, 0]


def _voted(root, missing=()):
    """The tiny catalog built with ``votes`` = each item's number of interactions (so the
    regression is exact: y = log(1 + votes)), none for the items ``missing``, the prior on."""
    from tiny_data import TINY_SPACE_CONFIG, make_tiny_catalog

    cat = make_tiny_catalog()
    counts = cat.interactions.groupby("item_id").size()
    votes = cat.items["item_id"].map(counts).astype(float)
    cat.items = cat.items.assign(votes=votes.where(~cat.items["item_id"].isin(missing)))
    build({**TINY_SPACE_CONFIG, "output": str(root),
           "recommend": {"strategy": "blend", "cold_prior": "votes", "cold_prior_weight": 1.0}},
          show_progress=False, catalog=cat)
    return root, counts


@pytest.fixture(scope="module")
def voted(tmp_path_factory):
    return _voted(tmp_path_factory.mktemp("prior") / "s")


def test_the_prior_is_the_predicted_popularity_in_z_units(voted, tmp_path):
    from tiny_data import copy_space

    src, counts = voted
    d = copy_space(src, tmp_path / "s")
    s = Space.load(d)
    assert s.config["recommend"]["cold_prior"] == ["votes"]          # one field given: stored as a list
    s.add_items([{"item_id": "hot", "name": "Hot Jazz", "tags": ["jazz", "band"], "votes": 200},
                 {"item_id": "quiet", "name": "Quiet Jazz", "tags": ["jazz", "band"], "votes": 1},
                 {"item_id": "unknown", "name": "Unknown Jazz", "tags": ["jazz", "band"]}])
    snap = s.index
    prior = cold_prior(s, snap, s.config["recommend"])
    y = np.log1p(counts.to_numpy(dtype=float))       # every item has interactions and votes = its count
    # y = log(1 + votes) exactly, so the fit is y-hat = log(1 + votes) (up to the small ridge)
    want = {"hot": (np.log(201) - y.mean()) / y.std(), "quiet": (np.log(2) - y.mean()) / y.std()}
    for i, v in want.items():
        assert prior[snap.position(i)] == pytest.approx(v, rel=2e-2)
    # no votes: the fitted rows' mean log(1 + votes), and the indicator's weight (its column is all 0
    # on the fitted rows: the ridge sends it to 0): the mean popularity, z = 0
    assert prior[snap.position("unknown")] == pytest.approx(0.0, abs=1e-12)
    # a warm item's prior is its own prediction (the blend uses it only for items without CF)
    assert prior[snap.position("jazz1")] == pytest.approx((np.log1p(counts["jazz1"]) - y.mean()) / y.std(), rel=2e-2)

    def scores(**rec):
        s.config["recommend"] = {**s.config["recommend"], **rec}
        hits = s.recommend(items=["jazz1", "jazz2"], k=70)
        ids = [h.item_id for h in hits]
        return ids.index("hot"), ids.index("quiet"), {h.item_id: h.score for h in hits}
    hot, quiet, at1 = scores()
    assert hot < quiet                               # the same tags: the prior tells them apart
    *_, at3 = scores(cold_prior_weight=3.0)          # the blend adds weight x prior to items without CF
    lift = (at3["hot"] - at3["quiet"]) - (at1["hot"] - at1["quiet"])
    assert lift == pytest.approx(2 * (prior[snap.position("hot")] - prior[snap.position("quiet")]), rel=1e-6)
    hot0, quiet0, _ = scores(cold_prior=None)
    assert abs(hot0 - quiet0) == 1                   # without it they sit side by side (their names differ)
    s.close()


def test_a_missing_value_is_predicted_from_the_items_that_miss_it_too(tmp_path):
    # the least popular third of the items have no votes: the indicator learns what that means
    from tiny_data import make_tiny_catalog

    counts = make_tiny_catalog().interactions.groupby("item_id").size().sort_values(kind="stable")
    missing = counts.index[:len(counts) // 3].tolist()
    root, counts = _voted(tmp_path / "s", missing)
    s = Space.load(root)
    s.add_items([{"item_id": "hot", "name": "Hot Jazz", "tags": ["jazz"], "votes": 200},
                 {"item_id": "unknown", "name": "Unknown Jazz", "tags": ["jazz"]}])
    prior = cold_prior(s, s.index, s.config["recommend"])
    y = np.log1p(counts)
    # rows with votes: y = log(1 + votes) exactly; rows without: their own mean (the indicator)
    assert prior[s.index.position("unknown")] == pytest.approx((y[missing].mean() - y.mean()) / y.std(), rel=1e-2)
    assert prior[s.index.position("hot")] == pytest.approx((np.log(201) - y.mean()) / y.std(), rel=1e-2)
    s.close()


def test_the_prior_is_zero_without_fields_or_interactions(voted, tmp_path):
    s = Space.load(voted[0])
    assert not cold_prior(s, s.index, {"cold_prior": []}).any()
    assert not cold_prior(s, s.index, {"cold_prior": ["votes"], "cold_prior_weight": 0}).any()
    # a field no row has: its features are constant over the fitted rows, so every row gets the mean
    assert not cold_prior(s, s.index, {"cold_prior": ["no_such_field"]}).any()
    s.interactions = None
    s.index.gen._memo.pop("prior_positives", None)
    assert not cold_prior(s, s.index, {"cold_prior": ["votes"], "cold_prior_weight": 2.0}).any()
    s.close()


@pytest.mark.parametrize("rec, field, words", [
    ({"cold_prior": 3}, "recommend.cold_prior", "an item field or a list"),
    ({"cold_prior": ["votes", ""]}, "recommend.cold_prior", "an item field or a list"),
    ({"cold_prior": "votes", "cold_prior_weight": -1}, "recommend.cold_prior_weight", "a number >= 0"),
    ({"cold_prior": "votes", "cold_prior_weight": True}, "recommend.cold_prior_weight", "a number >= 0"),
    ({"cold_prior": "plays"}, "recommend.cold_prior", "no item field 'plays'"),
    ({"cold_prior": "name"}, "recommend.cold_prior", "'name' is not numeric"),
])
def test_bad_prior_settings_name_the_setting_before_any_stage_runs(rec, field, words, tmp_path, tiny_catalog):
    from tiny_data import TINY_SPACE_CONFIG

    cat = copy.copy(tiny_catalog)
    cat.items = cat.items.assign(votes=1.0)
    out = tmp_path / "never"
    with pytest.raises(InputError) as e:
        build({**TINY_SPACE_CONFIG, "output": str(out), "recommend": {"strategy": "blend", **rec}},
              show_progress=False, catalog=cat)
    assert e.value.field == field and words in str(e.value)
    assert not out.exists() and not (tmp_path / "never.build" / "text").exists()


def test_numeric_tmdb_fields_reach_movielens_items(data_root):
    from talkrec.data.datasets.movielens import load_movielens

    items = load_movielens(data_root / "movielens-ml-latest-small").items.set_index("item_id")
    assert items.loc["1", "tmdb_votes"] == 5269 and items.loc["1", "tmdb_popularity"] == pytest.approx(73.640445)
    assert pd.api.types.is_float_dtype(items["tmdb_votes"]) and items["tmdb_votes"].notna().sum() == 3537
    assert pd.isna(items.loc["2", "tmdb_votes"])      # Jumanji: not among TMDB's 5,000


def test_a_bad_tmdb_number_names_the_file_row_and_field(tmp_path):
    from talkrec.data.datasets.movielens import load_movielens

    ml, tm = tmp_path / "ml", tmp_path / "tmdb-5000-movies"
    ml.mkdir(), tm.mkdir()
    (ml / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation\n2,Heat (1995),Crime\n")
    (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,0\n1,2,5.0,0\n")
    (ml / "links.csv").write_text("movieId,imdbId,tmdbId\n1,114709,862\n2,113277,949\n")
    head = "id,overview,keywords,tagline,vote_count,popularity\n"
    (tm / "tmdb_5000_movies.csv").write_text(head + '862,Toys.,[],,5269,73.6\n949,Heists.,[],,-3,10\n')
    with pytest.raises(InputError) as e:
        load_movielens(ml)
    assert e.value.field == "vote_count" and e.value.row == 2 and "tmdb_5000_movies.csv" in str(e.value)
    assert "expected a number >= 0, got '-3'" in str(e.value)
    (tm / "tmdb_5000_movies.csv").write_text(head + '862,Toys.,[],,5269,73.6\n949,Heists.,[],,,many\n')
    with pytest.raises(InputError) as e:
        load_movielens(ml)
    assert e.value.field == "popularity" and e.value.row == 2 and "'many'" in str(e.value)
    (tm / "tmdb_5000_movies.csv").write_text(head + '862,Toys.,[],,5269,73.6\n949,Heists.,[],,,\n')
    items = load_movielens(ml).items.set_index("item_id")       # an empty cell: no value
    assert items.loc["1", "tmdb_votes"] == 5269 and pd.isna(items.loc["2", "tmdb_votes"])


def test_the_prior_counts_users_above_the_threshold_as_popularity_does(voted):
    """A weight-0 interaction (at a threshold of 0) or a user's second row of an item is not
    one more positive: the counts are ``item_popularity``'s."""
    import pandas as pd

    from talkrec.space.popularity import item_popularity
    from talkrec.space.priors import _positives

    s = Space.load(voted[0])
    inter = s.interactions
    extra = pd.DataFrame({"user_id": ["zero-user", inter["user_id"].iloc[0]],
                          "item_id": [inter["item_id"].iloc[0]] * 2, "weight": [0.0, 1.0]})
    s.interactions = pd.concat([inter, extra], ignore_index=True)
    s.index.gen._memo.pop("prior_positives", None)
    counts = _positives(s, s.index)
    pop = item_popularity(s.interactions, float(s.config.get("positive_threshold", 0.0)))
    assert {i: c for i, c in counts.items() if c} == pop.counts
    assert counts[str(inter["item_id"].iloc[0])] == pop.counts[str(inter["item_id"].iloc[0])]
    s.close()
