"""Every leakage rule of the evaluation lives here.

* Queries are split into validation and test *before* anything is tuned; all choices
  (ALS hyperparameters, fusion settings, hybrid weights) are made on validation queries,
  and reported numbers are on test queries only.
* Text-retrieval queries are split by *tag set*: the different wordings of one tag set
  all fall on the same side.
* Movie users are rotated over ``n_folds`` disjoint folds. The CF model (and the fusion
  model that reads it) of fold f is trained on the interactions of the users outside
  fold f only; the users of fold f are evaluated. Popularity is counted on the same
  training users.
* Each held-out user's positives (rating > threshold) are split at random into a query
  half (what the system sees) and a target half (the relevant items).
* The tags users applied (MovieLens ``tags.csv``) are counted again for each fold without the
  applications of its held-out users (:func:`without_users_tags`): a user's own tags on the
  movies they rated would otherwise be in the descriptions of their targets (found
  2026-12-03: 58 of 610 users tagged, 1,307 of 61,716 positive pairs, ~2%; before, every
  fold's descriptions carried them). Every text embedding, product space and cold-start
  space of a fold is made from the fold's catalog.

All functions are pure given ``random_state``; the split of an id depends only on the id
and the seed (a hash), so adding queries does not reshuffle existing ones.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError


def stable_unit(key: Hashable, random_state: int) -> float:
    """A deterministic number in [0, 1) for ``(key, random_state)`` (sha256 based)."""
    h = hashlib.sha256(f"{random_state}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_val_test(keys: Iterable[Hashable], *, val_fraction: float, random_state: int) -> dict[Hashable, str]:
    """``{key: "val" | "test"}``; a key goes to validation when its stable hash < ``val_fraction``."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    return {k: ("val" if stable_unit(k, random_state) < val_fraction else "test") for k in keys}


def user_folds(users: Sequence[Hashable], *, n_folds: int, random_state: int) -> dict[Hashable, int]:
    """Assign users to ``n_folds`` disjoint folds of (nearly) equal size, seeded.

    Every user lands in exactly one fold, so rotating the held-out fold evaluates every
    user exactly once.
    """
    if n_folds < 2:
        raise ValueError("n_folds must be at least 2")
    us = sorted(set(users), key=str)
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(us))
    return {us[p]: int(i % n_folds) for i, p in enumerate(perm)}


def train_interactions(interactions: pd.DataFrame, held_out_users: Iterable[Hashable]) -> pd.DataFrame:
    """Interactions the CF model may see: every row of a held-out user removed."""
    held = set(held_out_users)
    return interactions[~interactions["user_id"].isin(held)]


def query_target_halves(positives: Mapping[Hashable, Sequence[Hashable]], *, query_fraction: float = 0.5,
                        min_positives: int = 2, random_state: int) -> dict[Hashable, tuple[list, list]]:
    """For each user, split their positive items at random into (query, target).

    ``round(query_fraction * n)`` items (at least 1, at most n-1) form the query; the rest
    are the relevant targets. Users with fewer than ``min_positives`` positives are
    skipped. The draw for a user depends only on the user id and the seed.
    """
    out: dict[Hashable, tuple[list, list]] = {}
    for u in sorted(positives, key=str):
        items = sorted(positives[u], key=str)
        n = len(items)
        if n < max(2, min_positives):
            continue
        seed = int(stable_unit(u, random_state) * 2**32)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        nq = int(min(max(round(query_fraction * n), 1), n - 1))
        out[u] = ([items[i] for i in perm[:nq]], [items[i] for i in perm[nq:]])
    return out


def positives_by_user(interactions: pd.DataFrame, *, threshold: float) -> dict[str, list[str]]:
    """``{user: [item, ...]}`` of the items a user rated strictly above ``threshold``."""
    pos = interactions[interactions["weight"] > threshold]
    return {str(u): g["item_id"].astype(str).tolist() for u, g in pos.groupby("user_id")}


def check_user_protocol(folds: Mapping[Hashable, int], split: Mapping[Hashable, str], evaluated: Iterable[Hashable],
                        *, n_folds: int, tune_folds: int, where: str = "movies") -> None:
    """Refuse a user set too small for the protocol: an :class:`InputError` naming the setting
    when a fold has no evaluated user (a user with at least two positives), when the tuning
    folds have no validation user (every choice made "on validation" would compare NaNs and
    keep the first candidate) or when no evaluated user is a test user."""
    ev = [u for u in evaluated if u in folds]
    hint = (f"{len(ev)} users have at least two positives; lower {where}.n_folds or raise {where}.max_users "
            f"(or use more data)")
    empty = sorted(set(range(n_folds)) - {folds[u] for u in ev})
    if empty:
        raise InputError(f"fold(s) {empty} of {n_folds} have no user to evaluate: {hint}", field=f"{where}.n_folds")
    if not any(split[u] == "val" and folds[u] < tune_folds for u in ev):
        raise InputError(f"the {tune_folds} tuning fold(s) hold no validation user: {hint}, or raise "
                         f"{where}.val_fraction", field=f"{where}.val_fraction")
    if not any(split[u] == "test" for u in ev):
        raise InputError(f"no evaluated user is a test user: {hint}, or lower {where}.val_fraction",
                         field=f"{where}.val_fraction")


def check_both_splits(split: Mapping[Hashable, str], *, what: str, where: str) -> None:
    """Refuse a validation/test split with an empty side (an :class:`InputError` naming
    ``<where>.val_fraction``): with no validation query every choice compares NaNs and keeps
    its first candidate; with no test query there is nothing to report."""
    n_val = sum(v == "val" for v in split.values())
    if n_val == 0 or n_val == len(split):
        raise InputError(f"{len(split)} {what}, {n_val} of them for validation: both validation and test need "
                         f"some; change {where}.val_fraction or raise {where}.max_items", field=f"{where}.val_fraction")


def without_users_tags(cat: Any, applications: pd.DataFrame, users: Iterable[str], *, category: str = "tag") -> Any:
    """A copy of the catalog ``cat`` whose ``category`` tags (weight = number of users who
    applied the tag) are counted from ``applications`` (``user_id``, ``item_id``, ``tag``)
    without those of ``users``, and whose items' ``tags`` list is made again from them."""
    import copy

    from ..data.datasets.movielens import user_tag_rows
    from ..data.tags import tag_lists

    out = copy.copy(cat)
    held = set(map(str, users))
    known = set(cat.item_ids.tolist())
    apps = applications[~applications["user_id"].astype(str).isin(held) & applications["item_id"].isin(known)]
    is_cat = (cat.tags["category"] == category).to_numpy()
    first = int(np.argmax(is_cat)) if is_cat.any() else len(is_cat)      # the rows keep their places
    rest = cat.tags[~is_cat]
    out.tags = pd.concat([rest[rest.index < first], user_tag_rows(apps), rest[rest.index >= first]], ignore_index=True)
    out.items = cat.items.copy()
    out.items["tags"] = tag_lists(out.tags, out.items["item_id"], category)
    return out
