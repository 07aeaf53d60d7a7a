"""Generic catalogs (CSV / Parquet / JSONL files described in a config) reach the space as
the dataset adapters' catalogs do: tags with categories, the items' ``tags`` / ``genre`` /
``decade`` list columns, numeric columns as numbers; so tag filters, facets and the decade
filter work. The end-to-end test writes a slice of MovieLens as a generic catalog."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.data.io import load_catalog
from talkrec.errors import InputError


def test_tags_column_gives_categorized_tags_and_list_columns(tmp_path):
    (tmp_path / "items.csv").write_text(
        "item_id,name,year,score,tags\n"
        "1,Alpha,1994,4.5,genre:comedy|genre:drama|funny|90s\n"
        "2,Beta,2001,3.25,genre:horror|dark\n"
        "3,Gamma,,,\n")
    c = load_catalog({"items": {"path": "items.csv", "tags_column": "tags"}}, base=tmp_path)
    by = c.tags_by_item()
    assert by["1"] == {"genre": ["comedy", "drama"], "mood": ["funny"], "decade": ["90s"]}
    assert by["2"] == {"genre": ["horror"], "mood": ["dark"]}
    items = c.items.set_index("item_id")
    assert items.loc["1", "tags"] == ["comedy", "drama", "funny", "90s"]
    assert items.loc["1", "genre"] == ["comedy", "drama"] and items.loc["3", "genre"] == []
    assert items.loc["1", "decade"] == ["90s"] and items.loc["2", "decade"] == ["2000s"]  # tag, else the year
    assert items.loc["3", "tags"] == [] and items.loc["3", "decade"] == []
    assert pd.api.types.is_integer_dtype(c.items["year"]) and c.items["year"].iloc[0] == 1994
    assert pd.isna(c.items["year"].iloc[2])
    assert pd.api.types.is_float_dtype(c.items["score"]) and c.items["score"].iloc[1] == 3.25


def test_a_two_digit_decade_after_the_catalogs_newest_dated_one_is_a_century_earlier(tmp_path):
    """``20s`` is the 1920s in a catalog whose newest decade dated in four digits (a tag or a
    year) is the 2010s, as Last.fm's (2011); ``10s`` stays the 2010s; a catalog with nothing
    dated in four digits keeps the reading of ``decade_start`` (``20s``: the 2020s)."""
    from talkrec.data.tags import dated_decades
    lists = pd.Series([["20s", "80s"], ["2011"], ["10s", "20's"], []])
    assert dated_decades(lists).tolist() == [["1920s", "80s"], ["2011"], ["10s", "1920s"], []]
    assert dated_decades(pd.Series([["20s"], ["10s"]])).tolist() == [["20s"], ["10s"]]
    assert dated_decades(pd.Series([["20s"], []]), pd.Series([None, 2024])).tolist() == [["20s"], []]
    (tmp_path / "items.csv").write_text("item_id,name,year,tags\n1,Jolson,,20s|jazz\n2,New,2009,pop\n")
    c = load_catalog({"items": {"path": "items.csv", "tags_column": "tags"}}, base=tmp_path)
    assert c.items.set_index("item_id")["decade"].to_dict() == {"1": ["1920s"], "2": ["2000s"]}


def test_the_lastfm_20s_are_the_1920s(data_root):
    """Al Jolson's ``20s`` tag: the 1920s in the decade field, its facets and filters (it was
    the 2020s, a decade the 2011 dataset cannot hold)."""
    from talkrec.data.datasets.lastfm import load_lastfm
    items = load_lastfm(data_root / "lastfm-hetrec2011-2k").items.set_index("name")
    assert items.loc["Al Jolson", "decade"] == ["1920s"]
    assert not any(d in ("20s", "2020s") for ds in items["decade"] for d in ds)


def test_only_a_word_before_a_colon_is_a_category(tmp_path):
    """``genre:rock`` has the category genre; a URL, a ratio or a time has no category (they
    were split at their last colon: ``http`` / ``//x.com``); a category-only tag is an error."""
    (tmp_path / "items.csv").write_text(
        "item_id,name,tags\n"
        "1,A,genre:post-rock|http://x.com/a|16:9|place:new york|mood: sad \n"
        "2,B,12:00 am|genre:a:b\n")
    by = load_catalog({"items": {"path": "items.csv", "tags_column": "tags"}}, base=tmp_path).tags_by_item()
    assert by["1"]["genre"] == ["post-rock"] and by["1"]["place"] == ["new york"] and by["1"]["mood"] == ["sad"]
    whole = {t for cats in (by["1"], by["2"]) for c, ts in cats.items() if c not in ("genre", "place", "mood")
             for t in ts}
    assert {"http://x.com/a", "16:9", "12:00 am"} <= whole
    assert "http" not in by["1"] and by["2"]["genre"] == ["a:b"]
    (tmp_path / "items.csv").write_text("item_id,name,tags\n1,A,rock\n2,B,rock|genre:\n")
    with pytest.raises(InputError, match=r"items.csv: row 2: field 'tags'.*'genre:' has a category but no tag"):
        load_catalog({"items": {"path": "items.csv", "tags_column": "tags"}}, base=tmp_path)


def test_long_tags_file_categories_and_explicit_types(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,name,zip,listeners\na,A,02139,10\nb,B,10001,20\n")
    (tmp_path / "tags.csv").write_text("item_id,tag,category,weight\na,rock,,3\na,happy,,1\nb,jazz,style,2\n")
    c = load_catalog({"items": {"path": "items.csv", "types": {"zip": "str"}}, "tags": {"path": "tags.csv"}},
                     base=tmp_path)
    assert c.tags_by_item() == {"a": {"genre": ["rock"], "mood": ["happy"]}, "b": {"style": ["jazz"]}}
    assert c.items["zip"].tolist() == ["02139", "10001"]           # declared text keeps its zeros
    assert c.items["listeners"].dtype == np.int64
    assert c.items.set_index("item_id").loc["a", "tags"] == ["rock", "happy"]


def test_a_tags_file_with_its_own_column_names_is_read_through_rename(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,name\na,A\nb,B\n")
    (tmp_path / "tags.csv").write_text("artist,label\na,rock\nb,jazz\n")
    spec = {"items": {"path": "items.csv"}, "tags": {"path": "tags.csv"}}
    with pytest.raises(InputError, match=r"field 'item_id': missing column 'item_id'; the file has "
                                         r"\['artist', 'label'\]; rename: \{<a column of the file>: item_id\}"):
        load_catalog(spec, base=tmp_path)
    c = load_catalog({**spec, "tags": {"path": "tags.csv", "rename": {"artist": "item_id", "label": "tag"}}},
                     base=tmp_path)
    assert c.items.set_index("item_id")["tags"].to_dict() == {"a": ["rock"], "b": ["jazz"]}


def test_numbers_with_leading_zeros_stay_text(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,name,code\na,A,007\nb,B,12\n")
    c = load_catalog({"items": {"path": "items.csv"}}, base=tmp_path)
    assert c.items["code"].tolist() == ["007", "12"]


def _movielens_as_generic(src, out, n_movies=400):
    """The most-rated ``n_movies`` of ml-latest-small as generic files: items.csv (item_id,
    name, year, a tags column of genres and user tags, ``votes``: the movie's number of
    ratings, as a catalog's own popularity column; ``release year``: a column name with a
    space), plays.csv (user_id, item_id, weight)."""
    movies = pd.read_csv(src / "movies.csv", dtype=str)
    ratings = pd.read_csv(src / "ratings.csv", dtype={"userId": str, "movieId": str})
    counts = ratings["movieId"].value_counts()
    keep = counts.index[:n_movies]
    movies = movies[movies["movieId"].isin(keep)]
    user_tags = pd.read_csv(src / "tags.csv", dtype=str)
    user_tags = user_tags.assign(tag=user_tags["tag"].str.strip().str.lower()).groupby("movieId")["tag"].apply(
        lambda t: list(dict.fromkeys(t))[:5])
    rows = []
    for m in movies.itertuples(index=False):
        y = re.search(r"\((\d{4})\)\s*$", m.title)
        genres = [f"genre:{g.lower()}" for g in m.genres.split("|") if g != "(no genres listed)"]
        tags = genres + [t.replace("|", " ").replace(":", " ") for t in user_tags.get(m.movieId, [])]
        rows.append({"item_id": m.movieId, "name": re.sub(r"\s*\(\d{4}\)\s*$", "", m.title),
                     "year": y.group(1) if y else "", "tags": "|".join(tags), "votes": int(counts[m.movieId]),
                     "release year": y.group(1) if y else ""})
    pd.DataFrame(rows).to_csv(out / "items.csv", index=False)
    r = ratings[ratings["movieId"].isin(keep)]
    pd.DataFrame({"user_id": r["userId"], "item_id": r["movieId"], "weight": r["rating"]}).to_csv(
        out / "plays.csv", index=False)


@pytest.fixture(scope="module")
def movielens_generic_space(data_root, tmp_path_factory):
    src = data_root / "movielens-ml-latest-small"
    if not src.exists():
        pytest.skip(f"MovieLens not found at {src}")
    d = tmp_path_factory.mktemp("ml-generic")
    _movielens_as_generic(src, d)
    (d / "build.yaml").write_text(yaml.safe_dump({
        "name": "ml-generic", "dataset": "generic", "output": str(d / "space"),
        "catalog": {"items": {"path": "items.csv", "tags_column": "tags"}, "interactions": {"path": "plays.csv"}},
        "descriptions": {"template": {"header": "movie"}},
        "cf": {"params": {"factors": 16, "iterations": 5}},
        "recommend": {"strategy": "blend", "cold_prior": ["votes"], "cold_prior_weight": 3.0},
        "fusion": {"max_epochs": 15, "batch_size": 64, "hidden_dim": 32, "out_dim": 16, "learning_rate": 3e-3}}))
    r = CliRunner().invoke(app, ["build", str(d / "build.yaml"), "--no-progress", "--quiet"])
    assert r.exit_code == 0, (r.output, r.exception)
    from talkrec import Space
    return Space.load(d / "space")


def test_movielens_as_generic_catalog_searches_filters_and_facets(movielens_generic_space):
    from talkrec.index.filters import FilterSpec
    space = movielens_generic_space
    meta = space.index.meta
    assert pd.api.types.is_integer_dtype(meta["year"]), meta["year"].dtype
    hits = space.search("funny", k=10, where="tag=comedy")
    assert len(hits) == 10
    assert all("comedy" in space.item(h.item_id)["tags"] for h in hits)
    assert all("comedy" in space.item(h.item_id)["genre"] for h in hits)
    facets = space.facets()
    assert "comedy" in dict(facets.top_tags) and "drama" in dict(facets.top_tags)
    assert {"1980s", "1990s", "2000s"} <= set(facets.decades)
    assert "year" in facets.numeric_fields
    nineties = space.search("crime", k=10, where=space.filter_where(FilterSpec(decade="1990s")))
    assert len(nineties) == 10 and all(1990 <= space.item(h.item_id)["year"] <= 1999 for h in nineties)
    assert space.search("crime", k=5, where="year>=1990,year<2000")
    quoted = space.search("crime", k=10, where='"release year">=1990, `release year`<2000,tag=crime')
    assert [h.item_id for h in quoted] == [h.item_id for h in space.search("crime", k=10,
                                                                           where="year>=1990,year<2000,tag=crime")]
    assert len(quoted) == 10 and all(1990 <= space.item(h.item_id)["release year"] <= 1999 for h in quoted)
    r = CliRunner().invoke(app, ["search", "crime", "--space", str(space.path), "--k", "3", "--json",
                                 "--where", '"release year"<1950'])
    assert r.exit_code == 0, r.output
    old = [space.item(h["item_id"])["release year"] for h in json.loads(r.output)]
    assert len(old) == 3 and all(y < 1950 for y in old), old
    first_comedy = int(np.flatnonzero(meta["tags"].apply(lambda t: "comedy" in list(t)))[0])
    assert "comedy" in meta["description"].iloc[first_comedy].lower()


def test_a_generic_catalogs_numeric_column_ranks_new_items_by_their_predicted_popularity(movielens_generic_space,
                                                                                          tmp_path):
    from talkrec import Space
    from tiny_data import copy_space

    s = Space.load(copy_space(movielens_generic_space.path, tmp_path / "s"))
    assert s.config["recommend"]["cold_prior"] == ["votes"]
    new = {"name": "Brand New Comedy", "tags": ["comedy", "romance"], "year": 2018}
    s.add_items([{**new, "item_id": "hit", "votes": 300}, {**new, "item_id": "flop", "votes": 1}])
    def ranked():
        hits = s.recommend(items=["1", "356", "296"], k=402)
        return [h.item_id for h in hits], {h.item_id: h.score for h in hits}
    ids, score = ranked()
    assert ids.index("hit") < 100 < ids.index("flop"), (ids.index("hit"), ids.index("flop"))
    assert score["hit"] - score["flop"] > 3.0           # 3 x the gap of their predicted popularity (z units)
    s.config["recommend"] = {**s.config["recommend"], "cold_prior": None}
    ids, score = ranked()                                # the same content: without the prior, a tie
    assert score["hit"] == pytest.approx(score["flop"], abs=1e-6)
    s.close()
