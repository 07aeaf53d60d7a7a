"""EASE (talkrec.encoders.ease): the estimator contract, the closed form against a dense
inverse, both the Woodbury and the direct path, and scoring from the kept lists."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from contract import FitContract, SaveLoadContract, cluster_of

from talkrec.encoders.ease import EASE
from talkrec.errors import InputError
from talkrec.estimator import clone


class TestEASE(FitContract, SaveLoadContract):
    estimator = EASE
    params = {"regularization": 10.0, "n_neighbors": 12}
    bad_params = {"regularization": 0.0, "n_neighbors": 0, "binary": "yes", "chunk_size": 0}

    @pytest.fixture
    def data(self, tiny_catalog):
        return tiny_catalog

    def fit(self, est, data):
        return est.fit(data.interactions, data.item_ids)

    def outputs(self, est, data):
        return est.score(["jazz1", "jazz2", "metal3"])

    def check_known_answer(self, est, data):
        ids = data.item_ids
        assert est.neighbors_.shape == (60, 12)
        # every item's strongest neighbour is of its own cluster (users like one cluster each)
        assert all(cluster_of(ids[nb[0]]) == cluster_of(ids[i]) for i, nb in enumerate(est.neighbors_))
        top = np.argsort(-est.score(["jazz1", "jazz2", "jazz3"]))[:5]
        assert all(cluster_of(ids[t]) == "jazz" for t in top)

    def bad_inputs(self, est, data):
        return [("weight", lambda: clone(est).fit(data.interactions.drop(columns="weight"))),
                ("interactions", lambda: clone(est).fit(data.interactions, ["nope"])),
                ("interactions", lambda: clone(est).fit(data.interactions.to_dict("records"))),
                ("item_ids", lambda: est.score("jazz1")),
                ("weights", lambda: est.score(["jazz1", "jazz2"], [1.0]))]


def _dense_B(X: np.ndarray, lam: float) -> np.ndarray:
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


@pytest.mark.parametrize("n_users", [6, 40])          # fewer users than items (Woodbury) and more
def test_lists_are_the_rows_of_the_closed_form(n_users):
    rng = np.random.default_rng(1)
    X = (rng.random((n_users, 15)) < 0.3).astype(float)
    X[0, :] = 1.0                                        # every item has an interaction
    u, i = np.nonzero(X)
    inter = pd.DataFrame({"user_id": [f"u{k}" for k in u], "item_id": [f"i{k}" for k in i], "weight": 2.0})
    ids = [f"i{k}" for k in range(15)]
    est = EASE(regularization=3.0, n_neighbors=14, chunk_size=4).fit(inter, ids)
    B = _dense_B(X, 3.0)
    for r in range(15):
        np.testing.assert_allclose(est.weights_[r], np.sort(np.delete(B[r], r))[::-1], rtol=1e-4, atol=1e-6)
    # all lists complete: scoring a history is x B exactly
    np.testing.assert_allclose(est.score(["i1", "i4"]), B[1] + B[4], rtol=1e-4, atol=1e-6)


def test_weights_and_min_weight_shape_the_matrix(tiny_catalog):
    inter = tiny_catalog.interactions
    ids = tiny_catalog.item_ids
    a = EASE(regularization=10.0, binary=False).fit(inter, ids)
    b = EASE(regularization=10.0).fit(inter, ids)
    assert not np.allclose(a.weights_, b.weights_)
    c = EASE(regularization=10.0, min_weight=1e9)
    with pytest.raises(InputError, match="no interactions left"):
        c.fit(inter, ids)
    # an item nobody interacted with has an empty list and is never scored
    d = EASE(regularization=10.0).fit(inter, list(ids) + ["lonely"])
    assert not d.has_cf_[-1] and (d.neighbors_[-1] == -1).all() and (d.neighbors_ != 60).all()
