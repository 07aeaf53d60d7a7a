"""Last.fm HetRec-2011-2k, joined with per-artist Spotify audio descriptors.

Reads the official archive's files (``artists.dat`` UTF-8; ``tags.dat`` latin-1;
``user_artists.dat``; ``user_taggedartists.dat``) and the Spotify ``data_w_genres.csv``.
The join is by normalized artist name (:func:`talkrec.data.normalize.normalize_name`).
Colliding normalized names inside Last.fm are resolved to the most-played artist; on the
Spotify side to the row with the most tracks. Everything dropped or ambiguous is logged
and returned in ``catalog.report``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ...descriptions.categories import TagCategorizer
from ...errors import InputError, shown
from ..catalog import Catalog, VectorTable
from ..normalize import normalize_name
from ..tags import dated_decades, tag_lists

log = logging.getLogger(__name__)

#: Spotify descriptors used as the audio modality (``key`` is categorical and left out).
SPOTIFY_FEATURES = ("acousticness", "danceability", "energy", "instrumentalness", "liveness", "loudness",
                    "speechiness", "tempo", "valence", "mode", "duration_ms")


def _read_tsv(path: Path, encoding: str, cols: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise InputError("file not found (is the data root right?)", path=str(path))
    df = pd.read_csv(path, sep="\t", encoding=encoding, dtype=str, keep_default_na=False, quoting=3)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"missing columns {missing}; found {list(df.columns)}", path=str(path))
    return df


def _int_col(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce")
    if v.isna().any():
        i = int(np.flatnonzero(v.isna().to_numpy())[0]) + 1
        raise InputError(f"cannot read {shown(df[col].iloc[i - 1])} as an integer", path=str(path), row=i, field=col)
    return v.to_numpy(dtype=np.int64)


def load_lastfm(root: str | Path, *, spotify_root: str | Path | None = None, min_tag_users: int = 1,
                categorizer: TagCategorizer | None = None, with_audio: bool = True) -> Catalog:
    """Load Last.fm-2k as a catalog of artists.

    Parameters
    ----------
    root:
        Folder with the HetRec files (``.../lastfm-hetrec2011-2k``).
    spotify_root:
        Folder with ``data_w_genres.csv``; default: ``<root>/../spotify-artist-audio-features``.
    min_tag_users:
        Keep a tag on an artist only when at least this many users applied it.
    categorizer:
        Maps a tag to a category (default :class:`TagCategorizer`).
    """
    root = Path(root)
    report: dict[str, object] = {}
    ap = root / "artists.dat"
    artists = _read_tsv(ap, "utf-8", ["id", "name"])
    artists["id"] = _int_col(artists, "id", ap).astype(str)
    known = set(artists["id"])
    plays = _read_plays(root / "user_artists.dat", known, report)
    tag_df = _read_tags(root, known, min_tag_users, categorizer or TagCategorizer(), report)
    items = _artist_items(artists, plays, tag_df, report)
    vectors: dict[str, VectorTable] = {}
    if with_audio:
        sroot = Path(spotify_root) if spotify_root else root.parent / "spotify-artist-audio-features"
        vt, srep = load_spotify_audio(sroot / "data_w_genres.csv", items)
        spot_genres = srep.pop("_genres", None)
        report.update(srep)
        if vt is not None:
            vectors["audio"] = vt
            if spot_genres is not None:
                items["spotify_genres"] = items["item_id"].map(spot_genres).apply(
                    lambda v: v if isinstance(v, list) else [])
    items["has_audio"] = items["item_id"].isin(set(vectors["audio"].ids) if "audio" in vectors else set())
    items = items.drop(columns=["norm_name"])
    for k, v in report.items():
        log.info("lastfm: %s = %s", k, v)
    return Catalog(items=items, tags=tag_df.reset_index(drop=True), interactions=plays, vectors=vectors, name="lastfm",
                   report=report)


def _read_plays(up: Path, known: set[str], report: dict[str, object]) -> pd.DataFrame:
    """``user_artists.dat`` as interactions (weight = play count), unknown artists dropped."""
    ua = _read_tsv(up, "utf-8", ["userID", "artistID", "weight"])
    plays = pd.DataFrame({"user_id": ua["userID"].astype(str), "item_id": _int_col(ua, "artistID", up).astype(str),
                          "weight": _int_col(ua, "weight", up).astype(float)})
    unknown_plays = ~plays["item_id"].isin(known)
    report["play_rows_unknown_artist"] = int(unknown_plays.sum())
    return plays[~unknown_plays].reset_index(drop=True)


def _read_tags(root: Path, known: set[str], min_tag_users: int, cat: TagCategorizer,
               report: dict[str, object]) -> pd.DataFrame:
    """Long tags (item_id, category, tag, weight = number of users who applied the tag)."""
    tp = root / "tags.dat"
    tags = _read_tsv(tp, "latin-1", ["tagID", "tagValue"])
    tag_name = dict(zip(tags["tagID"].astype(str), tags["tagValue"].str.strip().str.lower()))
    tap = root / "user_taggedartists.dat"
    uta = _read_tsv(tap, "utf-8", ["userID", "artistID", "tagID", "day", "month", "year"])
    uta["artistID"] = _int_col(uta, "artistID", tap).astype(str)
    unknown = ~uta["artistID"].isin(known)
    report["tag_rows_unknown_artist"] = int(unknown.sum())
    report["unknown_artist_ids_in_tags"] = int(uta.loc[unknown, "artistID"].nunique())
    uta = uta[~unknown]
    uta = uta.assign(tag=uta["tagID"].astype(str).map(tag_name))
    uta = uta[uta["tag"].notna() & (uta["tag"].str.len() > 0)]
    counts = (uta.groupby(["artistID", "tag"])["userID"].nunique().rename("weight").reset_index())
    counts = counts[counts["weight"] >= min_tag_users]
    tag_df = pd.DataFrame({"item_id": counts["artistID"], "tag": counts["tag"],
                           "weight": counts["weight"].astype(float)})
    cats = {t: cat(t) for t in tag_df["tag"].unique()}
    tag_df["category"] = tag_df["tag"].map(cats)
    return tag_df[["item_id", "category", "tag", "weight"]]


def _artist_items(artists: pd.DataFrame, plays: pd.DataFrame, tag_df: pd.DataFrame,
                  report: dict[str, object]) -> pd.DataFrame:
    """One row per artist: plays, listeners, tags, genre and decade lists, and the join name
    (normalized-name collisions resolved to the most-played artist)."""
    per_artist = plays.groupby("item_id").agg(plays=("weight", "sum"), listeners=("user_id", "nunique"))
    items = pd.DataFrame({"item_id": artists["id"], "name": artists["name"].str.strip()})
    items = items.join(per_artist, on="item_id")
    items["plays"] = items["plays"].fillna(0).astype(np.int64)
    items["listeners"] = items["listeners"].fillna(0).astype(np.int64)
    items["tags"] = tag_lists(tag_df, items["item_id"])
    items["genre"] = tag_lists(tag_df, items["item_id"], "genre")
    items["decade"] = dated_decades(tag_lists(tag_df, items["item_id"], "decade"))   # 20s: the 1920s here
    items["norm_name"] = items["name"].map(normalize_name)
    report["artists"] = len(items)
    report["artists_without_tags"] = int((items["tags"].str.len() == 0).sum())
    report["artists_empty_normalized_name"] = int((items["norm_name"] == "").sum())
    # Normalized-name collisions inside Last.fm: the most-played artist owns the name.
    dup = items[items["norm_name"] != ""].groupby("norm_name")["item_id"].transform("size") > 1
    coll = items[dup.reindex(items.index, fill_value=False)]
    owner = (coll.sort_values(["norm_name", "plays", "listeners"], ascending=[True, False, False])
             .groupby("norm_name").head(1))
    report["name_collisions"] = int(coll["norm_name"].nunique())
    report["name_collision_artists"] = int(len(coll))
    items["join_name"] = items["norm_name"]
    losers = set(coll["item_id"]) - set(owner["item_id"])
    items.loc[items["item_id"].isin(losers), "join_name"] = ""
    report["collision_losers_examples"] = coll[coll["item_id"].isin(losers)]["name"].head(10).tolist()
    return items


def load_spotify_audio(path: Path, items: pd.DataFrame) -> tuple[VectorTable | None, dict[str, object]]:
    """Join Spotify per-artist descriptors onto Last.fm items by ``items['join_name']``."""
    rep: dict[str, object] = {}
    if not path.exists():
        log.warning("no Spotify file at %s: the catalog has no audio modality", path)
        rep["spotify_missing"] = str(path)
        return None, rep
    sp = pd.read_csv(path, dtype={"artists": str, "genres": str}, keep_default_na=False)
    missing = [c for c in ("artists", *SPOTIFY_FEATURES) if c not in sp.columns]
    if missing:
        raise InputError(f"missing columns {missing}", path=str(path))
    sp["norm_name"] = sp["artists"].map(normalize_name)
    sp = sp[sp["norm_name"] != ""]
    cnt = pd.to_numeric(sp.get("count", 1), errors="coerce").fillna(0)
    sp = sp.assign(_count=cnt).sort_values(["norm_name", "_count"], ascending=[True, False])
    rep["spotify_duplicate_names"] = int(sp["norm_name"].duplicated().sum())
    sp = sp.drop_duplicates("norm_name", keep="first")
    by_name = sp.set_index("norm_name")
    joined = items[items["join_name"].isin(by_name.index)]
    X = by_name.loc[joined["join_name"], list(SPOTIFY_FEATURES)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    ok = np.isfinite(X).all(axis=1)
    rep["spotify_matched_artists"] = int(ok.sum())
    rep["spotify_unparseable_rows"] = int((~ok).sum())
    genres = by_name.loc[joined["join_name"], "genres"].map(_parse_genres)
    rep["_genres"] = pd.Series(genres.to_numpy(), index=joined["item_id"].to_numpy())
    return VectorTable(joined["item_id"].to_numpy()[ok], X[ok]), rep


def _parse_genres(s: str) -> list[str]:
    s = str(s).strip()
    if s in ("", "[]"):
        return []
    s = s.strip("[]")
    return [g.strip().strip("'\"") for g in s.split(",") if g.strip().strip("'\"")]
