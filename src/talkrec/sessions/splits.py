"""Train / validation / test splits of sessions (paper 002 sections 4.2 and 4.3).

``user_split``
    T4Rec style: users are divided 70/15/15 (configurable) and every session goes with its
    user, so validation and test users are entirely new (no user in two splits). Paper 002
    sorts by user id and cuts; ``shuffle=True`` (default) cuts a seeded permutation of the
    users instead, which avoids any ordering artefact of the ids.
``rta_split``
    RTA style: ``n_validation`` + ``n_test`` sessions are sampled, without replacement,
    among the sessions longer than ``min_length`` items (paper 002: 10,000 + 10,000 of
    length > 20); all other sessions train. Users can appear in several splits here, as in
    the original RTA protocol.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .sessionize import SessionSet

log = logging.getLogger(__name__)


@dataclass
class Split:
    train: SessionSet
    validation: SessionSet
    test: SessionSet

    def stats(self) -> dict[str, dict[str, float]]:
        return {"train": self.train.stats(), "validation": self.validation.stats(), "test": self.test.stats()}


def user_split(sessions: SessionSet, *, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
               shuffle: bool = True, random_state: int | None = 0) -> Split:
    """Split by user: each user's sessions all go to one of train / validation / test."""
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
        raise InputError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}",
                         field="fractions")
    users = np.array(sorted(set(sessions.users.tolist())))
    if len(users) < 3:
        raise InputError(f"a user split needs at least 3 users, got {len(users)}", field="user_id")
    if shuffle:
        users = np.random.default_rng(random_state).permutation(users)
    n = len(users)
    n_val = max(1, int(round(fr[1] * n))) if fr[1] > 0 else 0
    n_test = max(1, int(round(fr[2] * n))) if fr[2] > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise InputError(f"no training users left with fractions {fractions!r} and {n} users", field="fractions")
    part = {u: 0 for u in users[:n_train]}
    part.update({u: 1 for u in users[n_train:n_train + n_val]})
    part.update({u: 2 for u in users[n_train + n_val:]})
    which = np.array([part[u] for u in sessions.users])
    return Split(sessions.subset(which == 0), sessions.subset(which == 1), sessions.subset(which == 2))


def rta_split(sessions: SessionSet, *, n_validation: int, n_test: int, min_length: int = 21,
              random_state: int | None = 0) -> Split:
    """Sample validation and test sessions among those with at least ``min_length`` items."""
    if n_validation < 0 or n_test < 0:
        raise InputError("n_validation and n_test must be non-negative", field="n_validation")
    lens = np.array([len(s) for s in sessions.items])
    long_idx = np.flatnonzero(lens >= min_length)
    need = n_validation + n_test
    if need > len(long_idx):
        raise InputError(f"only {len(long_idx)} sessions have >= {min_length} items, {need} requested "
                         f"for validation + test; lower min_length or the counts", field="n_test")
    pick = np.random.default_rng(random_state).choice(long_idx, size=need, replace=False)
    val, test = np.sort(pick[:n_validation]), np.sort(pick[n_validation:])
    train = np.setdiff1d(np.arange(len(sessions)), pick)
    return Split(sessions.subset(train), sessions.subset(val), sessions.subset(test))
