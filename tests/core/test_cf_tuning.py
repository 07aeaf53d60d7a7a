"""ALS tuning scores every validation user in one matrix product; the figure is the one the
per-user loop gave (each user's hidden items ranked against all items, seen ones excluded)."""
from __future__ import annotations

import numpy as np
import pytest

from talkrec.encoders.cf import ALSEncoder, tune_als, validation_ndcg
from talkrec.metrics import ndcg_at_k
from talkrec.ranking import top_k


def _per_user(enc: ALSEncoder, hidden, k: int) -> float:
    vals = []
    for u, grp in hidden.groupby("user_id"):
        uv = enc.known_user(u)
        if uv is None:
            continue
        s = enc.recommend_scores(uv)
        s[enc.matrix_[enc._upos[u]].indices] = -np.inf
        rel = {enc._pos[i] for i in grp["item_id"].astype(str) if i in enc._pos}
        if rel:
            vals.append(ndcg_at_k(rel, top_k(s, k).tolist(), k))
    return float(np.mean(vals))


@pytest.mark.parametrize("chunk", [1024, 7])
def test_batched_validation_ndcg_equals_the_per_user_loop(tiny_catalog, chunk):
    inter = tiny_catalog.interactions.copy()
    inter["user_id"] = inter["user_id"].astype(str)
    rng = np.random.default_rng(1)
    hide = rng.random(len(inter)) < 0.3
    ids = tiny_catalog.item_ids
    enc = ALSEncoder(factors=4, iterations=5, random_state=0).fit(inter[~hide], ids)
    got = validation_ndcg(enc, inter[hide], k=10, chunk=chunk)
    assert 0 < got <= 1 and got == pytest.approx(_per_user(enc, inter[hide], 10), abs=1e-12)


def test_tune_als_picks_a_setting_from_the_space(tiny_catalog):
    best, trials = tune_als(tiny_catalog.interactions, tiny_catalog.item_ids, n_trials=3, random_state=0,
                            space={"factors": [4, 8], "iterations": [3], "regularization": [0.1], "alpha": [1.0]})
    assert len(trials) == 3 and best["factors"] in (4, 8)
    assert max(t["ndcg@50"] for t in trials) == next(t["ndcg@50"] for t in trials
                                                      if all(t[k] == v for k, v in best.items()))
