"""MovieLens ml-latest-small, joined with TMDB-5000 overviews and keywords via links.csv.

Items are movies (``item_id`` = movieId). Tags: MovieLens genres (category ``genre``) and
user tags (category ``tag``, weight = number of users), TMDB keywords (category
``keyword``). ``texts['overview']`` holds the TMDB overview plus keywords, the second
human-written description of paper 001 section 3.2. Joined movies also get TMDB's numbers as
metadata: ``tmdb_votes`` (TMDB's vote count) and ``tmdb_popularity`` (filters, and the popularity
prior of movies without ratings, ``recommend.cold_prior``). Titles like "Shawshank Redemption,
The (1994)" become "The Shawshank Redemption" with ``year`` 1994 and ``decade`` "1990s".
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputError, shown
from ..catalog import Catalog
from ..tables import coerce
from ..tags import tag_lists

log = logging.getLogger(__name__)

_YEAR = re.compile(r"\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|Le|La|L'|Il|El|Das|Die|Der)$")


def clean_title(raw: str) -> tuple[str, int | None]:
    """``"Shawshank Redemption, The (1994)"`` -> ``("The Shawshank Redemption", 1994)``."""
    s = str(raw).strip()
    m = _YEAR.search(s)
    year = int(m.group(1)) if m else None
    if m:
        s = s[:m.start()].strip()
    # "Title, The (Alt title)" -> article moves to the front of the main title
    alt = ""
    am = re.match(r"^(.*?)(\s*\(.*\))$", s)
    if am:
        s, alt = am.group(1), am.group(2)
    m2 = _ARTICLE.match(s)
    if m2:
        art = m2.group(2)
        s = f"{art}{'' if art.endswith(chr(39)) else ' '}{m2.group(1)}"
    return (s + alt).strip(), year


def _read_csv(path: Path, cols: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise InputError("file not found (is the data root right?)", path=str(path))
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"missing columns {missing}; found {list(df.columns)}", path=str(path))
    return df


def _json_names(s: str, path: Path, row: int, field: str) -> list[str]:
    if not s:
        return []
    try:
        return [d["name"] for d in json.loads(s)]
    except (json.JSONDecodeError, TypeError, KeyError):
        raise InputError("expected a JSON list of {\"name\": ...} objects", path=str(path), row=row, field=field) from None


def load_movielens(root: str | Path, *, tmdb_root: str | Path | None = None) -> Catalog:
    """Load ml-latest-small (``root``) and join TMDB-5000 (default ``<root>/../tmdb-5000-movies``)."""
    root = Path(root)
    report: dict[str, object] = {}
    items = _read_movies(root / "movies.csv", report)
    known = set(items["item_id"])
    interactions = _read_ratings(root / "ratings.csv", known, report)
    stats = interactions.groupby("item_id").agg(n_ratings=("weight", "size"), mean_rating=("weight", "mean"))
    items = items.join(stats, on="item_id")
    items["n_ratings"] = items["n_ratings"].fillna(0).astype(np.int64)
    tag_rows = [pd.DataFrame({"item_id": items["item_id"].repeat(items["genres"].str.len()).to_numpy(),
                              "category": "genre", "tag": [g.lower() for gs in items["genres"] for g in gs],
                              "weight": 1000.0})]
    tgp = root / "tags.csv"
    if tgp.exists():
        tag_rows.append(_read_user_tags(tgp, known, report))
    texts: dict[str, pd.Series] = {}
    troot = Path(tmdb_root) if tmdb_root else root.parent / "tmdb-5000-movies"
    tmdb_file = troot / "tmdb_5000_movies.csv"
    if (root / "links.csv").exists() and tmdb_file.exists():
        kw, texts["overview"], fields = _read_tmdb(root / "links.csv", tmdb_file, known, report)
        tag_rows.append(kw)
        for col in fields.columns:
            items[col] = items["item_id"].map(fields[col])
    else:
        log.warning("TMDB not found at %s: no overview texts", tmdb_file)
    tags = pd.concat(tag_rows, ignore_index=True)
    items["tags"] = tag_lists(tags, items["item_id"], "tag")
    for k, v in report.items():
        log.info("movielens: %s = %s", k, v)
    return Catalog(items=items, tags=tags, interactions=interactions, texts=texts, name="movielens", report=report)


def _read_movies(mp: Path, report: dict[str, object]) -> pd.DataFrame:
    """``movies.csv``: clean titles, year, decade and genre lists."""
    movies = _read_csv(mp, ["movieId", "title", "genres"])
    titles = movies["title"].map(clean_title)
    items = pd.DataFrame({"item_id": movies["movieId"].str.strip(), "name": [t for t, _ in titles],
                          "title": movies["title"]})
    items["year"] = pd.array([y for _, y in titles], dtype="Int64")
    items["decade"] = [[f"{(y // 10) * 10}s"] if y is not None else [] for _, y in titles]
    items["genres"] = [[g for g in s.split("|") if g and g != "(no genres listed)"] for s in movies["genres"]]
    report["movies"] = len(items)
    report["movies_without_year"] = int(items["year"].isna().sum())
    report["movies_without_genres"] = int((items["genres"].str.len() == 0).sum())
    return items


def _read_ratings(rp: Path, known: set[str], report: dict[str, object]) -> pd.DataFrame:
    """``ratings.csv`` as interactions (weight = rating), ratings of unknown movies dropped."""
    r = _read_csv(rp, ["userId", "movieId", "rating", "timestamp"])
    rating = pd.to_numeric(r["rating"], errors="coerce")
    if rating.isna().any():
        i = int(np.flatnonzero(rating.isna().to_numpy())[0]) + 1
        raise InputError(f"cannot read {shown(r['rating'].iloc[i - 1])} as a rating", path=str(rp), row=i, field="rating")
    interactions = pd.DataFrame({"user_id": r["userId"].str.strip(), "item_id": r["movieId"].str.strip(),
                                 "weight": rating.astype(float),
                                 "timestamp": pd.to_numeric(r["timestamp"], errors="coerce").fillna(0).astype(np.int64)})
    bad = ~interactions["item_id"].isin(known)
    report["ratings_unknown_movie"] = int(bad.sum())
    return interactions[~bad].reset_index(drop=True)


def _read_user_tags(tgp: Path, known: set[str], report: dict[str, object]) -> pd.DataFrame:
    """``tags.csv``: long tags of category ``tag``, weight = number of users who applied it."""
    apps = read_tag_applications(tgp, known)
    report["user_tag_applications"] = len(apps)
    return user_tag_rows(apps)


def read_tag_applications(tgp: Path, known: set[str]) -> pd.DataFrame:
    """``tags.csv`` as ``user_id``, ``item_id``, ``tag`` (stripped, lower case; empty tags and
    unknown movies dropped): who tagged what, which an evaluation that holds users out needs
    (their own tags on their own movies would leak them: :func:`~talkrec.evaluation.splits.without_users_tags`)."""
    t = _read_csv(tgp, ["userId", "movieId", "tag"])
    t = t.assign(tag=t["tag"].str.strip().str.lower())
    t = t[(t["tag"] != "") & t["movieId"].isin(known)]
    return pd.DataFrame({"user_id": t["userId"].str.strip(), "item_id": t["movieId"], "tag": t["tag"]}).reset_index(drop=True)


def user_tag_rows(apps: pd.DataFrame) -> pd.DataFrame:
    """Long tags of category ``tag`` from tag applications: weight = number of users who applied it."""
    ut = apps.groupby(["item_id", "tag"])["user_id"].nunique().rename("weight").reset_index()
    return pd.DataFrame({"item_id": ut["item_id"], "category": "tag", "tag": ut["tag"],
                         "weight": ut["weight"].astype(float)})


def _read_tmdb(lp: Path, tmdb_file: Path, known: set[str], report: dict[str, object]
               ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """TMDB keywords (long tags of category ``keyword``), overview texts (tagline + overview +
    keywords) and each joined movie's ``tmdb_id``, ``tmdb_votes`` and ``tmdb_popularity``
    (indexed by movieId), through ``links.csv``."""
    all_links = _read_csv(lp, ["movieId", "tmdbId"])
    links = all_links[all_links["tmdbId"].str.strip() != ""]
    report["links_without_tmdb"] = int(len(all_links) - len(links))
    tm = _read_csv(tmdb_file, ["id", "overview", "keywords", "tagline", "vote_count", "popularity"])
    nums = {c: _counts(tm, c, tmdb_file) for c in ("vote_count", "popularity")}   # file rows, before dedup
    tm = tm.drop_duplicates("id")
    j = links.merge(tm, left_on=links["tmdbId"].str.strip(), right_on="id", how="inner")
    j = j[j["movieId"].isin(known)]
    report["tmdb_joined"] = len(j)
    kw_rows, ov = [], {}
    for i, row in enumerate(j.itertuples(index=False), start=1):
        kws = _json_names(row.keywords, tmdb_file, i, "keywords")
        for k, kw in enumerate(kws):
            kw_rows.append((row.movieId, "keyword", kw.lower(), float(len(kws) - k)))
        text = str(row.overview).strip()
        if row.tagline:
            text = f"{row.tagline.strip()} {text}".strip()
        if kws:
            text = f"{text} Keywords: {', '.join(kws)}."
        if text:
            ov[row.movieId] = text
    kw = pd.DataFrame(kw_rows, columns=["item_id", "category", "tag", "weight"])
    rows = j["id"].map(dict(zip(tm["id"], tm.index)))              # each joined movie's TMDB row
    fields = pd.DataFrame({"tmdb_id": j["id"].to_numpy(), "tmdb_votes": nums["vote_count"].loc[rows].to_numpy(),
                           "tmdb_popularity": nums["popularity"].loc[rows].to_numpy()}, index=j["movieId"].to_numpy())
    return kw, pd.Series(ov, dtype=object), fields


def _counts(tm: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """TMDB column ``col`` as floats >= 0 (an empty cell: NaN), read by :func:`~talkrec.data.tables.coerce`;
    anything else is an error naming the file, row and field."""
    x = pd.to_numeric(coerce(tm, col, "float", str(path), required=False), errors="coerce").astype(float)
    if (x < 0).any():
        i = int(np.flatnonzero((x < 0).to_numpy())[0])
        raise InputError(f"expected a number >= 0, got {shown(tm[col].iloc[i])}", path=str(path), row=i + 1, field=col)
    return x
