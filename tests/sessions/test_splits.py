"""Split rules: no user in two splits (user split); RTA samples only long sessions."""
from __future__ import annotations

import numpy as np
import pytest

from talkrec.errors import InputError
from talkrec.sessions.sessionize import SessionSet
from talkrec.sessions.splits import rta_split, user_split


def make(n_users=40, per_user=3, seed=0):
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        for _ in range(per_user):
            users.append(f"u{u}")
            items.append([f"i{x}" for x in rng.integers(0, 50, size=int(rng.integers(2, 30)))])
    return SessionSet(np.arange(len(items)), np.array(users), items)


@pytest.mark.parametrize("shuffle", [True, False])
def test_user_split_puts_every_user_in_exactly_one_split(shuffle):
    ss = make()
    sp = user_split(ss, shuffle=shuffle, random_state=3)
    u = [set(p.users.tolist()) for p in (sp.train, sp.validation, sp.test)]
    assert not (u[0] & u[1]) and not (u[0] & u[2]) and not (u[1] & u[2])
    assert len(sp.train) + len(sp.validation) + len(sp.test) == len(ss)
    ids = np.concatenate([sp.train.ids, sp.validation.ids, sp.test.ids])
    assert sorted(ids.tolist()) == list(range(len(ss)))
    assert (len(u[0]), len(u[1]), len(u[2])) == (28, 6, 6)


def test_user_split_is_seeded():
    ss = make()
    a, b = user_split(ss, random_state=1), user_split(ss, random_state=1)
    assert a.test.users.tolist() == b.test.users.tolist()
    c = user_split(ss, random_state=2)
    assert set(a.test.users.tolist()) != set(c.test.users.tolist())


def test_user_split_rejects_bad_fractions():
    with pytest.raises(InputError):
        user_split(make(), fractions=(0.5, 0.5, 0.5))


def test_rta_split_samples_only_long_sessions_disjointly():
    ss = make()
    sp = rta_split(ss, n_validation=10, n_test=12, min_length=15, random_state=0)
    assert len(sp.validation) == 10 and len(sp.test) == 12
    assert all(len(s) >= 15 for s in sp.validation.items + sp.test.items)
    ids = [set(p.ids.tolist()) for p in (sp.train, sp.validation, sp.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == len(ss)


def test_rta_split_fails_clearly_when_too_few_long_sessions():
    with pytest.raises(InputError, match="only"):
        rta_split(make(n_users=3), n_validation=50, n_test=50, min_length=25)
