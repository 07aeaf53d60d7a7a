"""Timestamped logs and item metadata for the session study (bundled public datasets).

* MovieLens ml-latest-small: ``ratings.csv`` (userId, movieId, rating, timestamp) is the
  log; every rating is an event (paper 002 uses every listening event).
* Last.fm HetRec-2k: the only timestamped music behaviour is ``user_taggedartists.dat``
  (userID, artistID, tagID, day, month, year). One session = one user's tag applications
  on one calendar day, artists ordered by first appearance in the file. In this copy
  98% of the rows have day = 1, so a "day" is in practice a user-month. The log gets a
  synthetic timestamp = midnight of that date + the artist's rank of first appearance
  inside the day (seconds), so the generic gap rule (any gap under one day) reproduces
  exactly the day grouping and the file order.
* Any other log: CSV or Parquet with user, item and timestamp columns (names configurable).

Item texts for the text initialization are small TEMPLATE-like strings built here (name,
genres, tags). For Last.fm the tags come only from the tag applications of the sessions
passed in (the training split), so no held-out user's tags leak into item content.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.tables import read_raw
from ..errors import InputError, did_you_mean, shown
from .sessionize import validate_log

log = logging.getLogger(__name__)


def _need(path: Path) -> Path:
    if not path.exists():
        raise InputError("file not found (set data_root in the config to the folder holding the datasets)",
                         path=str(path))
    return path


def _read_table(p: Path, sep: str | None) -> pd.DataFrame:
    """A CSV/TSV (every cell a string) or Parquet file, read as catalogs are
    (:func:`~talkrec.data.tables.read_raw`: :class:`InputError` naming it when it cannot be
    read); ``sep`` reads it as CSV with that separator."""
    return read_raw(p, "csv", sep=sep) if sep else read_raw(p)


def _id_column(col: pd.Series) -> pd.Series:
    """Ids as strings; whole floats (a Parquet int column with a null becomes float) as ints."""
    if pd.api.types.is_float_dtype(col):
        x = col.to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(x)
        if (x[ok] == np.floor(x[ok])).all():
            return pd.Series([str(int(v)) if f else None for v, f in zip(x, ok)], index=col.index, dtype=object)
    return col


def read_log(path: str | Path, *, user_col: str = "user_id", item_col: str = "item_id",
             time_col: str = "timestamp", sep: str | None = None) -> pd.DataFrame:
    """Read any timestamped log (CSV/TSV/Parquet) into ``user_id, item_id, timestamp``.

    Timestamps are integer seconds or dates (a datetime column or ISO 8601 strings, see
    :func:`talkrec.sessions.sessionize.to_seconds`). A missing column, an empty id or a bad
    timestamp is an :class:`InputError` naming the file, the (1-based data) row and the
    file's column; exact duplicate events are kept, with a warning.
    """
    p = _need(Path(path))
    df = _read_table(p, sep)
    stripped = [str(c).strip() for c in df.columns]
    if len(set(stripped)) == len(stripped):       # "user, item, ts": the names without the spaces
        df.columns = stripped
    cols = [str(c) for c in df.columns]
    for c in (user_col, item_col, time_col):
        if c not in df.columns:
            hint = " (is the separator right? set log.sep)" if len(cols) == 1 and any(x in cols[0] for x in "\t;,|") \
                else ""
            raise InputError(f"missing column '{c}'{did_you_mean(c, cols)}; the file has {', '.join(cols) or 'none'}"
                             f"{hint} (set log.user_col, log.item_col, log.time_col)", path=str(p), field=c)
    if df.empty:
        raise InputError("the log has no events (only a header)", path=str(p))
    raw = pd.DataFrame({"user_id": _id_column(df[user_col]), "item_id": _id_column(df[item_col]),
                        "timestamp": df[time_col]})
    out = validate_log(raw, path=str(p), names={"user_id": user_col, "item_id": item_col, "timestamp": time_col})
    if len(out) and float(np.median(np.abs(out["timestamp"].to_numpy()))) > 1e11:   # past the year 5000
        log.warning("%s: the timestamps in '%s' look like milliseconds or finer; they are read as seconds, so "
                    "sessions.gap_minutes means far more time than it says", p, time_col)
    n_dup = int(out.duplicated().sum())
    if n_dup:
        log.warning("%s: %d duplicate events (same user, item and time) kept as repeats", p, n_dup)
    return out


def movielens_log(root: str | Path) -> pd.DataFrame:
    """``ratings.csv`` of ml-latest-small as a log (every rating is an event)."""
    return read_log(Path(root) / "ratings.csv", user_col="userId", item_col="movieId", time_col="timestamp")


def _read_tagged(root: Path) -> pd.DataFrame:
    p = _need(root / "user_taggedartists.dat")
    df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    need = ["userID", "artistID", "tagID", "day", "month", "year"]
    for c in need:
        if c not in df.columns:
            raise InputError(f"missing column '{c}'", path=str(p), field=c)
    for c in ("day", "month", "year"):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            i = int(np.flatnonzero(v.isna().to_numpy())[0])
            raise InputError(f"not a number: {shown(df[c].iloc[i])}", path=str(p), row=i + 1, field=c)
        df[c] = v.astype(int)
    return df


def lastfm_tag_log(root: str | Path) -> pd.DataFrame:
    """Last.fm tag applications as a log whose 1-day sessions keep file order (see module doc).

    Rows with an impossible date are dropped with a warning. Returns ``user_id``,
    ``item_id``, ``timestamp`` plus ``tag_id`` (used for leak-free item texts).
    """
    root = Path(root)
    df = _read_tagged(root)
    dates = pd.to_datetime(dict(year=df["year"], month=df["month"], day=df["day"]), errors="coerce")
    bad = dates.isna()
    if bad.any():
        log.warning("lastfm: %d tag applications with an impossible date dropped", int(bad.sum()))
    df = df[~bad.to_numpy()].assign(_date=dates[~bad])
    midnight = (df["_date"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    df = df.assign(_midnight=midnight.astype(np.int64), _row=np.arange(len(df)))
    first = df.drop_duplicates(["userID", "_midnight", "artistID"], keep="first")
    rank = first.groupby(["userID", "_midnight"]).cumcount()
    first = first.assign(_rank=rank.to_numpy())
    df = df.merge(first[["userID", "_midnight", "artistID", "_rank"]], on=["userID", "_midnight", "artistID"],
                  how="left").sort_values("_row", kind="stable")
    return pd.DataFrame({"user_id": df["userID"].to_numpy(), "item_id": df["artistID"].to_numpy(),
                         "timestamp": (df["_midnight"] + df["_rank"]).to_numpy(np.int64),
                         "tag_id": df["tagID"].to_numpy()}).reset_index(drop=True)


def movielens_texts(root: str | Path) -> pd.Series:
    """``item_id -> text``: "Title. Genres: a, b. Tags: x, y." from movies.csv and tags.csv."""
    root = Path(root)
    m = pd.read_csv(_need(root / "movies.csv"), dtype=str, keep_default_na=False)
    tags_p = root / "tags.csv"
    tags: dict[str, list[str]] = {}
    if tags_p.exists():
        t = pd.read_csv(tags_p, dtype=str, keep_default_na=False)
        t["tag"] = t["tag"].str.strip().str.lower()
        cnt = t.groupby(["movieId", "tag"]).size().reset_index(name="n").sort_values(
            ["movieId", "n", "tag"], ascending=[True, False, True])
        tags = {k: v.head(10).tolist() for k, v in cnt.groupby("movieId")["tag"]}
    out = {}
    for mid, title, genres in zip(m["movieId"], m["title"], m["genres"]):
        g = [x for x in genres.split("|") if x and x != "(no genres listed)"]
        s = f"The name of this movie is {title}."
        if g:
            s += f" Genre: {', '.join(g)}."
        if mid in tags:
            s += f" Tags: {', '.join(tags[mid])}."
        out[str(mid)] = s
    return pd.Series(out, name="text")


def lastfm_texts(root: str | Path, tag_log: pd.DataFrame | None = None,
                 exclude_events: pd.DataFrame | None = None) -> pd.Series:
    """``item_id -> text``: "The name of this artist is X. Tags: a, b." (top-10 tags).

    ``exclude_events`` (columns ``user_id``, ``item_id``, ``timestamp`` as in the log: the
    held-out validation and test events) removes those tag applications, so the texts
    carry no held-out behaviour; without it every tag application is used.
    """
    root = Path(root)
    a = pd.read_csv(_need(root / "artists.dat"), sep="\t", dtype=str, keep_default_na=False, encoding="utf-8",
                    quoting=3)
    names = dict(zip(a["id"], a["name"]))
    tg = pd.read_csv(_need(root / "tags.dat"), sep="\t", dtype=str, keep_default_na=False, encoding="latin-1",
                     quoting=3)
    tag_names = dict(zip(tg["tagID"], tg["tagValue"]))
    tl = tag_log if tag_log is not None else lastfm_tag_log(root)
    if exclude_events is not None and len(exclude_events):
        key = ["user_id", "item_id", "timestamp"]
        ex = exclude_events[key].drop_duplicates().assign(_ex=True)
        tl = tl.merge(ex, on=key, how="left")
        tl = tl[tl["_ex"].isna()].drop(columns="_ex")
    tl = tl.assign(tag=tl["tag_id"].map(tag_names))
    tl = tl[tl["tag"].notna()]
    cnt = tl.groupby(["item_id", "tag"]).size().reset_index(name="n").sort_values(
        ["item_id", "n", "tag"], ascending=[True, False, True])
    tags = {k: v.head(10).tolist() for k, v in cnt.groupby("item_id")["tag"]}
    ids = sorted(set(names) | set(tags))
    out = {}
    for i in ids:
        s = f"The name of this artist is {names.get(i, 'unknown')}."
        if i in tags:
            s += f" Tags: {', '.join(tags[i])}."
        out[i] = s
    return pd.Series(out, name="text")


def lastfm_audio(root: str | Path, spotify_root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Spotify per-artist descriptors joined to Last.fm artists, through the core adapter.

    Returns ``(item_ids, matrix)`` or None when the adapter or the file is unavailable.
    """
    try:
        from ..data.datasets.lastfm import load_lastfm
    except ImportError:  # pragma: no cover - depends on the core landing
        log.warning("talkrec.data.datasets.lastfm is not available: no audio initialization")
        return None
    kw = {"spotify_root": spotify_root} if spotify_root is not None else {}
    cat = load_lastfm(root, **kw)
    vt = cat.vectors.get("audio")
    if vt is None:
        return None
    return vt.ids, vt.X
