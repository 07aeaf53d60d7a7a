"""Serving hook and the contrastive tuner."""
from __future__ import annotations

import numpy as np
import pytest

from talkrec.errors import InputError
from talkrec.sessions import SessionContrastiveTuner, SessionRecommender
from talkrec.sessions.models import NextItemSessionModel

ITEMS = [f"i{j}" for j in range(10)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    sess = [[ITEMS[(a + t) % 10] for t in range(5)] for a in rng.integers(0, 10, 60)]
    m = NextItemSessionModel(d_model=16, n_layers=1, n_heads=2, max_length=8, max_epochs=1, n_negatives=5,
                             device="cpu").fit(sess, item_ids=ITEMS)
    d = tmp_path_factory.mktemp("rec") / "model"
    m.save(d)
    return d


def test_continue_session_excludes_inputs_and_exclusions(saved):
    rec = SessionRecommender.load(saved)
    out = rec.continue_session(["i1", "i2"], k=5, exclude={"i3"})
    ids = [i for i, _ in out]
    assert len(ids) == 5 and not {"i1", "i2", "i3"} & set(ids)
    assert [s for _, s in out] == sorted([s for _, s in out], reverse=True)
    assert len(rec.continue_session(["i1"], k=50)) == 9


def test_unknown_items_use_the_fallback(saved):
    calls = []

    def fb(ids, k, exclude):
        calls.append((ids, k, exclude))
        return [("x", 1.0), ("y", 0.5)]

    rec = SessionRecommender.load(saved, fallback=fb)
    assert rec.continue_session(["nope"], k=1, exclude={"z"}) == [("x", 1.0)]
    assert calls == [(["nope"], 1, {"z"})]
    assert SessionRecommender.load(saved).continue_session([], k=3) == []
    assert rec.continue_session(["nope", "i4"], k=2) and len(calls) == 1     # one known item is enough
    with pytest.raises(InputError):
        rec.continue_session(["i1"], k=0)


def test_tuner_pulls_session_neighbours_together_and_keeps_missing_rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 8)).astype(np.float32)
    X[19] = np.nan
    ids = [f"a{j}" for j in range(20)]
    pairs = [["a0", "a1"], ["a2", "a3"], ["a4", "a5"], ["a6", "a7"]] * 30

    def cos(M, i, j):
        return float(M[i] @ M[j] / np.linalg.norm(M[i]) / np.linalg.norm(M[j]))

    t = SessionContrastiveTuner(epochs=15, hidden_dim=32, batch_size=8, random_state=0).fit(ids, X, pairs)
    Y = t.transform(X)
    assert Y.shape == (20, 8) and np.isnan(Y[19]).all() and np.isfinite(Y[:19]).all()
    before = np.mean([cos(X, 2 * p, 2 * p + 1) for p in range(4)])
    after = np.mean([cos(Y, 2 * p, 2 * p + 1) for p in range(4)])
    assert after > before + 0.3, (before, after)
    with pytest.raises(InputError):
        SessionContrastiveTuner().fit(ids, X, [["a0"], ["nope", "a1"]])
