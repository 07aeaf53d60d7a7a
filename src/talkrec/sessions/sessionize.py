"""Sessions from any timestamped interaction log (paper 002 section 4.1).

A log is a DataFrame with ``user_id``, ``item_id`` and ``timestamp`` (integer seconds);
other columns are ignored. A user's events are ordered by time (ties keep their input
order) and a new session starts when two consecutive events are *more than*
``gap_seconds`` apart (60 minutes by default, as the Music4All authors and paper 002 do).
Optionally repeats of an item inside a session are removed, keeping the first occurrence
(paper 002 section 4.3, the RTA preprocessing). Sessions with fewer than ``min_length``
items (default 2: "sessions of one item") are dropped *after* repeat removal.

The result is a long DataFrame, one row per event, with columns ``session_id`` (int,
0..n-1 in order of user then time), ``user_id``, ``item_id``, ``timestamp`` and
``position`` (0-based index inside the session). :func:`session_lists` turns it into
Python lists for the models.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError, shown

log = logging.getLogger(__name__)

LOG_COLUMNS = ("user_id", "item_id", "timestamp")


#: the largest timestamp accepted (seconds; beyond it float parsing loses whole seconds)
MAX_SECONDS = 2 ** 53


def to_seconds(values: pd.Series, *, path: str | None = None, field: str = "timestamp") -> np.ndarray:
    """Integer seconds (int64) from a log's time column: integer numbers of seconds, or
    dates (a datetime column, or ISO 8601 strings in every row: UTC unless they say
    otherwise). :class:`~talkrec.errors.InputError` names the first bad row (1-based)."""
    v = values.reset_index(drop=True)
    is_dt = pd.api.types.is_datetime64_any_dtype(v)
    if is_dt or (not pd.api.types.is_numeric_dtype(v) and pd.to_numeric(v, errors="coerce").isna().all()):
        if is_dt:
            dt = v.dt.tz_convert("UTC") if v.dt.tz is not None else v.dt.tz_localize("UTC")
        else:
            dt = pd.to_datetime(v, utc=True, errors="coerce", format="ISO8601")
        bad = dt.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"timestamp {shown(v.iloc[i])} is neither an integer number of seconds nor an "
                             "ISO 8601 date", path=path, row=i + 1, field=field)
        return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    ts = pd.to_numeric(v, errors="coerce")
    x = ts.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(x)
    if not bad.any():
        bad = (x != np.floor(x)) | (np.abs(x) > MAX_SECONDS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        whole = bool(np.isfinite(x[i]) and x[i] == np.floor(x[i]))
        raise InputError(f"timestamp {shown(v.iloc[i])} is not an integer number of seconds"
                         + (f" (at most {MAX_SECONDS} in absolute value)" if whole else ""),
                         path=path, row=i + 1, field=field)
    return ts.to_numpy().astype(np.int64)


def validate_log(log_df: pd.DataFrame, *, path: str | None = None,
                 names: dict[str, str] | None = None) -> pd.DataFrame:
    """Check a timestamped log and return a clean copy (str ids, int64 timestamps).

    Raises :class:`~talkrec.errors.InputError` naming the first bad row (1-based data row)
    and field for a missing column, an empty id or a missing / non-integer timestamp.
    Timestamps may also be dates (see :func:`to_seconds`). ``names`` maps the log's
    columns to the names the user's file gives them (for the messages).
    """
    names = names or {}
    if not isinstance(log_df, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame, got {type(log_df).__name__}", path=path)
    for c in LOG_COLUMNS:
        if c not in log_df.columns:
            raise InputError(f"missing column '{c}' (a session log needs {', '.join(LOG_COLUMNS)})",
                             path=path, field=c)
    df = log_df.loc[:, list(LOG_COLUMNS)].reset_index(drop=True).copy()
    for c in ("user_id", "item_id"):
        bad = df[c].isna()
        s = df[c].astype(str).str.strip()
        bad |= s.eq("")
        if bad.any():
            raise InputError("empty id", path=path, row=int(np.flatnonzero(bad.to_numpy())[0]) + 1,
                             field=names.get(c, c))
        df[c] = s
    df["timestamp"] = to_seconds(df["timestamp"], path=path, field=names.get("timestamp", "timestamp"))
    return df


def sessionize(log_df: pd.DataFrame, *, gap_seconds: int = 3600, min_length: int = 2,
               remove_repeats: bool = False, path: str | None = None) -> pd.DataFrame:
    """Cut a timestamped log into sessions. See the module docstring for the rules.

    Parameters
    ----------
    log_df:
        ``user_id``, ``item_id``, ``timestamp`` (int seconds), any order.
    gap_seconds:
        A gap strictly larger than this starts a new session (a gap of exactly
        ``gap_seconds`` stays in the session).
    min_length:
        Drop sessions with fewer items than this (counted after ``remove_repeats``).
    remove_repeats:
        Keep only the first occurrence of an item inside a session.
    path:
        Source file name, used in error messages only.
    """
    if not isinstance(gap_seconds, (int, np.integer)) or isinstance(gap_seconds, bool) or gap_seconds < 0:
        raise InputError(f"gap_seconds must be a non-negative integer, got {gap_seconds!r}", field="gap_seconds")
    if not isinstance(min_length, (int, np.integer)) or isinstance(min_length, bool) or min_length < 1:
        raise InputError(f"min_length must be a positive integer, got {min_length!r}", field="min_length")
    df = validate_log(log_df, path=path)
    cols = ["session_id", "user_id", "item_id", "timestamp", "position"]
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("user_id", "item_id") else np.int64) for c in cols})
    df["_order"] = np.arange(len(df))
    df = df.sort_values(["user_id", "timestamp", "_order"], kind="stable").reset_index(drop=True)
    new_user = df["user_id"].ne(df["user_id"].shift())
    gap = df["timestamp"].diff()
    new_session = new_user | (gap > gap_seconds)
    df["session_id"] = np.cumsum(new_session.to_numpy()) - 1
    n_raw = int(df["session_id"].iloc[-1]) + 1
    if remove_repeats:
        df = df[~df.duplicated(["session_id", "item_id"], keep="first")]
    size = df.groupby("session_id")["item_id"].transform("size")
    df = df[size >= min_length].copy()
    df["session_id"] = pd.factorize(df["session_id"])[0].astype(np.int64)
    df["position"] = df.groupby("session_id").cumcount().astype(np.int64)
    log.info("sessionize: %d events -> %d sessions (%d kept with >= %d items, repeats %s)",
             len(log_df), n_raw, int(df["session_id"].nunique()), min_length,
             "removed" if remove_repeats else "kept")
    return df[cols].reset_index(drop=True)


@dataclass
class SessionSet:
    """Sessions as Python lists: ``items[i]`` is the item-id list of session ``ids[i]``."""

    ids: np.ndarray
    users: np.ndarray
    items: list[list[str]]

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, mask_or_index: np.ndarray) -> "SessionSet":
        idx = np.asarray(mask_or_index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return SessionSet(self.ids[idx], self.users[idx], [self.items[i] for i in idx])

    def stats(self) -> dict[str, float]:
        lens = np.array([len(s) for s in self.items]) if self.items else np.zeros(0)
        return {"sessions": len(self), "users": int(len(set(self.users.tolist()))),
                "items": int(len({i for s in self.items for i in s})),
                "events": int(lens.sum()), "mean_length": float(lens.mean()) if len(lens) else 0.0,
                "median_length": float(np.median(lens)) if len(lens) else 0.0}


def session_lists(sessions: pd.DataFrame) -> SessionSet:
    """Group the output of :func:`sessionize` into a :class:`SessionSet` (position order)."""
    if sessions.empty:
        return SessionSet(np.zeros(0, np.int64), np.zeros(0, dtype=str), [])
    s = sessions.sort_values(["session_id", "position"], kind="stable")
    grp = s.groupby("session_id", sort=True)
    items = [list(v) for _, v in grp["item_id"]]
    users = grp["user_id"].first().to_numpy(dtype=str)
    return SessionSet(grp["item_id"].size().index.to_numpy(np.int64), users, items)
