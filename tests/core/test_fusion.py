"""Contrastive fusion: the loss formula, missing modalities, views, persistence, and the
shared estimator contract on the tiny three-cluster catalog."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from contract import FitContract, RandomStateContract, SaveLoadContract, same_cluster_share

from talkrec.encoders.cf import ALSEncoder
from talkrec.encoders.vectors import PrecomputedEncoder
from talkrec.errors import InputError, NotFittedError
from talkrec.estimator import clone
from talkrec.fusion import ContrastiveFusion, combine, info_nce


def test_info_nce_matches_formula_by_hand():
    # M = 2 items, 2-d unit vectors; tau = 1 so Xi(x, y) = exp(cos(x, y)).
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # item 1: positive cos(a1,b1)=1; denominator over zeta = {a2, b1, b2} (k != 1): e^0 + e^1 + e^1
    l1 = -math.log(math.e / (1 + 2 * math.e))
    # item 2: positive cos(a2,b2)=0; denominator {a1, b1, b2}: e^0 + e^0 + e^0 = 3
    l2 = -math.log(1 / 3)
    got = float(info_nce(a, b, temperature=1.0))
    assert got == pytest.approx((l1 + l2) / 2, rel=1e-6)


def test_info_nce_lower_for_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(32, 8, generator=g)
    assert float(info_nce(a, a + 0.01)) < float(info_nce(a, torch.randn(32, 8, generator=g)))


def _data(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    X = {"text": z @ rng.normal(size=(6, 12)), "cf": z @ rng.normal(size=(6, 8)),
         "audio": z @ rng.normal(size=(6, 5))}
    X = {k: (v + 0.05 * rng.normal(size=v.shape)).astype(np.float32) for k, v in X.items()}
    X["audio"][: n // 2] = np.nan      # half the items miss audio
    X["cf"][n - 50:] = np.nan          # some miss CF
    return X


def test_fit_learns_alignment_with_missing_modalities():
    X = _data()
    m = ContrastiveFusion(max_epochs=60, batch_size=128, learning_rate=1e-3, random_state=0).fit(X)
    assert m.history_[-1]["train_loss"] < m.history_[0]["train_loss"]
    E = m.transform(X)
    assert E.shape == (600, 200) and not np.isnan(E).any()
    assert np.allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    # cross-modal retrieval: text of item i should find audio of item i far above chance
    t, a = m.project("text", X["text"][300:]), m.project("audio", X["audio"][300:])
    top1 = ((t @ a.T).argmax(axis=1) == np.arange(300)).mean()
    assert top1 > 0.3


def test_determinism_and_save_load(tmp_path):
    X = _data(200)
    m1 = ContrastiveFusion(max_epochs=5, batch_size=64, random_state=3).fit(X)
    m2 = ContrastiveFusion(max_epochs=5, batch_size=64, random_state=3).fit(X)
    assert np.allclose(m1.transform(X), m2.transform(X), atol=1e-6)
    m1.save(tmp_path / "f")
    m3 = ContrastiveFusion.load(tmp_path / "f")
    assert np.allclose(m1.transform(X), m3.transform(X), atol=1e-6)
    assert m3.get_params() == m1.get_params()


def test_views_template_plus_gen():
    X = _data(300)
    gen = X["text"] + 0.1
    gen[:20] = np.nan
    m = ContrastiveFusion(max_epochs=3, batch_size=64).fit({"text": [X["text"], gen], "cf": X["cf"]})
    out = m.project_views("text", [X["text"], gen])
    assert out.shape == (300, 200) and not np.isnan(out).any()


def test_param_checks_and_estimator_contract():
    m = ContrastiveFusion(dropout=1.5)
    assert m.dropout == 1.5  # stored unchanged, checked in fit
    with pytest.raises(InputError, match="dropout"):
        m.fit(_data(50))
    with pytest.raises(InputError, match="at least two modalities"):
        ContrastiveFusion().fit({"text": np.ones((5, 3))})
    with pytest.raises(InputError, match="one row per item"):
        ContrastiveFusion().fit({"a": np.ones((5, 3)), "b": np.ones((4, 3))})
    with pytest.raises(NotFittedError, match="not fitted"):
        ContrastiveFusion().transform({"a": np.ones((2, 2))})
    with pytest.raises(TypeError):
        ContrastiveFusion(64)  # keyword-only


class TestContrastiveFusion(FitContract, RandomStateContract, SaveLoadContract):
    estimator = ContrastiveFusion
    params = {"max_epochs": 40, "batch_size": 16, "learning_rate": 3e-3, "hidden_dim": 16, "out_dim": 8}
    bad_params = {"dropout": 1.5, "batch_size": 1, "temperature": 0.0, "pairs": [("cf",)], "random_state": -1}

    @pytest.fixture
    def data(self, tiny_catalog):
        ids = tiny_catalog.item_ids
        cf = ALSEncoder(factors=8, iterations=10).fit(tiny_catalog.interactions, ids)
        audio = PrecomputedEncoder().fit(tiny_catalog.vectors["audio"]).encode(list(ids))
        return ids, {"cf": cf.item_factors_, "audio": audio}

    def fit(self, est, data):
        return est.fit(data[1])

    def outputs(self, est, data):
        return est.transform(data[1])

    def check_known_answer(self, est, data):
        ids, X = data
        assert same_cluster_share(ids, est.transform(X)) > 0.9   # an item's neighbour is of its cluster

    def bad_inputs(self, est, data):
        X = data[1]
        return [("X", lambda: clone(est).fit({"cf": X["cf"]})),
                ("X", lambda: clone(est).fit({"cf": X["cf"], "audio": X["audio"][:5]})),
                ("X[audio]", lambda: clone(est).fit({"cf": X["cf"], "audio": X["audio"][:, 0]})),
                ("pairs", lambda: clone(est).set_params(pairs=[("cf", "text")]).fit(X)),
                ("X", lambda: est.project("cf", np.ones((2, 3))))]


def test_combine_weights_and_missing():
    a = np.array([[1.0, 0.0], [np.nan, np.nan]], dtype=np.float32)
    b = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    out = combine({"a": a, "b": b})
    assert np.allclose(out[0], [np.sqrt(0.5), np.sqrt(0.5)])
    assert np.allclose(out[1], [0.0, 1.0])
    out = combine({"a": a, "b": b}, weights={"a": 1.0, "b": 0.0})
    assert np.allclose(out[0], [1.0, 0.0]) and np.isnan(out[1]).all()


def test_neighbor_term_pulls_neighbours_together_and_is_deterministic():
    # modalities with no pair structure; each item's one neighbour is its partner 2k <-> 2k+1
    rng = np.random.default_rng(0)
    n = 200
    X = {"text": rng.normal(size=(n, 8)).astype(np.float32), "cf": rng.normal(size=(n, 6)).astype(np.float32)}
    partner = np.arange(n) ^ 1
    nb = np.full((n, 3), -1)
    nb[:, 0] = partner                                      # -1 padding is allowed

    def gap(E):                                             # partner cosine minus mean cosine
        return float((E * E[partner]).sum(axis=1).mean() - (E @ E.T).mean())

    kw = dict(max_epochs=60, patience=60, batch_size=64, learning_rate=3e-3, random_state=0, neighbor_weight=1.0,
              n_neighbors=2, hidden_dim=64, out_dim=32)
    m = ContrastiveFusion(**kw).fit(X, neighbors=nb)
    E = m.transform(X)
    plain = ContrastiveFusion(**{**kw, "neighbor_weight": 0.0}).fit(X, neighbors=nb).transform(X)
    assert gap(E) > gap(plain) + 0.02
    np.testing.assert_allclose(ContrastiveFusion(**kw).fit(X, neighbors=nb).transform(X), E, atol=1e-6)
    with pytest.raises(InputError) as e:
        ContrastiveFusion(**kw).fit(X, neighbors=nb[:10])
    assert e.value.field == "neighbors"
    with pytest.raises(InputError) as e:
        ContrastiveFusion(**{**kw, "neighbor_weight": -1.0}).fit(X)
    assert e.value.field == "neighbor_weight"
